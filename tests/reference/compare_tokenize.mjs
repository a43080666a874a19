// Compares `tide tokenize` with the reference tokenizers on a JSON-lines corpus.
//   node compare_tokenize.mjs TIDE_BIN MODEL_DIR CORPUS.jsonl
// Reference: @huggingface/tokenizers (HF's own JS port) must match tide exactly, with
// and without special tokens. @lenml/tokenizers (transformers.js) is compared too; its
// disagreements with the HF port are printed as "reference divergence" (not failures).
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerLoader } from "@lenml/tokenizers";

const [tide, dir, corpus] = process.argv.slice(2);
const tj = JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8"));
const tc = JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8"));
const hf = new Tokenizer(tj, tc);
const lenml = TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc });
const texts = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (s) => JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
let failures = 0;
let divergences = 0;
for (const addSpecial of [false, true]) {
  const input = texts.map((t) => JSON.stringify({ prompt: t, add_special_tokens: addSpecial })).join("\n") + "\n";
  const run = spawnSync(tide, ["tokenize", "--model", dir], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.status !== 0) {
    console.error(`tide tokenize failed (${run.status}): ${run.stderr}`);
    process.exit(1);
  }
  const lines = run.stdout.split("\n").filter((l) => l !== "");
  texts.forEach((text, i) => {
    const want = Array.from(hf.encode(text, { add_special_tokens: addSpecial }).ids, Number);
    const other = Array.from(lenml.encode(text, { add_special_tokens: addSpecial }), Number);
    const got = JSON.parse(lines[i] ?? "{}").tokens ?? [];
    if (!same(got, want)) {
      failures++;
      console.error(`MISMATCH add_special=${addSpecial} ${show(text)}\n  hf   ${want}\n  tide ${got}`);
    }
    if (!same(other, want)) {
      divergences++;
      console.log(`reference divergence (@lenml vs @huggingface) add_special=${addSpecial} ${show(text)}\n  hf    ${want}\n  lenml ${other}`);
    }
  });
  // Round trip: HF's decode of the ids equals tide's.
  const ids = texts.map((t) => Array.from(hf.encode(t, { add_special_tokens: addSpecial }).ids, Number));
  const dec = spawnSync(tide, ["tokenize", "--model", dir, "--decode"], {
    input: ids.map((x) => JSON.stringify({ tokens: x, skip_special_tokens: false })).join("\n") + "\n",
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const decLines = dec.stdout.split("\n").filter((l) => l !== "");
  ids.forEach((x, i) => {
    const want = x.length ? hf.decode(x, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
    const got = JSON.parse(decLines[i] ?? "{}").text;
    if (got !== want) {
      failures++;
      console.error(`DECODE MISMATCH ${show(texts[i])}\n  hf   ${JSON.stringify(want)}\n  tide ${JSON.stringify(got)}`);
    }
  });
}
console.log(`${dir}: ${texts.length} texts x2, ${failures} mismatches with @huggingface/tokenizers, ${divergences} reference divergences`);
process.exit(failures ? 1 : 0);
