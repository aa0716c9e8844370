#include "audit/verify.hpp"

#include "audit/chain.hpp"
#include "audit/lines.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace audit {

namespace {

struct NamedAnchor
{
  Anchor anchor;
  std::string source;
};

enum class Kind { plain, keyed, unchecked };

// json::value() throws on a member of another type; a line is untrusted input.
std::string string_member(const nlohmann::json& entry, const char* name)
{
  const auto it = entry.find(name);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string counts_text(const VerifyResult& r)
{
  std::string text = std::to_string(r.entries) + " entries verified";
  std::vector<std::string> parts;
  if (r.keyed_entries > 0) {
    parts.push_back(std::to_string(r.keyed_entries) + " keyed");
  }
  if (r.unkeyed_entries > r.legacy_entries) {
    parts.push_back(std::to_string(r.unkeyed_entries - r.legacy_entries)
                    + " unkeyed (plain SHA-256, from before the chain was keyed)");
  }
  if (r.legacy_entries > 0) {
    parts.push_back(std::to_string(r.legacy_entries) + " unkeyed and unchained lines from the Go daemon");
  }
  if (r.unchecked_entries > 0) {
    parts.push_back(std::to_string(r.unchecked_entries)
                    + (r.macs_checked ? " keyed under an earlier key that is gone (store wiped or rewritten): "
                                        "their content cannot be checked"
                                      : " keyed, MACs not checked"));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    text += (i == 0 ? ": " : ", ") + parts[i];
  }
  return text;
}

} // namespace

VerifyResult verify_file(const std::string& path, const VerifyOptions& options)
{
  VerifyResult result;
  const Key* key = options.key.get();
  result.macs_checked = key != nullptr;

  std::vector<NamedAnchor> anchors;
  bool anchor_missing = false;
  if (key && !options.anchor_path.empty()) {
    const auto read = read_anchor(options.anchor_path, *key);
    if (read.state == AnchorRead::State::valid) {
      result.anchor = read.anchor;
      anchors.push_back({read.anchor, "audit.anchor (written " + read.anchor.written_at + ")"});
    } else if (read.state == AnchorRead::State::missing) {
      anchor_missing = true;
    } else {
      result.ok = false;
      result.message = read.problem + ": a cut of the log's end cannot be ruled out";
      return result;
    }
  }
  if (options.live_head.seq > 0) {
    result.live_head = options.live_head;
    anchors.push_back({options.live_head, "the running daemon's last durable line"});
  }

  uint64_t number = 0;
  const auto broken = [&](const std::string& why) {
    result.ok = false;
    result.first_bad_line = number;
    result.message = "line " + std::to_string(number) + " of " + path + ": " + why;
    return result;
  };

  util::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno != ENOENT) {
    util::throw_errno("failed to open audit log " + path);
  }
  uint64_t size = 0;
  if (fd) {
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) {
      util::throw_errno("failed to stat audit log " + path);
    }
    size = static_cast<uint64_t>(st.st_size);
  }
  LineReader reader(fd.get(), size, "audit log " + path);

  std::optional<std::string> previous; // the previous line's bytes
  std::optional<uint64_t> last_seq;    // set once our chain has started
  bool saw_mac_line = false;           // a keyed line (checked or not) came before
  std::optional<uint64_t> tamper_line;
  std::string tamper_details;

  while (auto line = fd ? reader.next() : std::nullopt) {
    ++number;
    const auto entry = nlohmann::json::parse(*line, nullptr, false);
    if (!entry.is_object()) {
      return broken("not a JSON object");
    }

    if (!entry.contains("hash")) {
      if (last_seq) {
        return broken("no hash after the chain started (a line was inserted, or its hash stripped)");
      }
      if (entry.contains("seq") || entry.contains("prev")) {
        return broken("seq or prev without hash (its hash was stripped)");
      }
      ++result.entries;
      ++result.unkeyed_entries;
      ++result.legacy_entries;
      previous = std::move(*line);
      continue;
    }

    const auto sealed = unseal_line(*line);
    const auto& claimed = entry["hash"];
    if (!sealed || !claimed.is_string() || claimed.get_ref<const std::string&>() != sealed->hash) {
      return broken("hash is malformed or not the last member");
    }
    const uint64_t want_seq = last_seq ? *last_seq + 1 : 1;
    const auto seq = chained_seq(entry);
    const uint64_t s = seq.value_or(want_seq);
    const auto plain = [&] { return sha256_hex(sealed->body) == sealed->hash; };

    Kind kind = Kind::unchecked;
    if (key && s >= options.key_first_seq) {
      if (mac_equal(key->mac_hex(sealed->body), sealed->hash)) {
        kind = Kind::keyed;
      } else if (plain()) {
        return broken("an unkeyed line at seq " + std::to_string(s) + ", where every line from seq "
                      + std::to_string(options.key_first_seq)
                      + " on is keyed: the log was rewritten by someone without the key");
      } else {
        return broken("the MAC does not match the line (it was edited, or written without the key)");
      }
    } else if (plain()) {
      if (saw_mac_line) {
        return broken("an unkeyed line after keyed lines: the log was rewritten by someone without the key");
      }
      kind = Kind::plain;
    } else if (key && !options.earlier_key_lost) {
      return broken("hash does not match the line (it was edited)");
    }

    const std::string expected_prev = kind == Kind::plain
                                        ? (previous ? sha256_hex(*previous) : std::string(k_genesis_prev))
                                        : keyed_prev(previous);
    const auto prev_member = entry.find("prev");
    if (prev_member == entry.end() || !prev_member->is_string()
        || prev_member->get_ref<const std::string&>() != expected_prev) {
      return broken(number == 1 ? "prev is not the first line's all-zero value (lines were deleted before it)"
                                : "prev does not match line " + std::to_string(number - 1)
                                    + " (a line was deleted, inserted or reordered)");
    }
    if (!seq || *seq != want_seq) {
      return broken("seq is " + (seq ? std::to_string(*seq) : std::string("missing")) + ", expected "
                    + std::to_string(want_seq));
    }
    for (const auto& a : anchors) {
      if (a.anchor.seq == s && a.anchor.hash != sealed->hash) {
        return broken("seq " + std::to_string(s) + " is not the line " + a.source
                      + " records (its hash differs): the log was rewritten from there on");
      }
    }
    if (!tamper_line && string_member(entry, "action") == "audit_tampered") {
      tamper_line = number;
      tamper_details = string_member(entry, "details");
    }

    last_seq = seq;
    saw_mac_line = saw_mac_line || kind != Kind::plain;
    ++result.entries;
    result.keyed_entries += kind == Kind::keyed ? 1 : 0;
    result.unkeyed_entries += kind == Kind::plain ? 1 : 0;
    result.unchecked_entries += kind == Kind::unchecked ? 1 : 0;
    previous = std::move(*line);
  }

  result.torn_tail = fd && !reader.fragment().empty();
  ++number; // a cut is reported at the line that should follow the last one
  for (const auto& a : anchors) {
    if (a.anchor.seq > last_seq.value_or(0)) {
      return broken("the log ends at seq " + std::to_string(last_seq.value_or(0)) + ", but " + a.source
                    + " records seq " + std::to_string(a.anchor.seq) + ": lines were cut off its end");
    }
  }
  if (key && last_seq.value_or(0) < options.key_first_seq) {
    return broken("the log ends at seq " + std::to_string(last_seq.value_or(0)) + ", before seq "
                  + std::to_string(options.key_first_seq)
                  + ", the first line keyed under the store's audit key: lines were cut off its end");
  }
  if (anchor_missing && result.keyed_entries > 0) {
    return broken(options.anchor_path + " is missing although the log has keyed lines: it was deleted, so a cut "
                                        "of the log's end cannot be ruled out");
  }
  if (tamper_line) {
    number = *tamper_line;
    return broken("the daemon found the log tampered with when it started: " + tamper_details);
  }

  result.message = counts_text(result);
  if (!result.macs_checked && result.unchecked_entries > 0) {
    result.message += "; structure only: keyed lines need the key, which only the daemon holds (run `secrets serve` "
                      "and verify again)";
  }
  if (result.anchor) {
    result.message += "; anchored at seq " + std::to_string(result.anchor->seq);
  }
  if (result.torn_tail) {
    result.message += "; the last line is incomplete (" + std::to_string(reader.fragment().size())
                      + " bytes, a torn write): the daemon removes it when it next opens the log";
  }
  return result;
}

} // namespace audit

namespace audit {

namespace {

nlohmann::json anchor_json(const Anchor& a)
{
  nlohmann::json j = {{"seq", a.seq}, {"hash", a.hash}};
  if (!a.written_at.empty()) {
    j["written_at"] = a.written_at;
  }
  return j;
}

} // namespace

nlohmann::json to_json(const VerifyResult& result)
{
  nlohmann::json out = {{"ok", result.ok},
                        {"entries", result.entries},
                        {"message", result.message},
                        {"keyed_entries", result.keyed_entries},
                        {"unkeyed_entries", result.unkeyed_entries},
                        {"legacy_entries", result.legacy_entries},
                        {"unchecked_entries", result.unchecked_entries},
                        {"macs_checked", result.macs_checked}};
  if (result.first_bad_line) {
    out["first_bad_line"] = *result.first_bad_line;
  }
  if (result.torn_tail) {
    out["torn_tail"] = true;
  }
  if (result.anchor) {
    out["anchor"] = anchor_json(*result.anchor);
  }
  if (result.live_head) {
    out["live_head"] = anchor_json(*result.live_head);
  }
  return out;
}

} // namespace audit
