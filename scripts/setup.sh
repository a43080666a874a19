#!/usr/bin/env bash
# Installs every Debian package that building and testing tide needs. Idempotent:
# packages already present are skipped, so a second run is a no-op.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config git ca-certificates
      nlohmann-json3-dev libpcre2-dev libutf8proc-dev libxxhash-dev libssl-dev
      libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
      clang-14 libclang-rt-14-dev
      libboost-dev libsentencepiece-dev
      python3 python3-jinja2 curl)
# Node.js and npm are test-only tools (reference tokenizers, the OpenAI SDK). Some images
# ship a Node.js that bundles npm and conflicts with Debian's npm package: take Debian's
# only when no npm is on the PATH.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
