// The official `openai` SDK driving `tide serve` (built-in model, loopback only):
// completions and chat, streaming and not, n > 1, stop, seed reproducibility, logprobs,
// abort mid-stream (KV blocks freed, checked on /metrics) and errors surfaced as the
// SDK's error classes. Every wait is bounded.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'reference', 'package.json'));
const OpenAI = require('openai').default ?? require('openai');
const tide = process.argv[2];

let passes = 0;
const fails = [];
function check(cond, name, detail = '') {
  if (cond) passes++;
  else { fails.push(name); console.log(`FAIL ${name} ${String(detail).slice(0, 500)}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tide-sdk-'));
const portFile = path.join(dir, 'port');
const env = { ...process.env, TIDE_CACHE_DIR: process.env.TIDE_CACHE_DIR ?? path.join(dir, 'cache') };
const server = spawn(tide, ['serve', '--host', '127.0.0.1', '--port', '0', '--port-file', portFile,
  '--kv-cache-memory', '16M', '--threads', '2', '--api-key', 'sk-test'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
server.stderr.on('data', (d) => { log += d; });

async function main() {
  let base = null;
  for (let i = 0; i < 600 && !base; i++) {
    if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) {
      const url = `http://127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`;
      try { if ((await fetch(url + '/ready')).status === 200) base = url; } catch { /* not yet */ }
    }
    if (!base) await sleep(100);
  }
  if (!base) throw new Error('server not ready:\n' + log);
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'sk-test', maxRetries: 0, timeout: 60_000 });
  const metric = async (name) => {
    const text = await (await fetch(base + '/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith(name + '{'));
    return line ? Number(line.split(' ').pop()) : NaN;
  };

  const models = await client.models.list();
  const model = models.data[0].id;
  check(models.data.length === 1 && model, 'models.list');

  const c = await client.completions.create({ model, prompt: 'def add(a, b):', max_tokens: 6, temperature: 0 });
  check(c.object === 'text_completion' && c.choices[0].finish_reason === 'length' && c.usage.completion_tokens === 6,
    'completions.create', JSON.stringify(c));
  const n2 = await client.completions.create({ model, prompt: 'x', max_tokens: 3, n: 2 });
  check(n2.choices.length === 2, 'completions n=2');
  const stopped = await client.completions.create({ model, prompt: 'x', max_tokens: 40, temperature: 0,
    stop: ['a', 'e', 'i', 'o'] });
  check(!/[aeio]/.test(stopped.choices[0].text), 'completions stop');
  const s1 = await client.completions.create({ model, prompt: 's', max_tokens: 10, temperature: 1, seed: 11 });
  const s2 = await client.completions.create({ model, prompt: 's', max_tokens: 10, temperature: 1, seed: 11 });
  check(s1.choices[0].text === s2.choices[0].text, 'seed reproducibility');
  const lp = await client.completions.create({ model, prompt: 'x', max_tokens: 3, logprobs: 2 });
  check(lp.choices[0].logprobs.tokens.length === 3 && lp.choices[0].logprobs.token_logprobs.every((v) => v <= 0),
    'completions logprobs');

  const chat = await client.chat.completions.create({ model, max_tokens: 5, temperature: 0, logprobs: true,
    top_logprobs: 2, messages: [{ role: 'user', content: 'Hello' }] });
  check(chat.choices[0].message.role === 'assistant' && chat.choices[0].logprobs.content.length === 5,
    'chat.completions.create', JSON.stringify(chat));
  let text = '', usage = null, roles = 0;
  const stream = await client.chat.completions.create({ model, max_tokens: 5, temperature: 0, stream: true,
    stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }] });
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      if (ch.delta.role) roles++;
      text += ch.delta.content ?? '';
    }
  }
  check(text === chat.choices[0].message.content && roles === 1 && usage?.completion_tokens === 5,
    'chat stream == non-stream, usage chunk', JSON.stringify({ text, usage }));
  let ctext = '';
  const cstream = await client.completions.create({ model, prompt: 'def add(a, b):', max_tokens: 6, temperature: 0,
    stream: true });
  for await (const chunk of cstream) ctext += chunk.choices[0]?.text ?? '';
  check(ctext === c.choices[0].text, 'completions stream == non-stream');

  // Abort mid-stream: the server cancels the request and frees its KV blocks.
  const long = await client.completions.create({ model, prompt: 'go', max_tokens: 1900, stream: true,
    ignore_eos: true });
  let seen = 0;
  for await (const _ of long) { if (++seen >= 3) break; }  // break aborts the HTTP request
  let used = NaN;
  for (let i = 0; i < 200; i++) {
    used = await metric('tide_kv_cache_blocks_used');
    if (used === 0) break;
    await sleep(50);
  }
  check(used === 0, 'abort mid-stream frees KV blocks', used);

  const expectError = async (name, cls, status, fn) => {
    try { await fn(); check(false, name, 'no error'); } catch (e) {
      check(e instanceof cls && e.status === status, name, `${e?.constructor?.name} ${e?.status} ${e?.message}`);
    }
  };
  await expectError('400 -> BadRequestError', OpenAI.BadRequestError, 400,
    () => client.completions.create({ model, prompt: 'x', max_tokens: -1 }));
  await expectError('context overflow -> BadRequestError', OpenAI.BadRequestError, 400,
    () => client.chat.completions.create({ model, max_tokens: 100000, messages: [{ role: 'user', content: 'x' }] }));
  await expectError('unknown model -> NotFoundError', OpenAI.NotFoundError, 404,
    () => client.completions.create({ model: 'no-such-model', prompt: 'x' }));
  const bad = new OpenAI({ baseURL: base + '/v1', apiKey: 'sk-wrong', maxRetries: 0 });
  await expectError('bad key -> AuthenticationError', OpenAI.AuthenticationError, 401, () => bad.models.list());
  try {
    await client.completions.create({ model, prompt: 'x', temperature: 9 });
  } catch (e) {
    check(e.param === 'temperature' && e.type === 'invalid_request_error', 'error param/type surfaced', e.message);
  }
}

const timer = setTimeout(() => { console.log('FAIL timeout'); server.kill('SIGKILL'); process.exit(1); }, 240_000);
main().catch((e) => { fails.push('exception'); console.log('FAIL exception', e?.stack ?? e); }).finally(async () => {
  server.kill('SIGTERM');
  const code = await new Promise((r) => server.on('exit', r));
  check(code === 0, 'server exits 0 on SIGTERM', code);
  clearTimeout(timer);
  console.log(`${passes} passed, ${fails.length} failed`);
  process.exit(fails.length ? 1 : 0);
});
