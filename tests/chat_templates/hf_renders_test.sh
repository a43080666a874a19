#!/bin/sh
# CTest: `tide tokenize` vs transformers' apply_chat_template and encode, through the
# fixtures in tests/chat_templates/hf_renders/ (check_hf_renders.py), on tokenizer-only
# folders laid out by tests/reference/make_model_folders.mjs.
# usage: hf_renders_test.sh TIDE_BIN [WORK_DIR]   (run from the repository root)
# Exit 77 = skipped (no node/npm or python3, or packages not installable offline).
set -u
tide="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${2:-$(dirname "$tide")/hf_render_models}"
command -v python3 >/dev/null 2>&1 || { echo "python3 not installed" >&2; exit 77; }
"$root/tests/reference/install.sh" || exit $?
node "$root/tests/reference/make_model_folders.mjs" "$work" >/dev/null || exit 1
exec python3 "$root/tests/chat_templates/check_hf_renders.py" "$tide" "$work" "$root/tests/chat_templates/hf_renders"
