#pragma once
// The `secrets` CLI (CLI11). Every command prints one JSON envelope on stdout,
// except a raw `lease`, which prints only the value. Exit codes (DESIGN.md 7):
// 0 ok, 1 error, 2 usage, 3 daemon not running, 4 not found, 5 denied.

namespace cmd {

int run(int argc, char** argv);

} // namespace cmd
