#include "cmd/dotenv.hpp"

#include "util/error.hpp"

namespace cmd {

namespace {

bool is_blank(char c)
{
  return c == ' ' || c == '\t';
}

bool is_key_char(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

[[noreturn]] void parse_error(int line, const std::string& what)
{
  throw util::Error(util::Errc::invalid_params, "line " + std::to_string(line) + ": " + what,
                    "fix line " + std::to_string(line) + " of the file (KEY=value, KEY='value' or KEY=\"value\")");
}

class Parser
{
public:
  explicit Parser(std::string_view text) : m_text(text) {}

  std::vector<DotenvEntry> parse()
  {
    std::vector<DotenvEntry> out;
    while (m_pos < m_text.size()) {
      skip_blanks();
      if (at_end()) {
        break;
      }
      if (peek() == '\n' || peek() == '\r') {
        advance();
        continue;
      }
      if (peek() == '#') {
        skip_to_eol();
        continue;
      }
      out.push_back(entry());
    }
    return out;
  }

private:
  bool at_end() const { return m_pos >= m_text.size(); }
  char peek() const { return m_text[m_pos]; }

  void advance()
  {
    if (m_text[m_pos] == '\n') {
      ++m_line;
    }
    ++m_pos;
  }

  void skip_blanks()
  {
    while (!at_end() && is_blank(peek())) {
      ++m_pos;
    }
  }

  void skip_to_eol()
  {
    while (!at_end() && peek() != '\n') {
      ++m_pos;
    }
  }

  // At the end of a line (or of the text), after an optional "\r".
  bool at_eol() const
  {
    if (at_end() || peek() == '\n') {
      return true;
    }
    return peek() == '\r' && (m_pos + 1 == m_text.size() || m_text[m_pos + 1] == '\n');
  }

  DotenvEntry entry()
  {
    DotenvEntry e;
    e.line = m_line;
    if (m_text.substr(m_pos).starts_with("export") && m_pos + 6 < m_text.size() && is_blank(m_text[m_pos + 6])) {
      m_pos += 6;
      skip_blanks();
    }
    const size_t start = m_pos;
    while (!at_end() && is_key_char(peek())) {
      ++m_pos;
    }
    e.key = std::string(m_text.substr(start, m_pos - start));
    if (e.key.empty()) {
      parse_error(e.line, "expected KEY=value");
    }
    skip_blanks();
    if (at_end() || peek() != '=') {
      parse_error(e.line, "expected '=' after " + e.key);
    }
    ++m_pos;
    const size_t after_equals = m_pos;
    skip_blanks();
    if (at_eol()) {
      skip_to_eol();
      return e;
    }
    if (peek() == '#' && m_pos > after_equals) {
      skip_to_eol(); // KEY= # comment
      return e;
    }
    if (peek() == '\'' || peek() == '"') {
      quoted(e);
    } else {
      unquoted(e);
    }
    return e;
  }

  void quoted(DotenvEntry& e)
  {
    while (!at_end()) {
      const char c = peek();
      if (c == '\'') {
        const size_t close = m_text.find('\'', m_pos + 1);
        if (close == std::string_view::npos) {
          parse_error(e.line, "unterminated single quote in " + e.key);
        }
        ++m_pos;
        while (m_pos < close) {
          e.value += peek();
          advance();
        }
        ++m_pos;
      } else if (c == '"') {
        double_quoted(e);
      } else if (c == '\\' && m_pos + 1 < m_text.size() && m_text[m_pos + 1] != '\n') {
        e.value += m_text[m_pos + 1];
        m_pos += 2;
      } else {
        break;
      }
    }
    skip_blanks();
    if (!at_end() && peek() == '#') {
      skip_to_eol();
    }
    if (!at_eol()) {
      parse_error(m_line, "unexpected text after the closing quote of " + e.key);
    }
    skip_to_eol();
  }

  void double_quoted(DotenvEntry& e)
  {
    ++m_pos; // the opening quote
    while (true) {
      if (at_end()) {
        parse_error(e.line, "unterminated double quote in " + e.key);
      }
      const char c = peek();
      if (c == '"') {
        ++m_pos;
        return;
      }
      if (c == '\\' && m_pos + 1 < m_text.size()) {
        const char next = m_text[m_pos + 1];
        switch (next) {
        case 'n':
          e.value += '\n';
          break;
        case 'r':
          e.value += '\r';
          break;
        case 't':
          e.value += '\t';
          break;
        case '"':
        case '\\':
        case '$':
        case '`':
          e.value += next;
          break;
        default:
          e.value += '\\';
          e.value += next;
          break;
        }
        if (next == '\n') {
          ++m_line;
        }
        m_pos += 2;
        continue;
      }
      e.value += c;
      advance();
    }
  }

  void unquoted(DotenvEntry& e)
  {
    const size_t start = m_pos;
    skip_to_eol();
    std::string_view v = m_text.substr(start, m_pos - start);
    for (size_t i = 1; i < v.size(); ++i) {
      if (v[i] == '#' && is_blank(v[i - 1])) {
        v = v.substr(0, i);
        break;
      }
    }
    while (!v.empty() && (is_blank(v.back()) || v.back() == '\r')) {
      v.remove_suffix(1);
    }
    e.value = std::string(v);
  }

  std::string_view m_text;
  size_t m_pos = 0;
  int m_line = 1;
};

} // namespace

bool is_valid_env_name(std::string_view name)
{
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string quote_env_value(std::string_view value)
{
  std::string out;
  out.reserve(value.size() + 2);
  out += '\'';
  for (const char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::vector<DotenvEntry> parse_dotenv(std::string_view text)
{
  return Parser(text).parse();
}

} // namespace cmd
