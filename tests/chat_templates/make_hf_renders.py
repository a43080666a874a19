#!/usr/bin/env python3
"""Writes the Hugging Face fixtures in hf_renders/: what transformers itself produces for
each tokenizer-only model folder, so check_hf_renders.py can hold `tide tokenize` to it
byte for byte, in CI, without transformers.

For each folder (laid out by tests/reference/make_model_folders.mjs) it loads
AutoTokenizer.from_pretrained(folder) and records
  - plain prompts (the hard corpus): tokenizer(text, add_special_tokens=True/False);
  - every conversation of hf_conversations.json, when the folder has a chat template
    (for llama2 only those its template accepts, see ACCEPTS):
    apply_chat_template(tokenize=False) -> the rendered text, and
    apply_chat_template(tokenize=True) with its other defaults -> the ids;
    an exception raised by the template is recorded as the expected error.
It also encodes each prompt and each rendered chat with the `tokenizers` library on
tokenizer.json directly and records where AutoTokenizer disagrees with it (prompts:
"backend_disagreements"; chats: "ids_tokenizers"), so a difference that comes from
transformers' own Python layer is visible in the fixture.

Needs transformers, tokenizers and jinja2; no network (the folders are local).
Usage: make_hf_renders.py MODELS_DIR CONVERSATIONS.json CORPUS.jsonl OUT_DIR [FOLDER...]
(with FOLDER names, only those folders' fixtures are rewritten)
"""
import copy
import json
import os
import sys
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402


def plain_alternating(conv):
    """Llama-2-chat's template knows only an optional system message followed by
    user/assistant turns starting with user: no tools, no tool calls, no generation prompt
    (add_generation_prompt changes nothing in it)."""
    if "tools" in conv:
        return False
    roles = [m["role"] for m in conv["messages"]]
    if roles[:1] == ["system"]:
        roles = roles[1:]
    if any(set(m) - {"role", "content"} for m in conv["messages"]):
        return False
    return bool(roles) and all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles))


# Folders whose template is only fed the conversations it accepts; the others get all.
ACCEPTS = {"llama2": plain_alternating}


def ids_of(result):
    """apply_chat_template(tokenize=True) returns a list or, by default in newer
    transformers, a BatchEncoding; either way the ids of the one conversation."""
    if hasattr(result, "keys") and "input_ids" in result:
        result = result["input_ids"]
    if hasattr(result, "tolist"):
        result = result.tolist()
    if result and isinstance(result[0], list):
        assert len(result) == 1
        result = result[0]
    return [int(x) for x in result]


def render(tok, backend, conv):
    request = {"messages": conv["messages"], "add_generation_prompt": conv["add_generation_prompt"]}
    if "tools" in conv:
        request["tools"] = conv["tools"]
    kwargs = conv.get("chat_template_kwargs", {})
    if kwargs:
        request["chat_template_kwargs"] = kwargs
    case = {"name": conv["name"], "request": request}
    call = dict(add_generation_prompt=conv["add_generation_prompt"], tools=conv.get("tools"), **kwargs)
    try:
        case["prompt"] = tok.apply_chat_template(copy.deepcopy(conv["messages"]), tokenize=False, **call)
    except Exception as e:  # the template's raise_exception, or transformers' own checks
        case["error"] = f"{type(e).__name__}: {e}"
        return case
    try:
        case["ids"] = ids_of(tok.apply_chat_template(copy.deepcopy(conv["messages"]), tokenize=True, **call))
    except Exception as e:
        case["ids_error"] = f"{type(e).__name__}: {e}"
    # What encoding the rendered text alone gives; equal to "ids" unless transformers
    # tokenizes chats differently from text.
    plain = tok(case["prompt"], add_special_tokens=False)["input_ids"]
    if plain != case.get("ids"):
        case["ids_of_prompt_text"] = plain
    direct = backend.encode(case["prompt"], add_special_tokens=False).ids
    if direct != case.get("ids"):
        case["ids_tokenizers"] = direct
    return case


def main():
    models_dir, conversations, corpus, out_dir = sys.argv[1:5]
    only = set(sys.argv[5:])
    convs = json.load(open(conversations, encoding="utf-8"))
    texts = [json.loads(line) for line in open(corpus, encoding="utf-8") if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
    for name in sorted(os.listdir(models_dir)):
        if only and name not in only:
            continue
        folder = os.path.join(models_dir, name)
        out = {"model": name, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
        try:
            tok = AutoTokenizer.from_pretrained(folder)
        except Exception:
            out["load_error"] = traceback.format_exc()
            print(f"{name}: load failed\n{out['load_error']}")
            json.dump(out, open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
            continue
        out["tokenizer_class"] = type(tok).__name__
        bt = getattr(tok, "backend_tokenizer", None)
        if bt is not None:
            print(f"{name}: normalizer {bt.normalizer}\n  pre_tokenizer {bt.pre_tokenizer}\n"
                  f"  post_processor {bt.post_processor}\n  decoder {bt.decoder}")
        backend = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        out["prompts"] = []
        out["backend_disagreements"] = []
        for add_special in (False, True):
            for text in texts:
                ids = tok(text, add_special_tokens=add_special)["input_ids"]
                out["prompts"].append({"text": text, "add_special_tokens": add_special, "ids": ids})
                direct = backend.encode(text, add_special_tokens=add_special).ids
                if direct != ids:
                    out["backend_disagreements"].append(
                        {"text": text, "add_special_tokens": add_special, "tokenizers": direct})
        # Log only: does transformers keep tokenizer.json's pipeline when asked to load the
        # file itself rather than through the class named in tokenizer_config.json?
        try:
            plain_fast = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
            n = sum(plain_fast(t, add_special_tokens=False)["input_ids"] != backend.encode(t, add_special_tokens=False).ids
                    for t in texts)
            print(f"{name}: PreTrainedTokenizerFast(tokenizer_file=...) differs from tokenizers on {n} of {len(texts)} texts")
        except Exception as e:
            print(f"{name}: PreTrainedTokenizerFast(tokenizer_file=...) failed: {type(e).__name__}: {e}")
        out["chats"] = []
        if getattr(tok, "chat_template", None):
            for conv in filter(ACCEPTS.get(name, lambda c: True), convs):
                try:
                    out["chats"].append(render(tok, backend, conv))
                except Exception:
                    out["chats"].append({"name": conv["name"], "script_error": traceback.format_exc()})
        path = os.path.join(out_dir, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        errors = sum(1 for c in out["chats"] if "error" in c)
        print(f"{name}: {type(tok).__name__}, {len(out['prompts'])} prompts "
              f"({len(out['backend_disagreements'])} differ from tokenizers on tokenizer.json), "
              f"{len(out['chats'])} chats ({errors} raised)")


if __name__ == "__main__":
    main()
