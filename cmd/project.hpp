#pragma once
// .secrets.json: which secrets `secrets env` and `secrets exec` lease, and the
// environment variables they go in (DESIGN.md section 7). Schema:
//   {"secrets":[{"name":"github-token","env_var":"GITHUB_TOKEN","ttl":"30m"}],
//    "client_id":"my-agent"}
// ttl and client_id are optional.

#include <string>
#include <vector>

namespace cmd {

struct SecretRef
{
  std::string name;
  std::string env_var;
  std::string ttl; // empty = default
};

struct Project
{
  std::vector<SecretRef> secrets;
  std::string client_id; // may be empty
  std::string source;    // the file path, or "--secret flags"
};

// If secret_flags is non-empty (values "NAME" or "NAME=ENV_VAR"; the env var
// defaults to NAME uppercased with '-' and '.' -> '_'), they are used and no
// file is read. Else file_flag if non-empty, else .secrets.json looked up from
// the cwd upwards. Throws util::Error(Errc::invalid_params, msg, fix): schema
// errors name the field and the line (".secrets.json line 4: secrets[1].env_var
// must be a string"), invalid env var names, duplicate env vars, no file found.
Project load_project(const std::string& file_flag, const std::vector<std::string>& secret_flags);

// The env var a bare `--secret NAME` maps to: "github-token" -> "GITHUB_TOKEN".
std::string default_env_var(const std::string& secret_name);

} // namespace cmd
