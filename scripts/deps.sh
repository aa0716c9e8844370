#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need.
# Quick and silent when everything is already installed; runs `apt-get update`
# once only when something is missing; uses sudo when not root.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libsodium-dev libboost-dev nlohmann-json3-dev libcli11-dev
  libcurl4-openssl-dev libspdlog-dev doctest-dev zlib1g-dev
  age bsdutils procps python3
)
# Extra packages for a target, e.g. `deps.sh clang libclang-rt-14-dev`.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
((${#missing[@]} == 0)) && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
