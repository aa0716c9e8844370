#include "cmd/project.hpp"

#include "cmd/dotenv.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <system_error>

namespace cmd {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* k_file_name = ".secrets.json";
constexpr const char* k_example_fix =
  R"(echo '{"secrets":[{"name":"NAME","env_var":"VAR"}]}' > .secrets.json  # or use --secret NAME)";

[[noreturn]] void fail(const std::string& message, const std::string& fix)
{
  throw util::Error(util::Errc::invalid_params, message, fix);
}

int line_at(const std::string& text, size_t offset)
{
  int line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
    }
  }
  return line;
}

// Walks JSON text that nlohmann already accepted, recording the line where
// each value starts, by path: "secrets", "secrets[1]", "secrets[1].env_var".
class LineMap
{
public:
  explicit LineMap(const std::string& text) : m_text(text)
  {
    skip_ws();
    value("");
  }

  // The line of `path`, or of its closest recorded ancestor.
  int line_of(std::string path) const
  {
    while (true) {
      if (const auto it = m_lines.find(path); it != m_lines.end()) {
        return it->second;
      }
      const size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) {
        return m_lines.count("") != 0 ? m_lines.at("") : 1;
      }
      path.resize(cut);
    }
  }

private:
  bool more() const { return m_pos < m_text.size(); }

  void skip_ws()
  {
    while (more() && (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' || m_text[m_pos] == '\n' || m_text[m_pos] == '\r')) {
      if (m_text[m_pos] == '\n') {
        ++m_line;
      }
      ++m_pos;
    }
  }

  std::string string_token()
  {
    std::string raw;
    ++m_pos; // opening quote
    while (more() && m_text[m_pos] != '"') {
      if (m_text[m_pos] == '\\') {
        raw += m_text[m_pos++];
      }
      if (more()) {
        raw += m_text[m_pos++];
      }
    }
    ++m_pos; // closing quote
    try {
      return json::parse("\"" + raw + "\"").get<std::string>();
    } catch (const json::exception&) {
      return raw;
    }
  }

  void value(const std::string& path)
  {
    if (!more()) {
      return;
    }
    m_lines.emplace(path, m_line);
    const char c = m_text[m_pos];
    if (c == '{') {
      ++m_pos;
      skip_ws();
      while (more() && m_text[m_pos] != '}') {
        const std::string key = string_token();
        skip_ws();
        ++m_pos; // ':'
        skip_ws();
        value(path.empty() ? key : path + "." + key);
        skip_ws();
        if (more() && m_text[m_pos] == ',') {
          ++m_pos;
          skip_ws();
        }
      }
      ++m_pos;
    } else if (c == '[') {
      ++m_pos;
      skip_ws();
      for (size_t i = 0; more() && m_text[m_pos] != ']'; ++i) {
        value(path + "[" + std::to_string(i) + "]");
        skip_ws();
        if (more() && m_text[m_pos] == ',') {
          ++m_pos;
          skip_ws();
        }
      }
      ++m_pos;
    } else if (c == '"') {
      string_token();
    } else {
      while (more() && std::string_view(",]} \t\r\n").find(m_text[m_pos]) == std::string_view::npos) {
        ++m_pos;
      }
    }
  }

  const std::string& m_text;
  size_t m_pos = 0;
  int m_line = 1;
  std::map<std::string, int> m_lines;
};

std::string find_upwards()
{
  std::error_code ec;
  fs::path dir = fs::current_path(ec);
  if (ec) {
    fail("cannot determine the current directory: " + ec.message(), "cd to your project and retry");
  }
  const fs::path start = dir;
  while (true) {
    const fs::path candidate = dir / k_file_name;
    if (fs::is_regular_file(candidate, ec)) {
      return candidate.string();
    }
    if (!dir.has_parent_path() || dir.parent_path() == dir) {
      break;
    }
    dir = dir.parent_path();
  }
  fail("no .secrets.json in " + start.string() + " or any parent directory", k_example_fix);
}

void check_env_var(const std::string& where, const std::string& env_var, const std::string& fix)
{
  if (!is_valid_env_name(env_var)) {
    fail(where + ": invalid env var name \"" + env_var + "\" (use letters, digits and '_', not starting with a digit)",
         fix);
  }
}

void check_duplicates(const Project& p, const std::string& fix)
{
  std::set<std::string> seen;
  for (const auto& s : p.secrets) {
    if (!seen.insert(s.env_var).second) {
      fail(p.source + ": env var " + s.env_var + " is set by more than one secret", fix);
    }
  }
}

