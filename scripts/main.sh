#!/usr/bin/env bash
# README's first command: installs what is missing, builds tide, starts `tide serve` on
# the built-in default model (a small code model trained on Python's standard library,
# linked into the binary; see models/builtin/README.md), asks it with curl to complete a
# Python function, prints the answer and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target tide
work=$(mktemp -d)
./build/release/tide serve --host 127.0.0.1 --port 0 --port-file "$work/port" --kv-cache-memory 64M \
  2>"$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# Wait (at most 60 s) for /ready: the model loads and runs a warm-up forward first.
for _ in $(seq 600); do
  if [ -s "$work/port" ] && curl -sf "http://127.0.0.1:$(cat "$work/port")/ready" >/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
url="http://127.0.0.1:$(cat "$work/port")"
curl -sf "$url/ready" >/dev/null || { echo "tide serve did not become ready"; cat "$work/server.log"; exit 1; }
grep '^\[tide\]' "$work/server.log"
echo "POST $url/v1/completions"
request='{"prompt": "import os\n\n\ndef read_lines(path):", "max_tokens": 64, "temperature": 0}'
echo "$request"
answer=$(curl -sS "$url/v1/completions" -H 'Content-Type: application/json' -d "$request")
echo "$answer"
python3 -c 'import json, sys; j = json.loads(sys.argv[1]); r = json.loads(sys.argv[2]); print("\n" + r["prompt"] + j["choices"][0]["text"])' "$answer" "$request"
kill -TERM "$pid"
wait "$pid"
trap 'rm -rf "$work"' EXIT
