#pragma once
// The man page, secrets(1), written from the CLI11 tree as the completion
// scripts are (cmd/cli_model.hpp), so that it cannot drift from the commands.
// `secrets man` (hidden) prints it; `make deb` installs it gzipped as
// /usr/share/man/man1/secrets.1.gz.

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

namespace cmd {

// `text` as one roff text line: a backslash becomes \e, every - becomes \-
// (a minus, which man renders as the ASCII hyphen people copy into a shell),
// and a leading . or ' (which roff would read as a request) gets \& before it.
std::string roff_text(std::string_view text);

// The whole page for `app` (the root `secrets` App): no date and nothing from
// the machine, so two builds of one version give the same bytes.
std::string man_page(CLI::App& app);

} // namespace cmd
