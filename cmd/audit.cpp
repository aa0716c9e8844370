// `secrets audit [--tail N] [--verify [--offline]]`.
//
// --tail reads the daemon's streamed secrets.audit reply with a SAX parser
// and prints each entry as it arrives, inside the usual envelope: a 300 MB
// log goes through the CLI with the memory of one entry, as it goes through
// the daemon with the memory of one piece (daemon/methods_audit.cpp).
//
// --verify asks the daemon, which holds the key. --offline verifies without
// it, reading audit.log here: only the structure (plain hashes, prev links,
// seq), as the key is in secrets.age; the result says so (macs_checked false).

#include "audit/verify.hpp"
#include "cmd/command.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/paths.hpp"

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <istream>
#include <streambuf>
#include <vector>

namespace cmd {

namespace {

// The socket as an input stream for the SAX parser.
class SocketBuf : public std::streambuf
{
public:
  explicit SocketBuf(int fd) : m_fd(fd) {}

protected:
  int_type underflow() override
  {
    while (true) {
      const ssize_t n = ::recv(m_fd, m_buf, sizeof(m_buf), 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        util::throw_errno("failed to read from the daemon");
      }
      if (n == 0) {
        return traits_type::eof();
      }
      setg(m_buf, m_buf, m_buf + n);
      return traits_type::to_int_type(m_buf[0]);
    }
  }

private:
  int m_fd;
  char m_buf[64 * 1024];
};

// Builds the reply's DOM like nlohmann's own SAX DOM parser, except that each
// element of result.entries goes to `on_entry` as soon as it is complete and
// is then dropped, so the entries array never holds more than one.
class ReplySax : public nlohmann::json_sax<json>
{
public:
  explicit ReplySax(std::function<void(json)> on_entry) : m_on_entry(std::move(on_entry)) {}