// The loader serves both `secrets env` and `secrets exec`.
std::string flag_fix(const std::string& flag)
{
  return "secrets exec --secret " + flag + " -- CMD  # or: secrets env --secret " + flag;
}

Project from_flags(const std::vector<std::string>& flags)
{
  Project p;
  p.source = "--secret flags";
  for (const auto& flag : flags) {
    SecretRef ref;
    const size_t eq = flag.find('=');
    ref.name = flag.substr(0, eq);
    ref.env_var = eq == std::string::npos ? default_env_var(ref.name) : flag.substr(eq + 1);
    if (ref.name.empty()) {
      fail("--secret " + flag + ": the secret name is empty", flag_fix("NAME=ENV_VAR"));
    }
    check_env_var("--secret " + flag, ref.env_var, flag_fix(ref.name + "=ENV_VAR"));
    p.secrets.push_back(std::move(ref));
  }
  check_duplicates(p, flag_fix("NAME=OTHER_ENV_VAR") + "  # each secret needs its own env var");
  return p;
}

Project from_file(const std::string& path)
{
  std::optional<std::string> text;
  try {
    text = util::read_file_if_exists(path);
  } catch (const util::Error& e) {
    fail(e.what(), "chmod u+r " + path);
  }
  if (!text) {
    fail(path + ": no such file", k_example_fix);
  }
  const std::string fix = "edit " + path + R"( (schema: {"secrets":[{"name","env_var","ttl"?}],"client_id"?}))";
  json doc;
  try {
    doc = json::parse(*text);
  } catch (const json::parse_error& e) {
    const size_t at = e.byte > 0 ? e.byte - 1 : 0;
    fail(path + " line " + std::to_string(line_at(*text, at)) + ": invalid JSON", fix);
  } catch (const json::out_of_range&) {
    fail(path + ": invalid JSON: a number is out of range", fix); // 1e999 (found by fuzz/fuzz_project.cpp)
  }
  const LineMap lines(*text);
  auto schema = [&](const std::string& field, const std::string& what) {
    fail(path + " line " + std::to_string(lines.line_of(field)) + ": " + field + " " + what, fix);
  };
  if (!doc.is_object()) {
    schema("the document", "must be an object");
  }
  Project p;
  p.source = path;
  if (doc.contains("client_id")) {
    if (!doc["client_id"].is_string()) {
      schema("client_id", "must be a string");
    }
    p.client_id = doc["client_id"].get<std::string>();
  }
  if (!doc.contains("secrets")) {
    schema("secrets", "is required");
  }
  const json& list = doc["secrets"];
  if (!list.is_array() || list.empty()) {
    schema("secrets", "must be a non-empty array");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = "secrets[" + std::to_string(i) + "]";
    const json& item = list[i];
    if (!item.is_object()) {
      schema(at, "must be an object");
    }
    SecretRef ref;
    for (const char* field : {"name", "env_var"}) {
      const std::string where = at + "." + field;
      if (!item.contains(field)) {
        schema(where, "is required");
      }
      if (!item[field].is_string()) {
        schema(where, "must be a string");
      }
      if (item[field].get_ref<const std::string&>().empty()) {
        schema(where, "must not be empty");
      }
    }
    ref.name = item["name"].get<std::string>();
    ref.env_var = item["env_var"].get<std::string>();
    if (item.contains("ttl")) {
      if (!item["ttl"].is_string()) {
        schema(at + ".ttl", "must be a string (a duration such as \"30m\")");
      }
      ref.ttl = item["ttl"].get<std::string>();
    }
    if (!is_valid_env_name(ref.env_var)) {
      schema(at + ".env_var", "\"" + ref.env_var + "\" is not a valid env var name (letters, digits and '_', not starting with a digit)");
    }
    p.secrets.push_back(std::move(ref));
  }
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < p.secrets.size(); ++i) {
    const auto [it, inserted] = seen.emplace(p.secrets[i].env_var, i);
    if (!inserted) {
      schema("secrets[" + std::to_string(i) + "].env_var",
             "duplicates secrets[" + std::to_string(it->second) + "].env_var (" + p.secrets[i].env_var + ")");
    }
  }
  return p;
}

} // namespace

std::string default_env_var(const std::string& secret_name)
{
  std::string out = secret_name;
  for (auto& c : out) {
    if (c == '-' || c == '.') {
      c = '_';
    } else if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return out;
}

Project load_project(const std::string& file_flag, const std::vector<std::string>& secret_flags)
{
  if (!secret_flags.empty()) {
    return from_flags(secret_flags);
  }
  return from_file(file_flag.empty() ? find_upwards() : file_flag);
}

} // namespace cmd
