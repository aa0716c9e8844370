#pragma once
// A private temporary directory per test, removed with everything in it
// (ccache's TestContext).

#include "util/error.hpp"

#include <filesystem>
#include <stdlib.h>
#include <string>

namespace testutil {

class TempDir
{
public:
  TempDir()
  {
    char tmpl[] = "/tmp/agent-secrets-test-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      util::throw_errno("mkdtemp");
    }
    m_path = tmpl;
  }
  ~TempDir()
  {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return m_path; }
  std::string file(const std::string& name) const { return m_path + "/" + name; }

private:
  std::string m_path;
};

} // namespace testutil
