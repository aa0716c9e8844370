#!/usr/bin/env bash
# Installs agent-secrets for the current user.
#
#   ./install.sh               dependencies (Debian), build, $PREFIX/bin/secrets,
#                              completions, then `secrets init` if there is no store
#   ./install.sh --service     ... and a systemd user unit (a launchd agent on macOS)
#   ./install.sh --uninstall   removes what an install put there; never the store
#
# Environment:
#   PREFIX              where to install (default ~/.local; the binary goes to $PREFIX/bin)
#   BUILD_DIR           the CMake build directory (default build; an existing one is reused)
#   SECRETS_BIN         a binary already built: no dependencies, no build
#   AGENT_SECRETS_HOME  the store (default ~/.agent-secrets); passed on to the service
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
BUILD_DIR=${BUILD_DIR:-$src/build}
store=${AGENT_SECRETS_HOME:-$HOME/.agent-secrets}
manifest=$PREFIX/share/agent-secrets/installed-files
unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
plist=$HOME/Library/LaunchAgents/dev.agent-secrets.plist

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

service=0
uninstall=0
for arg in "$@"; do
  case $arg in
    --service) service=1 ;;
    --uninstall) uninstall=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done

# `systemctl --user` works only with a user manager (a login session or lingering).
have_user_systemd() {
  command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1
}

# Copies $1 to $2 through a temp file and a rename: a running daemon keeps its
# old binary, and no reader sees half a file.
put() {
  local from=$1 to=$2 mode=$3
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to.tmp.$$"
  chmod "$mode" "$to.tmp.$$"
  mv -f "$to.tmp.$$" "$to"
  grep -qxF -- "$to" "$manifest" 2>/dev/null || printf '%s\n' "$to" >>"$manifest"
}

# The binary without its debug info (a third of its size is DWARF). A binary
# we built keeps its debug info beside it, in $BUILD_DIR/secrets.debug, and
# the installed one points there (gnu-debuglink), for gdb.
put_binary() {
  local from=$1 to=$2 tmp
  tmp=$(mktemp)
  if command -v objcopy >/dev/null 2>&1; then
    if [[ $from == "$BUILD_DIR/secrets" ]] && objcopy --only-keep-debug "$from" "$from.debug" 2>/dev/null; then
      objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$from.debug" "$from" "$tmp"
    else
      objcopy --strip-debug --strip-unneeded "$from" "$tmp"
    fi
  else
    say "objcopy not found (binutils): installing the binary with its debug info"
    cp "$from" "$tmp"
  fi
  put "$tmp" "$to" 0755
  rm -f "$tmp"
}

