#!/bin/sh
# CTest: the official OpenAI Node SDK (pinned in tests/reference/package.json) against
# `tide serve` on the built-in model. Exit 77 = skipped (no node/npm, or the package
# cannot be installed: offline with no npm cache).
# usage: openai_sdk_test.sh TIDE_BIN
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/tests/reference/install.sh" || { rc=$?; echo "SKIP: the openai npm package is not installable here"; exit $rc; }
exec node "$root/tests/server/openai_sdk_test.mjs" "$1"
