// secrets.audit, secrets.verifyAudit: both read audit.log on State::readers,
// never on the io thread, so a 300 MB log delays no lease.
//
// secrets.audit keeps the Go wire format, {tail} -> {entries}, with 0 meaning
// all, but its reply is streamed: entries are copied from the file as they
// are, piece by piece, each read only once the one before is on the socket.
// The daemon never holds more than a piece of it (ResultStream), whatever
// tail asks for; a client that wants everything reads one long line.
#include "audit/anchor.hpp"
#include "audit/read.hpp"
#include "audit/verify.hpp"
#include "daemon/params.hpp"
#include "daemon/state.hpp"
#include "util/error.hpp"

namespace server {

namespace {

// About this much of a streamed reply is read per piece.
constexpr size_t k_piece_size = 256 * 1024;

class TailStream : public ResultStream
{
public:
  TailStream(audit::Log& log, std::string path, size_t n, uint64_t seq)
    : m_log(log), m_path(std::move(path)), m_n(n), m_seq(seq)
  {
  }

  std::string next() override
  {
    if (m_done) {
      return {};
    }
    std::string piece;
    if (!m_reader) {
      // Lines appended before the request must be on disk before the file is
      // read; waited for here, not on the io thread.
      if (m_seq > 0) {
        m_log.wait_durable(m_seq);
      }
      m_reader.emplace(m_path, m_n);
      piece = "{\"entries\":[";
    }
    while (piece.size() < k_piece_size) {
      auto line = m_reader->next();
      if (!line) {
        piece += "]}";
        m_done = true;
        break;
      }
      if (!m_first) {
        piece += ',';
      }
      m_first = false;
      piece += *line;
    }
    return piece;
  }

private:
  audit::Log& m_log;
  std::string m_path;
  size_t m_n;
  uint64_t m_seq;
  std::optional<audit::TailReader> m_reader;
  bool m_first = true;
  bool m_done = false;
};

struct TailParams
{
  size_t tail = 0; // 0: all

  static TailParams parse(const json& p)
  {
    const int64_t n = optional_int(p, "tail", 0);
    if (n < 0) {
      throw util::Error(util::Errc::invalid_params, "invalid params: tail must be 0 (all) or a positive count");
    }
    return {static_cast<size_t>(n)};
  }
};

std::unique_ptr<ResultStream> tail(State& s, const Request&, const TailParams& p)
{
  return std::make_unique<TailStream>(s.log, s.paths.audit, p.tail, s.log.last_seq());
}

void verify(State& s, const Request&, const NoParams&, Responder respond)
{
  const uint64_t seq = s.log.last_seq();
  asio::post(s.readers, [&s, seq, respond = std::move(respond)] {
    // Everything appended before the request, on disk first; then the head
    // this daemon knows is durable is what the file must still hold.
    std::optional<audit::VerifyResult> result;
    std::optional<util::Error> error;
    try {
      if (seq > 0) {
        s.log.wait_durable(seq);
      }
      const auto& keying = s.log.keying();
      audit::VerifyOptions options;
      options.key = keying.key;
      options.key_first_seq = keying.first_seq;
      options.earlier_key_lost = keying.earlier_key_lost;
      options.anchor_path = keying.anchor_path;
      options.live_head = s.log.durable_head();
      result = audit::verify_file(s.paths.audit, options);
    } catch (const util::Error& e) {
      error = e;
    } catch (const std::exception& e) {
      error = util::Error(util::Errc::io, std::string("failed to verify the audit log: ") + e.what());
    }
    const char* sink = audit::sink_name(s.log.head_sink());
    asio::post(s.io, [respond, result = std::move(result), error = std::move(error), sink] {
      respond([&]() -> json {
        if (error) {
          throw *error;
        }
        json out = audit::to_json(*result);
        out["head_published_to"] = sink;
        return out;
      });
    });
  });
}

} // namespace

void add_audit_methods(MethodTable& table)
{
  table.emplace("secrets.audit", Method{.stream_handler = with_params(tail),
                                        .allowed_while_tripped = true,
                                        .allowed_while_locked = true});
  table.emplace("secrets.verifyAudit", Method{.async_handler = with_params(verify),
                                              .allowed_while_tripped = true,
                                              .allowed_while_locked = true});
}

} // namespace server
