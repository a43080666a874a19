#!/usr/bin/env python3
"""Trains tide's built-in default model: a ~4.9M-parameter Llama on the Python standard
library's source code, with a byte-level BPE tokenizer trained on the same text.

    python3 scripts/train_default/train.py --out DIR [--minutes 5.5]

Writes DIR/model (a Hugging Face LlamaForCausalLM folder: config.json, model.safetensors
in bf16, tokenizer.json, tokenizer_config.json with a chat template,
generation_config.json), DIR/reference.json (tide's golden fixture for this model:
float64 transformers log-probabilities and greedy tokens) and DIR/train_log.txt.

Needs torch (any recent version; CUDA if available). transformers and tokenizers are
optional: when present, the exported folder is loaded back with them to check that they
compute the same logits and token ids as this script (the reference fixture needs
transformers). The data is the `.py` files of the running interpreter's standard library
(PSF License 2.0), excluding site-packages; see models/builtin/README.md.
"""

import argparse
import glob
import hashlib
import json
import math
import os
import platform
import struct
import sys
import sysconfig
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bpe  # noqa: E402

CHAT_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "{%- if message['role'] == 'assistant' -%}\n"
    "{{- message['content'] + '\\n' -}}\n"
    "{%- else -%}\n"
    "{{- '# ' + message['content'] | trim | replace('\\n', '\\n# ') + '\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
)

REFERENCE_PROMPT = "def fibonacci(n):\n"
SAMPLE_PROMPTS = [
    "def fibonacci(n):\n",
    "import os\n\n\ndef read_lines(path):\n",
    "class Stack:\n    def __init__(self):\n",
    "# Write a Python function that adds two numbers.\n",
]

LOG = None


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n")
        LOG.flush()


# ---------------------------------------------------------------------------------
# Data


def stdlib_files(root):
    files = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, root)
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        files.append(path)
    return files


def read_texts(files, max_bytes):
    texts = []
    for path in files:
        try:
            with open(path, "rb") as f:
                raw = f.read()
            if len(raw) > max_bytes:
                continue  # generated tables (e.g. unicode data), not code worth learning
            texts.append((path, raw.decode("utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def is_val(path):
    return hashlib.sha256(path.encode()).digest()[0] < 6  # ~2.3% of files


# ---------------------------------------------------------------------------------
# Model: the Hugging Face Llama computation, written out so the export is exact.


class Cfg:
    def __init__(self, a, vocab):
        self.vocab = vocab
        self.dim = a.dim
        self.layers = a.layers
        self.heads = a.heads
        self.kv_heads = a.kv_heads
        self.head_dim = a.dim // a.heads
        self.ffn = a.ffn
        self.max_pos = a.max_pos
        self.eps = 1e-5
        self.theta = 10000.0


def attend(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # torch < 2.0 (smoke tests on old CPUs builds): the same math, unfused.
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(s.float(), -1).to(q.dtype) @ v


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        P = torch.nn.Parameter
        std = 0.02
        self.embed = P(torch.randn(c.vocab, c.dim) * std)
        self.layers = torch.nn.ModuleList()
        for _ in range(c.layers):
            m = torch.nn.Module()
            m.ln1 = P(torch.ones(c.dim))
            m.q = P(torch.randn(c.heads * c.head_dim, c.dim) * std)
            m.k = P(torch.randn(c.kv_heads * c.head_dim, c.dim) * std)
            m.v = P(torch.randn(c.kv_heads * c.head_dim, c.dim) * std)
            m.o = P(torch.randn(c.dim, c.heads * c.head_dim) * std / math.sqrt(2 * c.layers))
            m.ln2 = P(torch.ones(c.dim))
            m.gate = P(torch.randn(c.ffn, c.dim) * std)
            m.up = P(torch.randn(c.ffn, c.dim) * std)
            m.down = P(torch.randn(c.dim, c.ffn) * std / math.sqrt(2 * c.layers))
            self.layers.append(m)
        self.norm = P(torch.ones(c.dim))
        inv = 1.0 / (c.theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim))
        freqs = torch.outer(torch.arange(c.max_pos, dtype=torch.float64), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos().float(), persistent=False)
        self.register_buffer("sin", emb.sin().float(), persistent=False)

    def rms(self, x, w):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.c.eps)
        return w * xf.to(x.dtype)

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def forward(self, ids):
        c = self.c
        B, T = ids.shape
        x = F.embedding(ids, self.embed)
        cos = self.cos[:T].to(x.dtype)[None, None]
        sin = self.sin[:T].to(x.dtype)[None, None]
        rep = c.heads // c.kv_heads
        for m in self.layers:
            h = self.rms(x, m.ln1)
            q = F.linear(h, m.q).view(B, T, c.heads, c.head_dim).transpose(1, 2)
            k = F.linear(h, m.k).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
            v = F.linear(h, m.v).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
            q = q * cos + self.rot(q) * sin
            k = k * cos + self.rot(k) * sin
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            a = attend(q, k, v)
            x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), m.o)
            h = self.rms(x, m.ln2)
            x = x + F.linear(F.silu(F.linear(h, m.gate)) * F.linear(h, m.up), m.down)
        return F.linear(self.rms(x, self.norm), self.embed)

    def hf_tensors(self):
        t = {"model.embed_tokens.weight": self.embed, "model.norm.weight": self.norm}
        for i, m in enumerate(self.layers):
            p = f"model.layers.{i}."
            t[p + "input_layernorm.weight"] = m.ln1
            t[p + "self_attn.q_proj.weight"] = m.q
            t[p + "self_attn.k_proj.weight"] = m.k
            t[p + "self_attn.v_proj.weight"] = m.v
            t[p + "self_attn.o_proj.weight"] = m.o
            t[p + "post_attention_layernorm.weight"] = m.ln2
            t[p + "mlp.gate_proj.weight"] = m.gate
            t[p + "mlp.up_proj.weight"] = m.up
            t[p + "mlp.down_proj.weight"] = m.down
        return t


