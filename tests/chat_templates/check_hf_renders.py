#!/usr/bin/env python3
"""CTest: `tide tokenize` against the transformers fixtures in hf_renders/ (written by
make_hf_renders.py on a machine with transformers), on the same tokenizer-only folders
(tests/reference/make_model_folders.mjs). Standard library only.

Required, for every fixture case:
  - chats: the rendered prompt byte-identical to apply_chat_template(tokenize=False), and
    the ids identical to apply_chat_template(tokenize=True); a template that raised in
    transformers must make tide answer with an error too;
  - plain prompts: ids identical to tokenizer(text, add_special_tokens=...).
Where transformers' AutoTokenizer disagrees with the `tokenizers` library on the folder's
own tokenizer.json (the fixture records the latter's ids), tide must give the
`tokenizers` ids: transformers 5 rebuilds Llama/Mistral tokenizers with a different
pre-tokenizer (docs/tokenizer.md, "transformers 5 and SentencePiece-BPE folders").

Usage: check_hf_renders.py TIDE_BIN MODELS_DIR FIXTURE_DIR
"""
import glob
import json
import os
import subprocess
import sys


def run_tide(tide, model_dir, requests):
    stdin = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    p = subprocess.run([tide, "tokenize", "--model", model_dir], input=stdin.encode("utf-8"),
                       capture_output=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"tide tokenize --model {model_dir} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    lines = [json.loads(line) for line in p.stdout.decode("utf-8").splitlines() if line.strip()]
    if len(lines) != len(requests):
        raise RuntimeError(f"{len(requests)} requests, {len(lines)} answers")
    return lines


def short(x, n=120):
    s = json.dumps(x, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + "…"


def check_model(tide, models_dir, fx):
    name = fx["model"]
    if "load_error" in fx:
        print(f"FAIL {name}: the fixture records that transformers could not load the folder")
        return 0, 0, 1
    model_dir = os.path.join(models_dir, name)
    failed = passed = divergent = 0

    alt = {(d["text"], d["add_special_tokens"]): d["tokenizers"] for d in fx["backend_disagreements"]}
    prompts = fx["prompts"]
    got = run_tide(tide, model_dir, [{"prompt": p["text"], "add_special_tokens": p["add_special_tokens"]} for p in prompts])
    for p, g in zip(prompts, got):
        key = (p["text"], p["add_special_tokens"])
        want = alt.get(key, p["ids"])
        if g.get("tokens") == want:
            passed += 1
            divergent += key in alt
        else:
            failed += 1
            print(f"FAIL {name} prompt add_special_tokens={p['add_special_tokens']} {short(p['text'])}\n"
                  f"  want {short(want)}\n  tide {short(g)}")

    chats = fx["chats"]
    # A folder given a template after its fixture was made (or a fixture made without it)
    # would otherwise pass with no chat compared at all.
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        has_template = bool(json.load(f).get("chat_template"))
    if has_template and not chats:
        failed += 1
        print(f"FAIL {name}: the folder has a chat template but the fixture holds no chats (regenerate it)")
    got = run_tide(tide, model_dir, [c["request"] for c in chats]) if chats else []
    for c, g in zip(chats, got):
        where = f"{name} chat {c['name']}"
        if "error" in c:
            if "error" in g:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {where}: transformers raised ({c['error']}), tide rendered {short(g.get('prompt'))}")
            continue
        if "ids" not in c:
            failed += 1
            print(f"FAIL {where}: the fixture has no ids ({c.get('ids_error') or c.get('script_error')})")
            continue
        want = c.get("ids_tokenizers", c["ids"])
        if g.get("prompt") != c["prompt"]:
            failed += 1
            print(f"FAIL {where}: rendered text differs\n  want {short(c['prompt'], 400)}\n  tide {short(g, 400)}")
        elif g.get("tokens") != want:
            failed += 1
            print(f"FAIL {where}: ids differ\n  want {short(want, 400)}\n  tide {short(g.get('tokens'), 400)}")
        else:
            passed += 1
            divergent += "ids_tokenizers" in c
    print(f"{name}: {len(prompts)} prompts, {len(chats)} chats ({sum('error' in c for c in chats)} raising); "
          f"{passed} identical ({divergent} of them where transformers itself departs from tokenizer.json), {failed} failed")
    return passed, divergent, failed


def main():
    tide, models_dir, fixture_dir = sys.argv[1:4]
    fixtures = sorted(glob.glob(os.path.join(fixture_dir, "*.json")))
    if not fixtures:
        print(f"no fixtures in {fixture_dir}")
        return 1
    total_passed = total_failed = 0
    for path in fixtures:
        with open(path, encoding="utf-8") as f:
            fx = json.load(f)
        passed, _, failed = check_model(tide, models_dir, fx)
        total_passed += passed
        total_failed += failed
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
