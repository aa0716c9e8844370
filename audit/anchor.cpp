#include "audit/anchor.hpp"

#include "audit/chain.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

namespace audit {

namespace {

// The anchor file is small; anything bigger was not written by us.
constexpr size_t k_max_anchor_size = 4096;

std::string anchor_message(const Anchor& a)
{
  return std::string(k_anchor_label) + std::to_string(a.seq) + "\n" + a.hash + "\n" + a.written_at;
}

} // namespace

std::string anchor_path_for(const std::string& audit_path)
{
  return util::dirname_of(audit_path) + "/audit.anchor";
}

void write_anchor(const std::string& path, const Key& key, const Anchor& anchor)
{
  nlohmann::ordered_json doc = {{"version", 1},
                                {"seq", anchor.seq},
                                {"hash", anchor.hash},
                                {"written_at", anchor.written_at},
                                {"mac", key.mac_hex(anchor_message(anchor))}};
  util::write_file_atomic(path, doc.dump() + "\n");
}

AnchorRead read_anchor(const std::string& path, const Key& key)
{
  AnchorRead out;
  const auto text = util::read_file_if_exists(path);
  if (!text) {
    out.problem = path + " is missing";
    return out;
  }
  out.state = AnchorRead::State::malformed;
  if (text->size() > k_max_anchor_size) {
    out.problem = path + " is too large to be an anchor";
    return out;
  }
  const auto doc = nlohmann::json::parse(*text, nullptr, false);
  const auto field = [&](const char* name) -> const nlohmann::json* {
    const auto it = doc.is_object() ? doc.find(name) : doc.end();
    return doc.is_object() && it != doc.end() ? &*it : nullptr;
  };
  const auto* seq = field("seq");
  const auto* hash = field("hash");
  const auto* written_at = field("written_at");
  const auto* mac = field("mac");
  if (!seq || !seq->is_number_unsigned() || !hash || !hash->is_string() || !written_at || !written_at->is_string()
      || !mac || !mac->is_string()) {
    out.problem = path + " is not an anchor (seq, hash, written_at and mac are required)";
    return out;
  }
  out.anchor = Anchor{seq->get<uint64_t>(), hash->get<std::string>(), written_at->get<std::string>()};
  if (!mac_equal(key.mac_hex(anchor_message(out.anchor)), mac->get_ref<const std::string&>())) {
    out.state = AnchorRead::State::bad_mac;
    out.problem = path + " does not carry a valid MAC under the audit key (forged, or written under an earlier key)";
    return out;
  }
  out.state = AnchorRead::State::valid;
  return out;
}

Anchoring::Anchoring(std::string anchor_path, std::shared_ptr<const Key> key, std::string audit_path)
  : m_path(std::move(anchor_path)), m_key(std::move(key)), m_publisher(std::move(audit_path))
{
}

void Anchoring::on_durable(uint64_t seq, std::string_view hash, std::string written_at, Clock::time_point now)
{
  m_head = Anchor{seq, std::string(hash), std::move(written_at)};
  m_file_pending = true;
  m_publish_pending = true;
  flush(now, false);
}

std::optional<Anchoring::Clock::time_point> Anchoring::deadline() const
{
  std::optional<Clock::time_point> at;
  const auto consider = [&](bool pending, const std::optional<Clock::time_point>& last, Clock::duration interval) {
    if (pending) {
      const auto due = last ? *last + interval : Clock::time_point{};
      at = at ? std::min(*at, due) : due;
    }
  };
  consider(m_file_pending, m_file_at, k_file_interval);
  consider(m_publish_pending, m_publish_at, k_publish_interval);
  return at;
}

void Anchoring::flush(Clock::time_point now, bool final)
{
  // The journal first: it never throws, and a failing anchor file must not
  // also keep the head from the journal.
  if (m_publish_pending && (final || !m_publish_at || now >= *m_publish_at + k_publish_interval)) {
    m_publisher.publish(m_head.seq, m_head.hash);
    m_publish_at = now;
    m_publish_pending = false;
  }
  if (m_file_pending && (final || !m_file_at || now >= *m_file_at + k_file_interval)) {
    // A failed write is retried at the next deadline, not in a tight loop.
    m_file_at = now;
    write_anchor(m_path, *m_key, m_head);
    m_file_pending = false;
  }
}

} // namespace audit
