#include "cmd/passphrase_input.hpp"

#include "util/error.hpp"
#include "util/file.hpp"
#include "util/spawn.hpp"


#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <iterator>
#include <cstdlib>
#include <string>

namespace cmd {

using store::age::SecretBuffer;

namespace {

constexpr const char* k_fd_fix = "pass it on a file descriptor: --passphrase-fd 3 3<file, or run it in a terminal";

util::Error invalid(const std::string& message, const std::string& fix = k_fd_fix)
{
  return util::Error(util::Errc::invalid_params, message, fix);
}

void refuse_empty(const SecretBuffer& b)
{
  if (b.empty()) {
    throw invalid("the passphrase is empty", "choose a non-empty passphrase");
  }
}

// Reads one byte, retrying on EINTR; 0 at EOF.
ssize_t read_byte(int fd, uint8_t& byte)
{
  for (;;) {
    const ssize_t n = ::read(fd, &byte, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return n;
  }
}

// --passphrase-fd: everything up to EOF, minus one trailing newline. Read
// byte by byte straight into the SecretBuffer, so no other copy exists.
SecretBuffer read_from_fd(int fd)
{
  SecretBuffer out(k_max_passphrase + 1);
  size_t at = 0;
  for (;;) {
    uint8_t byte = 0;
    const ssize_t n = read_byte(fd, byte);
    if (n < 0) {
      util::throw_errno("failed to read the passphrase from descriptor " + std::to_string(fd));
    }
    if (n == 0) {
      break;
    }
    if (at == out.size()) {
      throw invalid("the passphrase on descriptor " + std::to_string(fd) + " is longer than "
                    + std::to_string(k_max_passphrase) + " bytes");
    }
    out.data()[at++] = byte;
  }
  if (at > 0 && out.data()[at - 1] == '\n') {
    --at;
  }
  out.shrink(at);
  refuse_empty(out);
  return out;
}

// The terminal's settings to put back if a signal ends us while echo is off
// (Ctrl-C at the prompt): tcsetattr is async-signal-safe.
int g_echo_fd = -1;
termios g_echo_saved{};
constexpr int k_ending_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_echo_and_reraise(int signo)
{
  if (g_echo_fd >= 0) {
    ::tcsetattr(g_echo_fd, TCSANOW, &g_echo_saved);
  }
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

// Echo off on the terminal for as long as it lives, restored however we
// leave: an exception, or one of k_ending_signals.
class EchoOff
{
public:
  explicit EchoOff(int fd)
  {
    if (::tcgetattr(fd, &g_echo_saved) != 0) {
      util::throw_errno("failed to read the terminal's settings");
    }
    g_echo_fd = fd;
    struct sigaction sa{};
    sa.sa_handler = restore_echo_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < std::size(k_ending_signals); ++i) {
      ::sigaction(k_ending_signals[i], &sa, &m_old[i]);
    }
    termios quiet = g_echo_saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    // TCSANOW, not TCSAFLUSH: typed-ahead input is the answer, not noise.
    if (::tcsetattr(fd, TCSANOW, &quiet) != 0) {
      const int saved_errno = errno;
      restore();
      errno = saved_errno;
      util::throw_errno("failed to turn the terminal's echo off");
    }
  }
  ~EchoOff() { restore(); }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

private:
  void restore()
  {
    ::tcsetattr(g_echo_fd, TCSANOW, &g_echo_saved);
    g_echo_fd = -1;
    for (size_t i = 0; i < std::size(k_ending_signals); ++i) {
      ::sigaction(k_ending_signals[i], &m_old[i], nullptr);
    }
  }

  struct sigaction m_old[std::size(k_ending_signals)]{};
};

SecretBuffer read_tty_line(int tty, std::string_view prompt)
{
  SecretBuffer out(k_max_passphrase + 1);
  size_t at = 0;
  bool too_long = false;
  {
    EchoOff quiet(tty);
    // The prompt comes once echo is off, so nothing typed after it is shown.
    util::write_all(tty, std::string(prompt) + ": ", "the terminal");
    for (;;) {
      uint8_t byte = 0;
      const ssize_t n = read_byte(tty, byte);
      if (n < 0) {
        util::throw_errno("failed to read the passphrase from the terminal");
      }
      if (n == 0 || byte == '\n') {
        break;
      }
      if (at == out.size()) {
        too_long = true; // keep reading to the end of the line, so it does not reach the shell
        continue;
      }
      out.data()[at++] = byte;
    }
  }
  util::write_all(tty, "\n", "the terminal");
  if (too_long) {
    throw invalid("the passphrase is longer than " + std::to_string(k_max_passphrase) + " bytes",
                  "choose a shorter passphrase");
  }
  if (at > 0 && out.data()[at - 1] == '\r') {
    --at;
  }
  out.shrink(at);
  refuse_empty(out);
  return out;
}

bool same(const SecretBuffer& a, const SecretBuffer& b)
{
  // Not constant-time, and need not be: both are what the user just typed.
  return a.view() == b.view();
}

SecretBuffer read_from_tty(int tty, std::string_view prompt, bool confirm_new)
{
  SecretBuffer first = read_tty_line(tty, prompt);
  if (confirm_new) {
    SecretBuffer again = read_tty_line(tty, "repeat it");
    if (!same(first, again)) {
      throw invalid("the two passphrases differ", "run it again and type the same passphrase twice");
    }
  }
  return first;
}

// `pinentry` found on PATH, or nothing.
std::optional<std::string> find_pinentry()
{
  const char* path = std::getenv("PATH");
  if (path == nullptr) {
    return std::nullopt;
  }
  std::string_view rest = path;
  while (true) {
    const auto colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    if (!dir.empty()) {
      const std::string candidate = dir + "/pinentry";
      struct stat st{};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
    }
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    rest.remove_prefix(colon + 1);
  }
}

// A conversation with a pinentry over its stdin and stdout.
class Pinentry
{
public:
  explicit Pinentry(const std::string& program)
  {
    auto to_child = util::make_pipe();
    auto from_child = util::make_pipe();
    util::SpawnSpec spec;
    spec.program = program;
    spec.argv = {"pinentry"};
    spec.fds = {{0, to_child.read_end.get()}, {1, from_child.write_end.get()}};
    spec.close_from = 3;
    spec.kill_grace = std::chrono::milliseconds{1000};
    m_child.emplace(util::spawn(spec));
    m_in = std::move(to_child.write_end);
    m_out = std::move(from_child.read_end);
  }

  // One line of the reply, in a SecretBuffer (a D line is the passphrase).
  SecretBuffer read_line()
  {
    SecretBuffer line(k_line_max);
    size_t at = 0;
    for (;;) {
      uint8_t byte = 0;
      const ssize_t n = read_byte(m_out.get(), byte);
      if (n < 0) {
        util::throw_errno("failed to read from pinentry");
      }
      if (n == 0) {
        throw util::Error(util::Errc::io, "pinentry ended the conversation", k_fd_fix);
      }
      if (byte == '\n') {
        line.shrink(at);
        return line;
      }
      if (at == line.size()) {
        throw util::Error(util::Errc::io, "pinentry sent a line longer than the Assuan limit", k_fd_fix);
      }
      line.data()[at++] = byte;
    }
  }

  void send(const std::string& command) { util::write_all(m_in.get(), command + "\n", "pinentry"); }

  // Sends a command and expects OK; comments and status lines are skipped.
  void command(const std::string& command)
  {
    send(command);
    expect_ok(command.substr(0, command.find(' ')));
  }

  void expect_ok(const std::string& what)
  {
    for (;;) {
      const SecretBuffer line = read_line();
      const auto l = assuan::classify(line.view());
      if (l.kind == assuan::LineKind::ok) {
        return;
      }
      if (l.kind == assuan::LineKind::err) {
        throw util::Error(util::Errc::io, "pinentry refused " + what + ": " + std::string(l.rest), k_fd_fix);
      }
    }
  }

  // GETPIN: the D lines decoded, and whether pinentry says it asked twice.
  SecretBuffer getpin(bool& repeated)
  {
    send("GETPIN");
    SecretBuffer pin(k_max_passphrase);
    size_t at = 0;
    for (;;) {
      const SecretBuffer line = read_line();
      const auto l = assuan::classify(line.view());
      switch (l.kind) {
      case assuan::LineKind::data:
        assuan::percent_decode_into(l.rest, pin, at);
        break;
      case assuan::LineKind::status:
        if (l.rest.starts_with("PIN_REPEATED")) {
          repeated = true;
        }
        break;
      case assuan::LineKind::err:
        throw util::Error(util::Errc::invalid_params,
                          "the passphrase prompt was cancelled (pinentry: " + std::string(l.rest) + ")",
                          "run it again and enter the passphrase, or pass it with --passphrase-fd 3 3<file");
      case assuan::LineKind::ok:
        pin.shrink(at);
        return pin;
      default:
        break;
      }
    }
  }

  ~Pinentry()
  {
    if (m_child && !m_child->reaped()) {
      try {
        send("BYE");
      } catch (...) {
        // It is gone already; the Child's destructor reaps it.
      }
      m_in.reset();
      m_child->terminate();
      m_child->wait();
    }
  }
  Pinentry(const Pinentry&) = delete;
  Pinentry& operator=(const Pinentry&) = delete;

private:
  // Assuan's line limit is 1000 bytes; a D line's escapes fit in that.
  static constexpr size_t k_line_max = 1002;
  std::optional<util::Child> m_child;
  util::UniqueFd m_in;
  util::UniqueFd m_out;
};

SecretBuffer read_from_pinentry(const std::string& program, std::string_view prompt, bool confirm_new)
{
  Pinentry p(program);
  p.expect_ok("the greeting");
  if (const char* tty = std::getenv("GPG_TTY"); tty != nullptr && *tty != '\0') {
    p.command("OPTION ttyname=" + assuan::percent_encode(tty));
  }
  if (const char* term = std::getenv("TERM"); term != nullptr && *term != '\0') {
    p.command("OPTION ttytype=" + assuan::percent_encode(term));
  }
  p.command("SETTITLE agent-secrets");
  p.command("SETDESC " + assuan::percent_encode("agent-secrets: " + std::string(prompt)));
  p.command("SETPROMPT Passphrase:");
  if (confirm_new) {
    p.command("SETREPEAT " + assuan::percent_encode("Repeat:"));
    p.command("SETREPEATERROR " + assuan::percent_encode("the passphrases differ"));
  }
  bool repeated = false;
  SecretBuffer pin = p.getpin(repeated);
  refuse_empty(pin);
  if (confirm_new && !repeated) {
    // A pinentry without SETREPEAT support asked once: ask again ourselves.
    p.command("SETDESC " + assuan::percent_encode("agent-secrets: repeat the new passphrase"));
    bool ignored = false;
    SecretBuffer again = p.getpin(ignored);
    if (!same(pin, again)) {
      throw invalid("the two passphrases differ", "run it again and type the same passphrase twice");
    }
  }
  return pin;
}

} // namespace

SecretBuffer read_passphrase(std::optional<int> fd, std::string_view prompt, bool confirm_new)
{
  if (fd) {
    if (*fd < 0 || ::fcntl(*fd, F_GETFD) < 0) {
      throw invalid("--passphrase-fd " + std::to_string(*fd) + " is not an open descriptor");
    }
    return read_from_fd(*fd);
  }
  const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) {
    util::UniqueFd owned(tty);
    return read_from_tty(tty, prompt, confirm_new);
  }
  if (const auto pinentry = find_pinentry()) {
    return read_from_pinentry(*pinentry, prompt, confirm_new);
  }
  throw invalid("no passphrase: no --passphrase-fd, no terminal and no pinentry on PATH");
}

namespace assuan {

Line classify(std::string_view line)
{
  const auto after = [&](size_t n) { return line.size() > n ? line.substr(n) : std::string_view{}; };
  if (line == "OK" || line.starts_with("OK ")) {
    return {LineKind::ok, after(3)};
  }
  if (line == "ERR" || line.starts_with("ERR ")) {
    return {LineKind::err, after(4)};
  }
  if (line.starts_with("D ")) {
    return {LineKind::data, after(2)};
  }
  if (line == "S" || line.starts_with("S ")) {
    return {LineKind::status, after(2)};
  }
  if (line.starts_with("#")) {
    return {LineKind::comment, after(1)};
  }
  return {LineKind::other, line};
}

namespace {

int hex_value(char c)
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

} // namespace

void percent_decode_into(std::string_view in, SecretBuffer& out, size_t& at)
{
  for (size_t i = 0; i < in.size(); ++i) {
    uint8_t byte = static_cast<uint8_t>(in[i]);
    if (byte == '%') {
      const bool complete = i + 2 < in.size();
      const int hi = complete ? hex_value(in[i + 1]) : -1;
      const int lo = complete ? hex_value(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        throw util::Error(util::Errc::invalid_params, "pinentry sent a malformed %XX escape",
                          "check the pinentry program on PATH");
      }
      byte = static_cast<uint8_t>(hi * 16 + lo);
      i += 2;
    }
    if (at >= out.size()) {
      throw util::Error(util::Errc::invalid_params,
                        "the passphrase is longer than " + std::to_string(out.size()) + " bytes",
                        "choose a shorter passphrase");
    }
    out.data()[at++] = byte;
  }
}

std::string percent_encode(std::string_view in)
{
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : in) {
    if (c == '%' || c == '\n' || c == '\r') {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += k_hex[b >> 4];
      out += k_hex[b & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

} // namespace assuan

} // namespace cmd
