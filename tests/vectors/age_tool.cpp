// age_tool: a small test-only CLI over store::age, so tests/interop can check
// our files against the real `age` binaries. Binary data flows stdin -> stdout.
//
//   age_tool keygen OUT                 write a new identity file (0600)
//   age_tool recipient IDFILE           print the recipients of an identity file
//   age_tool encrypt [-a] -r AGE1... [-r ...]
//   age_tool encrypt [-a] [-n LOGN] -p  passphrase from $AGE_TOOL_PASSPHRASE
//   age_tool decrypt -i IDFILE | -p     binary or armored input
//
// The passphrase comes from the environment so it never appears in argv.

#include "store/age/age.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace age = store::age;

namespace {

constexpr const char* k_passphrase_env = "AGE_TOOL_PASSPHRASE";

std::string read_stdin()
{
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n == 0) {
      return out;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      util::throw_errno("read stdin");
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string passphrase_from_env()
{
  const char* value = std::getenv(k_passphrase_env);
  if (value == nullptr) {
    throw std::runtime_error(std::string("set ") + k_passphrase_env + " to the passphrase");
  }
  return value;
}

} // namespace

int main(int argc, char** argv)
{
  CLI::App app{"test driver for store::age"};
  app.require_subcommand(1);

  std::string keygen_out;
  auto* keygen = app.add_subcommand("keygen", "write a new identity file");
  keygen->add_option("OUT", keygen_out)->required();

  std::string recipient_file;
  auto* recipient = app.add_subcommand("recipient", "print the recipients of an identity file");
  recipient->add_option("IDFILE", recipient_file)->required();

  std::vector<std::string> recipients;
  bool encrypt_passphrase = false;
  bool encrypt_armor = false;
  int log_n = 18;
  auto* encrypt = app.add_subcommand("encrypt", "encrypt stdin to stdout");
  encrypt->add_option("-r", recipients, "recipient (age1...)");
  encrypt->add_flag("-p", encrypt_passphrase, "passphrase from $AGE_TOOL_PASSPHRASE");
  encrypt->add_flag("-a", encrypt_armor, "ASCII armor");
  encrypt->add_option("-n", log_n, "scrypt work factor");

  std::string identity_file;
  bool decrypt_passphrase = false;
  auto* decrypt = app.add_subcommand("decrypt", "decrypt stdin to stdout");
  decrypt->add_option("-i", identity_file, "identity file");
  decrypt->add_flag("-p", decrypt_passphrase, "passphrase from $AGE_TOOL_PASSPHRASE");

  CLI11_PARSE(app, argc, argv);

  try {
    if (keygen->parsed()) {
      const auto id = age::X25519Identity::generate();
      const auto file = age::format_identity_file(id, std::chrono::system_clock::now());
      util::write_file_atomic(keygen_out, file.view(), 0600);
    } else if (recipient->parsed()) {
      for (const auto& id : age::parse_identity_file(util::read_file(recipient_file))) {
        std::printf("%s\n", id.recipient().encode().c_str());
      }
    } else if (encrypt->parsed()) {
      if (encrypt_passphrase == !recipients.empty()) {
        throw std::runtime_error("encrypt takes either -p or -r");
      }
      const std::string plaintext = read_stdin();
      std::string file;
      if (encrypt_passphrase) {
        file = age::encrypt_with_passphrase(passphrase_from_env(), plaintext, log_n);
      } else {
        std::vector<age::X25519Recipient> parsed;
        for (const auto& r : recipients) {
          parsed.push_back(age::X25519Recipient::parse(r));
        }
        file = age::encrypt(parsed, plaintext);
      }
      util::write_all(STDOUT_FILENO, encrypt_armor ? age::armor(file) : file, "stdout");
    } else if (decrypt->parsed()) {
      if (decrypt_passphrase == !identity_file.empty()) {
        throw std::runtime_error("decrypt takes either -p or -i");
      }
      const std::string file = read_stdin();
      const auto plaintext = decrypt_passphrase
                               ? age::decrypt_with_passphrase(file, passphrase_from_env())
                               : age::decrypt(file, age::parse_identity_file(util::read_file(identity_file)));
      util::write_all(STDOUT_FILENO, plaintext.view(), "stdout");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "age_tool: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
