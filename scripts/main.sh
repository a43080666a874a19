#!/usr/bin/env bash
# README's first command: installs what is missing, builds tide, and runs the main job
# on the built-in default model (a small model tide generates itself; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target tide
./build/release/tide generate --prompt "Once upon a time" --max-tokens 48
