#!/usr/bin/env python3
"""Device run: tide on CUDA against Hugging Face transformers on the same card, same weights.

    python3 scripts/cuda/hf_compare.py --model /tmp/l8b --tide build/perfcarry/tide --out $OUT

1. Naive baseline: transformers eager (bf16, attn_implementation="eager", generate() with
   greedy decoding) at batch 1 and batch 32, 64 new tokens after an 8-token prompt: decode
   tok/s = new tokens x batch / time.
2. Fidelity: for a few prompts, `tide generate --device cuda --json` (32 greedy tokens, top-20
   log-probabilities per step) against transformers with the same weights in float32 (the
   bf16 weights are exact in f32: the higher-precision reference) and in bf16 (the usual
   bf16 error, for scale). Prints max |d log p| over tide's top-20 at the first step, the
   number of leading greedy tokens that agree and the smallest float32 top-1/top-2 margin
   over the compared steps (a mismatch is only meaningful where that margin is large).
Writes hf_compare.json under --out and prints a short table last.
"""

import argparse
import json
import os
import subprocess
import time

import torch
import transformers

PROMPTS = [
    [128000, 791, 6864, 315, 9822, 374, 12366, 13],
    [128000, 40, 1093, 311, 3137, 922, 279],
    [128000, 644, 264, 1917, 1405, 11, 1070, 574, 264, 3831],
]


def timed_generate(model, ids, new_tokens):
    torch.cuda.synchronize()
    t0 = time.time()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=0)
    torch.cuda.synchronize()
    return out, time.time() - t0


def tide_generate(tide, model_dir, prompt, n):
    cmd = [tide, "generate", "-m", model_dir, "--device", "cuda", "--prompt-ids", ",".join(map(str, prompt)),
           "-n", str(n), "--ignore-eos", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"tide generate failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


@torch.no_grad()
def greedy_with_logprobs(model, prompt, n):
    """Greedy by full recomputation; returns tokens, first-step log-probs, margins."""
    seq = list(prompt)
    toks, margins, first = [], [], None
    for _ in range(n):
        logits = model(torch.tensor([seq], device="cuda")).logits[0, -1].float()
        lp = torch.log_softmax(logits.double(), -1)
        if first is None:
            first = lp.cpu()
        top = torch.topk(lp, 2)
        toks.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        seq.append(toks[-1])
    return toks, first, margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tide", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=32)
    a = ap.parse_args()
    res = {"device": torch.cuda.get_device_name(), "transformers": transformers.__version__, "torch": torch.__version__}

    t0 = time.time()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                                              attn_implementation="eager").cuda().eval()
    res["load_s"] = time.time() - t0
    print(f"transformers {transformers.__version__} loaded {a.model} in {res['load_s']:.0f} s", flush=True)

    # 1. naive baseline
    speed = {}
    g = torch.Generator().manual_seed(0)
    for batch in (1, 32):
        ids = torch.randint(1000, 100000, (batch, 8), generator=g).cuda()
        timed_generate(model, ids, 4)  # warm-up
        _, dt = timed_generate(model, ids, 64)
        speed[batch] = 64 * batch / dt
        print(f"transformers eager bf16 batch {batch}: {speed[batch]:.1f} tok/s ({dt:.2f} s for 64 tokens)", flush=True)
    res["hf_eager_tok_s"] = speed

    # 2. fidelity
    tide_runs = [tide_generate(a.tide, a.model, p, a.steps) for p in PROMPTS]
    bf16 = [greedy_with_logprobs(model, p, 1)[1] for p in PROMPTS]
    model = model.float()
    rows = []
    for p, t, lpb in zip(PROMPTS, tide_runs, bf16):
        toks, lp32, margins = greedy_with_logprobs(model, p, a.steps)
        tide_ids = t["output_ids"]
        agree = 0
        while agree < min(len(toks), len(tide_ids)) and toks[agree] == tide_ids[agree]:
            agree += 1
        top = t["top_logprobs"][0]
        ids = [e["id"] for e in top]
        tide_lp = torch.tensor([e["logprob"] for e in top], dtype=torch.float64)
        d_tide = float((tide_lp - lp32[ids]).abs().max())
        d_bf16 = float((lpb[ids] - lp32[ids]).abs().max())
        d_tide_bf16 = float((tide_lp - lpb[ids]).abs().max())
        row = {"prompt": p, "greedy_agree": agree, "steps": a.steps, "min_margin_f32": min(margins[:max(agree, 1)]),
               "margin_at_first_mismatch": margins[agree] if agree < len(margins) else None,
               "max_dlogp_tide_vs_f32": d_tide, "max_dlogp_hf_bf16_vs_f32": d_bf16,
               "max_dlogp_tide_vs_hf_bf16": d_tide_bf16}
        rows.append(row)
        print(json.dumps(row), flush=True)
    res["fidelity"] = rows
    with open(os.path.join(a.out, "hf_compare.json"), "w") as f:
        json.dump(res, f, indent=1)
    print("\n| check | value |\n|---|---|")
    print(f"| transformers eager bf16, batch 1 | {speed[1]:.1f} tok/s |")
    print(f"| transformers eager bf16, batch 32 | {speed[32]:.1f} tok/s |")
    for i, r in enumerate(rows):
        print(f"| prompt {i}: greedy tokens agreeing (of {a.steps}) | {r['greedy_agree']} |")
        print(f"| prompt {i}: max dlogp top-20 step 0, tide vs f32 / hf-bf16 vs f32 | "
              f"{r['max_dlogp_tide_vs_f32']:.2e} / {r['max_dlogp_hf_bf16_vs_f32']:.2e} |")


if __name__ == "__main__":
    main()
