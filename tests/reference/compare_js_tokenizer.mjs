// Compares `tide tokenize` on a folder built by spm_bpe_tokenizer_json.mjs with the encoder
// of the package the folder was built from (mistral-tokenizer-js or llama-tokenizer-js: a
// second, independent implementation of the same vocabulary and merges).
//   node compare_js_tokenizer.mjs PACKAGE TIDE_BIN MODEL_DIR CORPUS.jsonl
//
// These packages differ from the HF pipeline by design in two places, so those
// texts are reported as "reference divergence" instead of failing (docs/tokenizer.md):
//  - it never parses special-token text: "<s>", "</s>", "<unk>" inside the text are
//    spelled out with ordinary pieces, where HF (and tide) emit the special ids;
//  - on empty input it returns [] even when asked for BOS; HF returns [1].
// Any other difference fails.
import fs from "node:fs";
import { spawnSync } from "node:child_process";

const [pkg, tide, dir, corpus] = process.argv.slice(2);
const js = (await import(pkg)).default;
const texts = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
const specials = ["<unk>", "<s>", "</s>"];
const explained = (text, addSpecial) =>
  specials.some((s) => text.includes(s)) ? "special-token text" : text === "" && addSpecial ? "empty input" : null;

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (s) => JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
let failures = 0;
let divergences = 0;
let agreed = 0;
for (const addSpecial of [false, true]) {
  const input = texts.map((t) => JSON.stringify({ prompt: t, add_special_tokens: addSpecial })).join("\n") + "\n";
  const run = spawnSync(tide, ["tokenize", "--model", dir], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.status !== 0) {
    console.error(`tide tokenize failed (${run.status}): ${run.stderr}`);
    process.exit(1);
  }
  const lines = run.stdout.split("\n").filter((l) => l !== "");
  texts.forEach((text, i) => {
    // add_preceding_space=true is SentencePiece's dummy prefix, which HF's Prepend("▁") does.
    const want = js.encode(text, addSpecial, true) ?? [];
    const got = JSON.parse(lines[i] ?? "{}").tokens ?? [];
    if (same(got, want)) {
      agreed++;
      return;
    }
    const why = explained(text, addSpecial);
    if (why) {
      divergences++;
      console.log(`reference divergence (${why}) add_special=${addSpecial} ${show(text)}\n  js   ${want}\n  tide ${got}`);
    } else {
      failures++;
      console.error(`MISMATCH vs ${pkg} add_special=${addSpecial} ${show(text)}\n  js   ${want}\n  tide ${got}`);
    }
  });
}
console.log(`${dir}: ${texts.length} texts x2, ${agreed} identical to ${pkg}, ` +
  `${divergences} explained reference divergences, ${failures} mismatches`);
process.exit(failures ? 1 : 0);
