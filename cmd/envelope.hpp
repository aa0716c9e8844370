#pragma once
// The JSON envelopes of the Go agent-secrets CLI, with next_actions.
//   {"ok":true,"success":true,"command":…,"result":{…},"next_actions":[…]}
//   {"ok":false,"success":false,"command":…,"error":{"message","code"},"fix":…}

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace cmd {

using nlohmann::json;
// Envelopes keep their members in the Go CLI's order (ok first).
using Envelope = nlohmann::ordered_json;

namespace exit_code {
constexpr int ok = 0;
constexpr int error = 1;
constexpr int usage = 2;
constexpr int daemon_down = 3;
constexpr int not_found = 4;
constexpr int denied = 5;
// 6 is `scan`: leaks found (DESIGN.md section 14).
constexpr int locked = 7; // the store is locked: secrets unlock
} // namespace exit_code

struct Action
{
  std::string command;
  std::string description;
};

Envelope success_envelope(const std::string& command, json result, const std::vector<Action>& next_actions);
Envelope error_envelope(const std::string& command, const std::string& message, const std::string& code,
                    const std::string& fix, const std::vector<Action>& next_actions = {});

// Prints with two-space indentation and a newline.
void print(const Envelope& envelope, std::FILE* out = stdout);

// A failed command: what to print and how to exit.
struct Failure
{
  std::string message;
  std::string code;
  std::string fix;
  int exit = exit_code::error;
};

// Maps util::Error, rpc::RemoteError and anything else to a Failure.
Failure failure_from_current_exception();

} // namespace cmd