# Removes $1 and then its parents while they are empty, never $2 or above.
prune_dirs() {
  local dir=$1 stop=$2
  while [[ $dir == "$stop"/* ]] && rmdir -- "$dir" 2>/dev/null; do
    dir=$(dirname "$dir")
  done
}

# Writes stdin to $1 (mode 0644) and records it.
put_text() {
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  put "$tmp" "$1" 0644
  rm -f "$tmp"
}

# A systemd unit from packaging/systemd with our paths in it (% is systemd's
# specifier character, so a literal one is doubled).
render_unit() {
  local bin=${1//%/%%} line
  while IFS= read -r line; do
    line=${line//%h\/.local\/bin\/secrets/\"$bin\"}
    if [[ -n ${AGENT_SECRETS_HOME:-} ]]; then
      line=${line//%h\/.agent-secrets/${AGENT_SECRETS_HOME//%/%%}}
      if [[ $line == "[Service]" ]]; then
        line+=$'\n'"Environment=\"AGENT_SECRETS_HOME=${AGENT_SECRETS_HOME//%/%%}\""
      fi
    fi
    printf '%s\n' "$line"
  done
}

do_uninstall() {
  if [[ -f $unit_dir/agent-secrets.service || -f $unit_dir/agent-secrets.socket ]] && have_user_systemd; then
    systemctl --user disable --now agent-secrets.socket agent-secrets.service >/dev/null 2>&1 || true
  fi
  if [[ -f $plist ]] && command -v launchctl >/dev/null 2>&1; then
    launchctl unload -w "$plist" >/dev/null 2>&1 || true
  fi
  if [[ ! -f $manifest ]]; then
    say "nothing to remove: no $manifest (was it installed with PREFIX=$PREFIX?)"
  else
    local f
    while IFS= read -r f; do
      [[ -n $f ]] || continue
      rm -f -- "$f" && say "removed $f"
      # The folders an install made, once empty (never $PREFIX itself, nor
      # ~/.config or ~/Library).
      case $f in
        "$PREFIX"/*) prune_dirs "$(dirname "$f")" "$PREFIX" ;;
        "$unit_dir"/*) prune_dirs "$(dirname "$f")" "${XDG_CONFIG_HOME:-$HOME/.config}" ;;
        "$plist") prune_dirs "$(dirname "$f")" "$HOME/Library" ;;
      esac
    done <"$manifest"
    rm -f -- "$manifest"
    prune_dirs "$(dirname "$manifest")" "$PREFIX"
  fi
  if have_user_systemd; then
    systemctl --user daemon-reload >/dev/null 2>&1 || true
  fi
  say "the store at $store is left as it is (remove it yourself if you mean to)"
}

build() {
  if [[ -n ${SECRETS_BIN:-} ]]; then
    [[ -x $SECRETS_BIN ]] || die "SECRETS_BIN=$SECRETS_BIN is not an executable"
    bin=$SECRETS_BIN
    return
  fi
  if command -v dpkg-query >/dev/null 2>&1; then
    bash "$src/scripts/deps.sh" --daemon
  else
    say "not a Debian system: install a C++20 compiler, cmake, libsodium, Boost, nlohmann-json, CLI11, libcurl, spdlog and zlib yourself"
  fi
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S "$src" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  local jobs
  jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
  cmake --build "$BUILD_DIR" --target secrets -j "$jobs"
  bin=$BUILD_DIR/secrets
}

install_service_linux() {
  local exe=$1
  render_unit "$exe" <"$src/packaging/systemd/agent-secrets.service" | put_text "$unit_dir/agent-secrets.service"
  render_unit "$exe" <"$src/packaging/systemd/agent-secrets.socket" | put_text "$unit_dir/agent-secrets.socket"
  say "wrote $unit_dir/agent-secrets.service and agent-secrets.socket"
  if have_user_systemd; then
    systemctl --user daemon-reload
    systemctl --user enable --now agent-secrets.service
    say "enabled and started agent-secrets.service (systemctl --user status agent-secrets)"
    say "socket activation instead: systemctl --user disable --now agent-secrets.service && systemctl --user enable --now agent-secrets.socket"
  else
    say "systemctl --user is not available here (no user service manager), so the unit is not enabled."
    say "start the daemon by hand:  nohup '$exe' serve >/dev/null 2>&1 &"
    say "or, in a login session with systemd:  systemctl --user daemon-reload && systemctl --user enable --now agent-secrets.service"
  fi
}

install_service_macos() {
  local exe=$1 env_block=
  if [[ -n ${AGENT_SECRETS_HOME:-} ]]; then
    env_block="  <key>EnvironmentVariables</key>\n  <dict>\n    <key>AGENT_SECRETS_HOME</key>\n    <string>$AGENT_SECRETS_HOME</string>\n  </dict>\n"
  fi
  local line
  while IFS= read -r line; do
    if [[ $line == "  <key>RunAtLoad</key>" && -n $env_block ]]; then
      printf '%b' "$env_block"
    fi
    printf '%s\n' "${line//@SECRETS_BIN@/$exe}"
  done <"$src/packaging/launchd/dev.agent-secrets.plist" | put_text "$plist"
  say "wrote $plist"
  if command -v launchctl >/dev/null 2>&1; then
    launchctl unload "$plist" >/dev/null 2>&1 || true
    launchctl load -w "$plist"
    say "loaded dev.agent-secrets (launchctl list dev.agent-secrets)"
  else
    say "launchctl is not available: start the daemon by hand:  nohup '$exe' serve >/dev/null 2>&1 &"
  fi
}

if ((uninstall)); then
  do_uninstall
  exit 0
fi

build
mkdir -p "$(dirname "$manifest")"
touch "$manifest"
exe=$PREFIX/bin/secrets
put_binary "$bin" "$exe"
say "installed $exe ($(du -h "$exe" | cut -f1), stripped)"

"$exe" completion bash | put_text "$PREFIX/share/bash-completion/completions/secrets"
"$exe" completion zsh | put_text "$PREFIX/share/zsh/site-functions/_secrets"
"$exe" completion fish | put_text "$PREFIX/share/fish/vendor_completions.d/secrets.fish"
say "installed completions under $PREFIX/share (bash-completion, zsh site-functions, fish vendor_completions.d)"

if [[ -f $store/identity.age ]]; then
  say "store found at $store"
else
  "$exe" init >/dev/null
  say "created the store at $store (secrets init)"
fi

if ((service)); then
  case $(uname -s) in
    Darwin) install_service_macos "$exe" ;;
    *) install_service_linux "$exe" ;;
  esac
fi

case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) say "$PREFIX/bin is not in PATH: add  export PATH=\"$PREFIX/bin:\$PATH\"  to your shell profile" ;;
esac
say "done. try: secrets status"