# ---------------------------------------------------------------------------------
# Export


def write_safetensors(path, tensors):
    """bf16 safetensors, written by hand (no safetensors package needed)."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        b = tensors[name].detach().to("cpu", torch.bfloat16).contiguous()
        raw = b.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(b.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def export(model, enc, out_dir, args):
    os.makedirs(out_dir, exist_ok=True)
    c = model.c
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab,
        "hidden_size": c.dim,
        "intermediate_size": c.ffn,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.max_pos,
        "rms_norm_eps": c.eps,
        "rope_theta": c.theta,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": enc.eot_id,
        "pad_token_id": enc.eot_id,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": enc.eot_id, "pad_token_id": enc.eot_id}, f, indent=2)
    bpe.save_tokenizer_json(enc, os.path.join(out_dir, "tokenizer.json"))
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": bpe.EOT,
        "pad_token": bpe.EOT,
        "unk_token": None,
        "model_max_length": c.max_pos,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_config, f, indent=2)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), model.hf_tensors())


# ---------------------------------------------------------------------------------
# Training


def batches(data, batch, seq, gen, device):
    n = data.numel() - seq - 1
    while True:
        starts = torch.randint(0, n, (batch,), generator=gen)
        idx = starts[:, None] + torch.arange(seq + 1)[None]
        chunk = data[idx].to(device, non_blocking=True)
        yield chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def evaluate(model, data, seq, device, max_windows=64):
    model.eval()
    n = min(max_windows, (data.numel() - 1) // seq)
    if n <= 0:
        return float("nan")
    x = data[: n * seq + 1]
    inp = x[:-1].view(n, seq).to(device)
    tgt = x[1:].view(n, seq).to(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(inp)
    loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.reshape(-1))
    model.train()
    return float(loss)


@torch.no_grad()
def greedy(model, enc, prompt, n, device):
    ids = enc.encode(prompt)
    for _ in range(n):
        x = torch.tensor([ids[-model.c.max_pos:]], device=device)
        nxt = int(model(x)[0, -1].float().argmax())
        if nxt == enc.eot_id:
            break
        ids.append(nxt)
    return enc.decode(ids)


def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"], help="folder of .py files to learn")
    ap.add_argument("--minutes", type=float, default=5.5, help="wall-clock training budget")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=576)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bpe-mb", type=float, default=16, help="MB of training text the tokenizer learns from")
    ap.add_argument("--max-file-kb", type=int, default=400, help="skip larger files (data tables)")
    ap.add_argument("--max-files", type=int, default=0, help="smoke tests: use only this many files")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    LOG = open(os.path.join(args.out, "train_log.txt"), "w")
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    log(f"python {platform.python_version()} torch {torch.__version__} device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    t_start = time.time()

    files = stdlib_files(args.stdlib)
    if args.max_files:
        files = files[:: max(1, len(files) // args.max_files)][: args.max_files]
    texts = read_texts(files, args.max_file_kb * 1024)
    train_t = [t for p, t in texts if not is_val(p)]
    val_t = [t for p, t in texts if is_val(p)]
    nbytes = sum(len(t.encode()) for t in train_t)
    log(f"data: {args.stdlib}: {len(texts)} files ({nbytes / 1e6:.1f} MB train, {len(val_t)} files val)")

    # Tokenizer: learn on an evenly spread sample of the training files.
    t0 = time.time()
    step = max(1, int(nbytes / (args.bpe_mb * 1e6)))
    counts = bpe.word_counts(train_t[::step])
    merges = bpe.train(counts, args.vocab, log=log)
    enc = bpe.Encoder(merges)
    log(f"tokenizer: {enc.vocab_size} ids ({len(merges)} merges) in {time.time() - t0:.0f} s")

    t0 = time.time()
    eot = [enc.eot_id]
    train_ids = []
    for t in train_t:
        train_ids += enc.encode(t) + eot
    val_ids = []
    for t in val_t:
        val_ids += enc.encode(t) + eot
    train_data = torch.tensor(train_ids, dtype=torch.long)
    val_data = torch.tensor(val_ids, dtype=torch.long)
    log(f"encoded: {train_data.numel()} train tokens ({nbytes / max(1, train_data.numel()):.2f} bytes/token), "
        f"{val_data.numel()} val tokens, {time.time() - t0:.0f} s")

    cfg = Cfg(args, enc.vocab_size)
    model = Llama(cfg).to(device)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams / 1e6:.2f}M parameters ({2 * nparams / 1e6:.1f} MB in bf16)")
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), **extra)
    gen = torch.Generator().manual_seed(args.seed)
    it = batches(train_data, args.batch, args.seq, gen, device)
    budget = args.minutes * 60
    warmup = 200
    t_train = time.time()
    step = 0
    seen = 0
    best_val, best_step, best_state = float("inf"), 0, None
    while True:
        frac = (time.time() - t_train) / budget
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = next(it)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        if step % 250 == 0:
            # The corpus is small for the time budget: keep the weights of the best
            # held-out loss rather than the last (over-fitted) ones.
            vl = evaluate(model, val_data, args.seq, device)
            if vl < best_val:
                best_val, best_step = vl, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            log(f"step {step} {time.time() - t_train:.0f}s loss {loss.item():.3f} val {vl:.3f} lr {lr:.2e} "
                f"tokens {seen / 1e6:.0f}M ({seen / train_data.numel():.1f} epochs)")
    log(f"trained {step} steps, {seen / 1e6:.0f}M tokens in {time.time() - t_train:.0f} s")
    if best_state is not None:
        model.load_state_dict(best_state)
        log(f"kept step {best_step} (best held-out loss {best_val:.4f})")

    # The shipped weights are bf16: measure and sample with exactly those.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    vl = evaluate(model, val_data, args.seq, device, max_windows=256)
    log(f"final val loss (bf16 weights): {vl:.4f} nats/token = {vl / math.log(2) * val_data.numel() / max(1, sum(len(t.encode()) for t in val_t)):.3f} bits/byte")
    model_dir = os.path.join(args.out, "model")
    export(model, enc, model_dir, args)
    size = sum(os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir))
    log(f"exported {model_dir}: {size / 1e6:.2f} MB")
    model.float()
    samples = []
    for p in SAMPLE_PROMPTS:
        s = greedy(model, enc, p, 96, device)
        samples.append({"prompt": p, "greedy": s})
        log("---- sample (greedy)\n" + s)
    with open(os.path.join(args.out, "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
    try:
        check_with_hf(model, enc, model_dir, val_t, args.out, device)
    except Exception as e:  # noqa: BLE001 -- the model is saved; report and go on
        import traceback
        log(f"check_with_hf failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
    log(f"total {time.time() - t_start:.0f} s")


def check_with_hf(model, enc, model_dir, val_t, out, device):
    try:
        from tokenizers import Tokenizer
        tk = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        texts = [t[:4000] for t in val_t[:40]] + ["héllo wörld 日本語 😀 x\u00a0y", "a<|endoftext|>b", "  \n\t x"]
        bad = sum(tk.encode(t, add_special_tokens=False).ids != enc.encode(t) for t in texts)
        log(f"tokenizers {getattr(sys.modules['tokenizers'], '__version__', '?')}: {len(texts) - bad}/{len(texts)} texts give the same ids")
    except ImportError:
        log("tokenizers not installed: tokenizer.json not cross-checked")
    try:
        import transformers
    except ImportError:
        log("transformers not installed: no reference fixture")
        return
    hf = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager")
    hf.eval()
    ids = enc.encode(REFERENCE_PROMPT)
    with torch.no_grad():
        ours = torch.log_softmax(model.double().cpu()(torch.tensor([ids]))[0, -1], -1)
        seq = list(ids)
        greedy_ids, margins = [], []
        lp0 = None
        for _ in range(64):
            lp = torch.log_softmax(hf(torch.tensor([seq])).logits[0, -1].double(), -1)
            if lp0 is None:
                lp0 = lp
            top = torch.topk(lp, 2)
            greedy_ids.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
            seq.append(int(top.indices[0]))
    log(f"transformers {transformers.__version__} float64 vs this script float64: max |dlogp| = {float((ours - lp0).abs().max()):.3e}")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:  # noqa: BLE001
        log(f"AutoTokenizer failed ({e}); using PreTrainedTokenizerFast")
        tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
                                                   eos_token=bpe.EOT, chat_template=CHAT_TEMPLATE)
    hf_ids = tok(REFERENCE_PROMPT)["input_ids"]
    try:
        chat = tok.apply_chat_template(
            [{"role": "user", "content": "Write a Python function that adds two numbers."}],
            tokenize=False, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001
        chat = f"apply_chat_template failed: {e}"
    ref = {
        "name": "builtin",
        "architecture": "LlamaForCausalLM",
        "generator": "scripts/train_default/train.py",
        "model_source": "models/builtin (tide's built-in default model, trained by the generator)",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "weights_dtype": "bfloat16",
        "dtype_used": "float64",
        "attn_implementation": "eager",
        "tokenizer": "AutoTokenizer",
        "greedy_method": "full forward recomputation per step, argmax of the last position",
        "prompt_text": REFERENCE_PROMPT,
        "prompt_ids": ids,
        "prompt_ids_transformers": hf_ids,
        "last_logprobs": [float(v) for v in lp0],
        "greedy_ids": greedy_ids,
        "greedy_margins": margins,
        "min_greedy_margin": min(margins),
        "text": tok.decode(greedy_ids, skip_special_tokens=False),
        "chat_render": chat,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    log(f"reference.json written; greedy text: {ref['text']!r}")


if __name__ == "__main__":
    main()