  json& root() { return m_root; }

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return value(v); }
  bool number_unsigned(number_unsigned_t v) override { return value(v); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool string(string_t& v) override { return value(std::move(v)); }
  bool binary(binary_t& v) override { return value(std::move(v)); }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool key(string_t& k) override
  {
    m_key = k;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override
  {
    throw util::Error(util::Errc::io, "the daemon's reply is malformed or broke off", "secrets status");
  }

private:
  json* place(json v)
  {
    if (m_stack.empty()) {
      m_root = std::move(v);
      return &m_root;
    }
    json& top = *m_stack.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[m_key];
    slot = std::move(v);
    return &slot;
  }
  bool open(json container)
  {
    const std::string name = m_stack.empty() || m_stack.back()->is_array() ? std::string() : m_key;
    m_stack.push_back(place(std::move(container)));
    m_names.push_back(name);
    return true;
  }
  bool close()
  {
    m_stack.pop_back();
    m_names.pop_back();
    return done_value();
  }
  bool value(json v)
  {
    place(std::move(v));
    return done_value();
  }
  // A value just ended: if it was an entry, hand it over.
  bool done_value()
  {
    if (m_stack.size() == 3 && m_names[1] == "result" && m_names[2] == "entries" && m_stack.back()->is_array()
        && !m_stack.back()->empty()) {
      m_on_entry(std::move(m_stack.back()->back()));
      m_stack.back()->clear();
    }
    return true;
  }

  std::function<void(json)> m_on_entry;
  json m_root;
  std::vector<json*> m_stack;
  std::vector<std::string> m_names; // the member name of each open container ("" in an array or at the root)
  std::string m_key;
};

const std::vector<Action> k_tail_actions = {{"secrets audit --verify", "verify the chain"}};

// Prints the envelope around entries that come one at a time, with the text
// print() would give the whole envelope: the envelope is dumped once around
// a marker entry, and each entry's own dump is indented into its place.
class EntryPrinter
{
public:
  EntryPrinter()
  {
    static constexpr const char* k_marker = "\x01entries\x01";
    const std::string text =
      success_envelope("secrets audit", {{"entries", json::array({k_marker})}}, k_tail_actions)
        .dump(2, ' ', false, Envelope::error_handler_t::replace)
      + "\n";
    const std::string quoted = json(k_marker).dump();
    const size_t at = text.find(quoted);
    const size_t line_start = text.rfind('\n', at) + 1;
    m_indent = std::string(at - line_start, ' ');
    m_head = text.substr(0, line_start);
    m_tail = text.substr(at + quoted.size()); // from the newline after the marker
  }

  void entry(const json& e)
  {
    std::string text = m_started ? ",\n" : m_head;
    m_started = true;
    text += m_indent;
    for (const char c : Envelope(e).dump(2, ' ', false, Envelope::error_handler_t::replace)) {
      text += c;
      if (c == '\n') {
        text += m_indent;
      }
    }
    util::write_all(STDOUT_FILENO, text, "stdout");
  }

  // True when it printed the whole envelope; false when no entry came (the
  // caller prints the ordinary envelope then).
  bool finish()
  {
    if (m_started) {
      util::write_all(STDOUT_FILENO, m_tail, "stdout");
    }
    return m_started;
  }
  bool started() const { return m_started; }

private:
  std::string m_head;
  std::string m_tail;
  std::string m_indent;
  bool m_started = false;
};

Outcome do_tail(int tail)
{
  if (tail < 0) {
    return {error_envelope("secrets audit", "--tail must be 0 (all) or positive", "usage", "secrets audit --tail 20"),
            exit_code::usage};
  }
  rpc::Client client(socket_path());
  client.send("secrets.audit", {{"tail", tail}});
  SocketBuf buf(client.fd());
  std::istream in(&buf);
  EntryPrinter printer;
  ReplySax sax([&](json e) { printer.entry(e); });
  try {
    // strict=false: the reply ends at its closing brace; the connection stays open.
    json::sax_parse(in, &sax, json::input_format_t::json, false);
  } catch (...) {
    if (printer.started()) {
      // Half an envelope is on stdout: say what happened on stderr, where a
      // reader of the JSON will not trip over it.
      const Failure f = failure_from_current_exception();
      std::fprintf(stderr, "secrets audit: error: the reply broke off: %s\n", f.message.c_str());
      return {nullptr, f.exit};
    }
    throw;
  }
  const json& reply = sax.root();
  if (const auto err = reply.find("error"); err != reply.end() && err->is_object()) {
    std::string fix;
    if (const auto data = err->find("data"); data != err->end() && data->is_object() && data->contains("fix")) {
      fix = data->value("fix", "");
    }
    throw rpc::RemoteError(err->value("code", rpc::code::internal), err->value("message", "unknown error"), fix);
  }
  if (printer.finish()) {
    return {nullptr};
  }
  json result = reply.value("result", json::object());
  if (!result.contains("entries")) {
    result["entries"] = json::array();
  }
  return {success_envelope("secrets audit", std::move(result), k_tail_actions)};
}

Outcome do_verify(bool offline)
{
  json result;
  if (offline) {
    result = audit::to_json(audit::verify_file(util::default_paths().audit));
  } else {
    try {
      result = call("secrets.verifyAudit");
    } catch (const util::Error& e) {
      if (e.code() != util::Errc::daemon_down) {
        throw;
      }
      throw util::Error(util::Errc::daemon_down, e.what(),
                        e.fix() + "  (or `secrets audit --verify --offline`: the structure only, as the MACs "
                                  "need the key, which only the daemon holds)");
    }
  }
  if (!result.value("ok", false)) {
    const std::string where = result.contains("first_bad_line")
                                ? "inspect line " + result["first_bad_line"].dump() + " of audit.log"
                                : "inspect audit.log and audit.anchor";
    return {error_envelope("secrets audit", "audit chain broken: " + result.value("message", std::string()),
                           "audit_tampered", where + "; the chain from there on cannot be trusted"),
            exit_code::error};
  }
  std::vector<Action> next = {{"secrets audit --tail 20", "show recent entries"}};
  if (!result.value("macs_checked", false)) {
    next.push_back({"secrets serve &", "start the daemon, which holds the key, and verify the MACs too"});
  }
  return {success_envelope("secrets audit", result, next)};
}

} // namespace

void add_audit_command(CLI::App& app, CommandAction& action)
{
  struct AuditOptions
  {
    int tail = 0;
    bool verify = false;
    bool offline = false;
  };
  static AuditOptions o;
  auto* audit = app.add_subcommand("audit", "show or verify the audit log");
  audit->add_option("--tail", o.tail, "show the last N entries (0 = all)");
  auto* verify = audit->add_flag("--verify", o.verify, "verify the chain (MACs, links, anchors) through the daemon");
  audit->add_flag("--offline", o.offline, "with --verify: without the daemon, the structure only (no MAC is checked)")
    ->needs(verify);
  audit->callback([&action] {
    action = [] { return o.verify ? do_verify(o.offline) : do_tail(o.tail); };
  });
}

} // namespace cmd
