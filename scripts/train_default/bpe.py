"""A byte-level BPE tokenizer: trainer, encoder and Hugging Face tokenizer.json writer.

Written for tide's built-in model (train.py beside this file). Pure Python, no
dependencies. The text is split by PRETOKEN_PATTERN, each piece is turned into its UTF-8
bytes, and merges learnt on the corpus are applied by rank, lowest first -- the
semantics of a Hugging Face `BPE` model behind a `Split` + `ByteLevel` pre-tokenizer,
which is what to_tokenizer_json() writes, so tide, `tokenizers` and this file give the
same ids.

The pattern uses only ASCII character classes on purpose: Python's `re`, PCRE2 (tide)
and Oniguruma (`tokenizers`) disagree on what `\\s` and `\\w` match outside ASCII, but
agree on explicit classes. Non-ASCII text lands in the "other" class and is still
encoded byte by byte.
"""

import collections
import json
import re

WS = " \\t\\n\\r\\x0b\\x0c"
# identifiers/words (with one leading space), digit groups of at most 3, runs of other
# characters (with one leading space), whitespace runs that keep their last space for
# the next word, and trailing whitespace.
PRETOKEN_PATTERN = (
    f" ?[A-Za-z_]+| ?[0-9]{{1,3}}| ?[^{WS}A-Za-z0-9_]+|[{WS}]+(?![^{WS}])|[{WS}]+"
)
_PRETOKEN_RE = re.compile(PRETOKEN_PATTERN)

EOT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible map of the 256 byte values onto printable code points."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()


def pretokenize(text):
    return _PRETOKEN_RE.findall(text)


def word_counts(texts):
    counts = collections.Counter()
    for t in texts:
        counts.update(pretokenize(t))
    return counts


def train(counts, vocab_size, log=print):
    """Learns vocab_size - 256 - 1 merges (the last id is EOT). Returns the merge list
    [(left, right)] over byte-level strings, most frequent first."""
    num_merges = vocab_size - 256 - 1
    words = []  # list of symbol lists
    freqs = []
    for w, c in counts.items():
        words.append([BYTE_CHARS[b] for b in w.encode("utf-8")])
        freqs.append(c)
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of words containing it
    for i, syms in enumerate(words):
        f = freqs[i]
        for a, b in zip(syms, syms[1:]):
            pair_counts[(a, b)] += f
            where[(a, b)].add(i)
    merges = []
    for step in range(num_merges):
        if not pair_counts:
            break
        # Highest count; ties broken by the pair itself so training is deterministic.
        best = max(pair_counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pair_counts[best] < 2:
            break
        merges.append(best)
        a, b = best
        merged = a + b
        for i in list(where.get(best, ())):
            syms = words[i]
            f = freqs[i]
            for p in zip(syms, syms[1:]):
                pair_counts[p] -= f
                if pair_counts[p] <= 0:
                    del pair_counts[p]
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += f
                where[p].add(i)
        where.pop(best, None)
        if log and (step + 1) % 500 == 0:
            log(f"  bpe: {step + 1}/{num_merges} merges")
    return merges


class Encoder:
    def __init__(self, merges):
        self.merges = merges
        self.rank = {m: i for i, m in enumerate(merges)}
        self.vocab = {BYTE_CHARS[b]: b for b in range(256)}
        for i, (a, b) in enumerate(merges):
            self.vocab[a + b] = 256 + i
        self.eot_id = 256 + len(merges)
        self.id_to_token = {v: k for k, v in self.vocab.items()}
        self.id_to_token[self.eot_id] = EOT
        self.byte_of = {c: b for b, c in BYTE_CHARS.items()}
        self.cache = {}

    @property
    def vocab_size(self):
        return self.eot_id + 1

    def _bpe(self, piece):
        syms = [BYTE_CHARS[b] for b in piece.encode("utf-8")]
        while len(syms) > 1:
            best, best_rank = None, None
            for p in zip(syms, syms[1:]):
                r = self.rank.get(p)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = p, r
            if best is None:
                break
            a, b = best
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            syms = out
        return [self.vocab[s] for s in syms]

    def encode(self, text):
        """Ids of `text`; EOT inside the text is the special token, as added tokens are."""
        ids = []
        parts = text.split(EOT)
        for k, part in enumerate(parts):
            if k:
                ids.append(self.eot_id)
            for piece in pretokenize(part):
                got = self.cache.get(piece)
                if got is None:
                    got = self._bpe(piece)
                    if len(self.cache) < 2_000_000:
                        self.cache[piece] = got
                ids.extend(got)
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            tok = self.id_to_token[i]
            if tok == EOT:
                out += EOT.encode()
            else:
                out += bytes(self.byte_of[c] for c in tok)
        return out.decode("utf-8", errors="replace")


def to_tokenizer_json(enc):
    vocab = {tok: i for tok, i in enc.vocab.items()}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": enc.eot_id,
                "content": EOT,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKEN_PATTERN}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in enc.merges],
        },
    }


def save_tokenizer_json(enc, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_tokenizer_json(enc), f, ensure_ascii=False, separators=(",", ":"))
