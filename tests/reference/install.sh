#!/bin/sh
# Installs the pinned reference tokenizers (package-lock.json) into
# tests/reference/node_modules. Idempotent; works offline once the npm cache or
# node_modules is populated. Exit 77 (CTest "skipped") when node/npm are missing.
set -e
cd "$(dirname "$0")"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "node/npm not installed" >&2; exit 77; }
# Several tests call this at once under `ctest -j`; npm ci deletes node_modules first,
# so installs must not overlap: one at a time, each rechecking the stamp.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/tide-npm-reference.lock"
  flock 9
fi
stamp=node_modules/.tide-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
npm ci --offline --no-audit --no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund >/dev/null || {
  echo "npm ci failed (offline and no cache?)" >&2; exit 77; }
cp package-lock.json "$stamp"
