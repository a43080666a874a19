#!/usr/bin/env python3
"""End-to-end tests of `tide serve` over loopback HTTP (Python stdlib only).

usage: server_test.py TIDE_BINARY [--shared]

Default: the built-in model; every endpoint, streaming and not, a malformed-input
suite (each case must get its 4xx JSON error, and /health must answer afterwards),
disconnect mid-stream frees KV blocks (/metrics), 401/429/503/504 paths, slow partial
requests, drain on SIGTERM. --shared: the same basics on ../shared stories260K (exit 77
with a printed reason when it is absent). Every wait is bounded in count and time.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIDE = sys.argv[1]
SHARED = "--shared" in sys.argv
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORIES = os.path.join(ROOT, "..", "shared", "models", "stories260K", "stories260K.gguf")
os.environ.setdefault("TIDE_CACHE_DIR", tempfile.mkdtemp(prefix="tide-server-test-"))

passes = 0
fails = []


def check(cond, name, detail=""):
    global passes
    if cond:
        passes += 1
    else:
        fails.append(name)
        print(f"FAIL {name} {detail}"[:2000], flush=True)


class Server:
    def __init__(self, *args, model=None):
        self.dir = tempfile.mkdtemp(prefix="tide-serve-")
        port_file = os.path.join(self.dir, "port")
        cmd = [TIDE, "serve", "--host", "127.0.0.1", "--port", "0", "--port-file", port_file,
               "--kv-cache-memory", "16M", "--threads", "2", *args]
        if model:
            cmd += ["--model", model]
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        self.port = None
        self.ready_statuses = []  # /ready answers seen once the port file existed
        while time.time() < deadline and self.proc.poll() is None:
            if os.path.exists(port_file) and open(port_file).read().strip():
                self.port = int(open(port_file).read())
                status, _, _ = self.request("GET", "/ready")
                self.ready_statuses.append(status)
                if status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("server did not become ready:\n" + self.output())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
            return 0, {}, str(e).encode()
        finally:
            conn.close()

    def post(self, path, body, headers=None):
        status, hdrs, data = self.request("POST", path, body, headers)
        try:
            return status, hdrs, json.loads(data)
        except ValueError:
            return status, hdrs, data

    def stream(self, path, body, headers=None):
        """POST with stream=true; returns (status, [parsed events], saw_done)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, body=json.dumps(body), headers=headers or {})
        r = conn.getresponse()
        events, done = [], False
        if r.status != 200:
            return r.status, [json.loads(r.read())], False
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                line = ev.decode()
                assert line.startswith("data: "), line
                payload = line[6:]
                if payload == "[DONE]":
                    done = True
                else:
                    events.append(json.loads(payload))
        conn.close()
        return r.status, events, done

    def metric(self, name, labels=""):
        _, _, text = self.request("GET", "/metrics")
        total = None
        for line in text.decode().splitlines():
            if line.startswith(name + "{") and labels in line:
                total = (total or 0) + float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def is_error(body, status_param=None):
    return (isinstance(body, dict) and isinstance(body.get("error"), dict) and
            set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"])


# --------------------------------------------------------------------------------------
def test_startup(s):
    """--port-file appears only once /ready is 200; the start-up lines come in order."""
    check(s.ready_statuses == [200], "port file written only when ready", s.ready_statuses)
    log = s.output()
    lines = [l for l in log.splitlines() if l.startswith("[tide]")]
    idx = lambda pred: next((i for i, l in enumerate(lines) if pred(l)), -1)
    full = idx(lambda l: re.search(r"reading weights: 100%  [0-9.]+ / [0-9.]+ MB  [0-9.]+ MB/s", l))
    total = idx(lambda l: re.search(r"reading weights: [0-9.]+ MB in [0-9.]+ s", l))
    warm = idx(lambda l: "warm-up forward" in l)
    ready = idx(lambda l: "ready: http://127.0.0.1:%d" % s.port in l and "KV cache" in l and "model '" in l)
    curl = idx(lambda l: "try: curl http://127.0.0.1:%d/v1/chat/completions" % s.port in l)
    check(0 <= full < total < warm < ready < curl, "start-up progress 100%, total, warm-up, ready, curl in order",
          (full, total, warm, ready, curl, log[-2000:]))
    check(sum("reading weights: 100%" in l for l in lines) == 1, "one 100% line", log[-2000:])


def test_tools():
    """--tool-call-parser: flag checks, tool_choice validation, and text without calls passing
    through unchanged (streamed == not streamed == tool_choice none). The built-in model
    does not emit calls; the parsers themselves are tested on many strings in
    src/server/tool_calls_test.cc."""
    for args, want in [(["--tool-call-parser", "mistral"], "--tool-call-parser must be hermes or llama3_json"),
                       (["--enable-auto-tool-choice"], "--enable-auto-tool-choice requires --tool-call-parser")]:
        r = subprocess.run([TIDE, "serve", "--port", "0", *args], capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and want in r.stderr, "serve " + " ".join(args) + " -> exit 1", r.stderr)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    for parser in ["hermes", "llama3_json"]:
        s = Server("--tool-call-parser", parser, "--enable-auto-tool-choice")
        try:
            body = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": tools,
                    "max_tokens": 24, "temperature": 0}
            st, _, auto = s.post("/v1/chat/completions", body)
            st2, _, none = s.post("/v1/chat/completions", dict(body, tool_choice="none"))
            check(st == 200 and st2 == 200, parser + ": chat with tools 200", (auto, none))
            if st != 200 or st2 != 200:
                continue
            text = none["choices"][0]["message"]["content"]
            msg = auto["choices"][0]["message"]
            if msg.get("tool_calls"):
                # The model happened to call: the shape must be OpenAI's.
                tc = msg["tool_calls"][0]
                check(auto["choices"][0]["finish_reason"] == "tool_calls" and tc["id"].startswith("call_") and
                      tc["type"] == "function" and isinstance(json.loads(tc["function"]["arguments"]), (dict, list)),
                      parser + ": tool_calls shape", auto)
            else:
                check(msg["content"] == text and "tool_calls" not in msg and
                      auto["choices"][0]["finish_reason"] == none["choices"][0]["finish_reason"],
                      parser + ": no call -> the same content as tool_choice none", (auto, none))
                st, ev, done = s.stream("/v1/chat/completions", dict(body, stream=True))
                streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in ev if e.get("choices"))
                check(st == 200 and done and streamed == text and
                      not any("tool_calls" in e["choices"][0]["delta"] for e in ev if e.get("choices")),
                      parser + ": streamed content == non-streamed", (streamed, text))
            for bad in ["bogus", {"type": "function"}, {"function": {"name": 3}}, 7]:
                st, _, r = s.post("/v1/chat/completions", dict(body, tool_choice=bad))
                check(st == 400 and is_error(r) and r["error"]["param"] == "tool_choice",
                      parser + ": tool_choice %r -> 400" % (bad,), r)
            st, _, r = s.post("/v1/chat/completions",
                              dict(body, tool_choice={"type": "function", "function": {"name": "get_weather"}}))
            check(st == 200, parser + ": named tool_choice accepted", r)
        finally:
            check(s.stop() == 0, parser + ": server exits 0")


def test_device_cuda():
    """--device cuda: a GPU-less machine (CI) gets a clear error and exit 1; with a GPU it serves."""
    d = tempfile.mkdtemp(prefix="tide-cuda-")
    port_file = os.path.join(d, "port")
    p = subprocess.Popen([TIDE, "serve", "--device", "cuda", "--port", "0", "--port-file", port_file,
                          "--kv-cache-memory", "16M"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (os.path.exists(port_file) and
                                                               open(port_file).read().strip()):
        time.sleep(0.05)
    if p.poll() is None and os.path.exists(port_file):
        port = int(open(port_file).read())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "def", "max_tokens": 4}))
        r = conn.getresponse()
        check(r.status == 200 and json.loads(r.read())["usage"]["completion_tokens"] == 4, "--device cuda serves")
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
        check(p.returncode == 0 and "device cuda" in out, "--device cuda exits 0", out[-2000:])
        print("--device cuda: a GPU is present; served a request")
        return
    try:
        out = p.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        out = p.communicate()[0]
    check(p.returncode == 1 and "--device cuda:" in out and "listening" not in out,
          "--device cuda without a GPU: clear error before listening, exit 1", (p.returncode, out[-2000:]))
    r = subprocess.run([TIDE, "serve", "--device", "tpu"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "--device must be cpu or cuda" in r.stderr, "--device tpu -> exit 1", r.stderr)
    r = subprocess.run([TIDE, "serve", "--gpu-memory-utilization", "1.5"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "--gpu-memory-utilization must be in (0, 1]" in r.stderr,
          "--gpu-memory-utilization 1.5 -> exit 1", r.stderr)


def test_endpoints(s):
    st, _, b = s.post("/health", {})
    check(st == 405, "POST /health -> 405", st)
    st, _, b = s.request("GET", "/health")
    check(st == 200, "GET /health")
    st, _, b = s.request("GET", "/v1/models")
    models = json.loads(b)
    check(st == 200 and models["object"] == "list" and models["data"][0]["object"] == "model", "/v1/models", b)
    name = models["data"][0]["id"]
    st, _, b = s.request("GET", "/v1/models/" + name)
    check(st == 200 and json.loads(b)["id"] == name, "/v1/models/{id}")
    st, _, b = s.request("GET", "/v1/models/nope")
    check(st == 404 and is_error(json.loads(b)), "/v1/models/nope -> 404")

    # completions: the four prompt shapes
    st, _, r = s.post("/v1/completions", {"prompt": "def f(x):", "max_tokens": 5, "temperature": 0})
    check(st == 200 and r["object"] == "text_completion" and len(r["choices"]) == 1 and
          r["usage"]["completion_tokens"] == 5 and r["choices"][0]["finish_reason"] == "length", "completion string", r)
    greedy_text = r["choices"][0]["text"] if st == 200 else None
    st, _, r = s.post("/v1/completions", {"prompt": ["a", "b"], "max_tokens": 3, "n": 2})
    check(st == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3] and r["usage"]["completion_tokens"] == 12,
          "completion list of strings x n=2", r)
    st, _, r = s.post("/v1/completions", {"prompt": [100, 101, 102], "max_tokens": 2})
    check(st == 200 and r["usage"]["prompt_tokens"] == 3, "completion token ids", r)
    st, _, r = s.post("/v1/completions", {"prompt": [[100, 101], [102]], "max_tokens": 2})
    check(st == 200 and len(r["choices"]) == 2 and r["usage"]["prompt_tokens"] == 3, "completion list of id lists", r)
    st, _, r = s.post("/v1/completions", {"prompt": "echo me", "max_tokens": 2, "echo": True})
    check(st == 200 and r["choices"][0]["text"].startswith("echo me"), "completion echo", r)
    # echo + logprobs: the prompt's tokens first, the first with null logprob; entry i of the
    # prompt is the model's raw distribution after prompt[:i], which is exactly what a
    # one-token completion of prompt[:i] reports as its top alternatives.
    ids = [100, 101, 102, 103]
    st, _, r = s.post("/v1/completions", {"prompt": ids, "max_tokens": 2, "echo": True, "logprobs": 3,
                                          "temperature": 0})
    lp = r["choices"][0]["logprobs"] if st == 200 else None
    check(lp and len(lp["tokens"]) == len(ids) + 2 and len(lp["token_logprobs"]) == len(ids) + 2 and
          lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None and
          all(isinstance(x, float) and x <= 0 for x in lp["token_logprobs"][1:]) and
          all(isinstance(t, dict) and len(t) >= 1 for t in lp["top_logprobs"][1:]) and
          lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"]) and
          r["choices"][0]["text"].startswith("".join(lp["tokens"][:len(ids)])), "completion echo + logprobs shape", r)
    for i in ([1, 3] if lp else []):
        st, _, one = s.post("/v1/completions", {"prompt": ids[:i], "max_tokens": 1, "logprobs": 3, "temperature": 0})
        alt = one["choices"][0]["logprobs"]["top_logprobs"][0] if st == 200 else {}
        # Same distribution, same top 3: every token string the one-token completion lists
        # (its greedy token is the most likely one) is in the prompt entry, at the same
        # logprob. (Byte tokens that are not UTF-8 on their own all print as U+FFFD, so
        # the dicts may hold fewer than 3 keys.)
        ref = lp["top_logprobs"][i]
        check(alt and set(alt) <= set(ref) and all(abs(alt[k] - ref[k]) < 2e-3 for k in alt),
              "prompt logprob %d == next-token logprobs of prompt[:%d]" % (i, i), (alt, lp["top_logprobs"][i]))
    st, _, r = s.post("/v1/completions", {"prompt": ["ab", "cd"], "max_tokens": 2, "n": 2, "echo": True,
                                          "logprobs": 0})
    check(st == 200 and len(r["choices"]) == 4 and
          all(c["logprobs"]["token_logprobs"][0] is None and c["text"].startswith(("ab", "cd")) for c in r["choices"]),
          "echo + logprobs, two prompts x n=2", r)
    st, ev, done = s.stream("/v1/completions", {"prompt": ids, "max_tokens": 2, "echo": True, "logprobs": 1,
                                                 "temperature": 0, "stream": True})
    toks = [t for e in ev if e["choices"] and e["choices"][0]["logprobs"] for t in e["choices"][0]["logprobs"]["tokens"]]
    check(st == 200 and done and lp and toks == lp["tokens"], "streamed echo + logprobs == non-streamed", (toks, lp))
    st, _, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 4, "logprobs": 2, "temperature": 0})
    lp = r["choices"][0]["logprobs"] if st == 200 else None
    check(lp and len(lp["tokens"]) == 4 and len(lp["token_logprobs"]) == 4 and len(lp["top_logprobs"][0]) >= 1 and
          len(lp["text_offset"]) == 4, "completion logprobs", r)
    # seed reproducibility
    body = {"prompt": "seed", "max_tokens": 12, "temperature": 1.0, "seed": 7, "ignore_eos": True}
    a = s.post("/v1/completions", body)[2]
    b2 = s.post("/v1/completions", body)[2]
    c = s.post("/v1/completions", dict(body, seed=8))[2]
    check(a["choices"][0]["text"] == b2["choices"][0]["text"], "same seed, same text")
    check(a["choices"][0]["text"] != c["choices"][0]["text"], "other seed, other text")
    st, _, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 6, "min_tokens": 6, "top_k": 5, "min_p": 0.01,
                                          "repetition_penalty": 1.1, "presence_penalty": 0.5,
                                          "frequency_penalty": 0.5, "logit_bias": {"65": 5}, "user": "u",
                                          "priority": 1, "unknown_field": [1, 2]})
    check(st == 200 and r["usage"]["completion_tokens"] == 6, "vLLM extensions + unknown fields ignored", r)
    st, _, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 40, "stop": ["e", "a", "o", "i"],
                                          "temperature": 0})
    check(st == 200 and not any(ch in r["choices"][0]["text"] for ch in "eaoi"), "stop strings", r)

    # streaming completions == non-streaming (greedy)
    st, ev, done = s.stream("/v1/completions", {"prompt": "def f(x):", "max_tokens": 5, "temperature": 0,
                                                 "stream": True, "stream_options": {"include_usage": True}})
    text = "".join(e["choices"][0]["text"] for e in ev if e["choices"])
    check(st == 200 and done and text == greedy_text, "completion stream text == non-stream", (text, greedy_text))
    check(ev and ev[-1]["choices"] == [] and ev[-1]["usage"]["completion_tokens"] == 5, "completion stream usage")
    check(any(e["choices"] and e["choices"][0]["finish_reason"] == "length" for e in ev), "stream finish_reason")

    # chat
    msgs = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]}]
    st, _, r = s.post("/v1/chat/completions", {"messages": msgs, "max_completion_tokens": 4, "temperature": 0,
                                               "logprobs": True, "top_logprobs": 3})
    check(st == 200 and r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant" and
          len(r["choices"][0]["logprobs"]["content"]) == 4 and
          len(r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 3, "chat non-stream + logprobs", r)
    chat_text = r["choices"][0]["message"]["content"] if st == 200 else None
    st, ev, done = s.stream("/v1/chat/completions", {"messages": msgs, "max_tokens": 4, "temperature": 0,
                                                      "stream": True, "stream_options": {"include_usage": True}})
    deltas = [e["choices"][0]["delta"] for e in ev if e["choices"]]
    check(st == 200 and done and deltas and deltas[0].get("role") == "assistant", "chat stream role delta first", ev)
    check("".join(d.get("content", "") for d in deltas) == chat_text, "chat stream text == non-stream")
    check(ev[-1]["usage"]["completion_tokens"] == 4 and ev[-1]["choices"] == [], "chat stream usage chunk")
    check(all(e["object"] == "chat.completion.chunk" for e in ev), "chat chunk object")
    st, _, r = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2,
                                               "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                                               "tool_choice": "auto", "chat_template_kwargs": {"enable_thinking": False}})
    check(st == 200, "chat with tools + chat_template_kwargs", r)
    st, _, r = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2, "max_tokens": 2})
    check(st == 200 and len(r["choices"]) == 2, "chat n=2", r)

    # tokenize / detokenize
    st, _, r = s.post("/tokenize", {"prompt": "hello world"})
    check(st == 200 and r["count"] == len(r["tokens"]) and r["max_model_len"] > 0, "tokenize prompt", r)
    st, _, d = s.post("/detokenize", {"tokens": r["tokens"]})
    check(st == 200 and "hello world" in d["prompt"], "detokenize round trip", d)
    st, _, r = s.post("/tokenize", {"messages": [{"role": "user", "content": "hi"}], "return_token_strs": True})
    check(st == 200 and len(r["token_strs"]) == r["count"], "tokenize messages", r)

    # metrics
    st, h, m = s.request("GET", "/metrics")
    text = m.decode()
    check(st == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), "metrics content type")
    for name in ["tide_num_requests_running", "tide_num_requests_waiting", "tide_kv_cache_blocks_used",
                 "tide_kv_cache_blocks_total", "tide_prefix_cache_hit_rate", "tide_num_preemptions_total",
                 "tide_prompt_tokens_total", "tide_generation_tokens_total", "tide_http_requests_total",
                 "tide_request_success_total", "tide_request_rejected_total", "tide_time_to_first_token_seconds_bucket",
                 "tide_time_per_output_token_seconds_bucket", "tide_inter_token_latency_seconds_bucket",
                 "tide_e2e_request_latency_seconds_bucket", "tide_request_queue_time_seconds_bucket",
                 "tide_request_prompt_tokens_bucket", "tide_request_generation_tokens_bucket"]:
        check(re.search("^" + name + r"\{", text, re.M), "metric " + name)
    ok200 = s.metric("tide_http_requests_total", 'endpoint="/v1/completions",status="200"')
    check(ok200 and ok200 >= 10, "http counter counts completions", ok200)


def malformed_cases():
    """(name, method, path, body bytes or obj, expected status)."""
    cases = []
    C = "/v1/completions"
    H = "/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    raw = [b"", b"   ", b"{", b"}", b"[]", b"[1,2]", b"null", b"true", b"42", b'"str"', b"{'a': 1}",
           b'{"prompt": "x",}', b'{"prompt": }', b'{"prompt" "x"}', b"\xff\xfe\xfd", b'{"prompt": "\xff"}',
           b'{"prompt": "\xc3\x28"}', b'{"prompt": "\xed\xa0\x80"}', b"[" * 200 + b"]" * 200,
           b'{"a":' * 100 + b"1" + b"}" * 100, b'{"prompt": "x"} trailing', b"\x00\x01\x02",
           b'{"prompt": "\\ud800"}', b'{"prompt": "x", "max_tokens": 1e999}']
    for path in (C, H, "/tokenize", "/detokenize"):
        for i, b in enumerate(raw):
            cases.append((f"raw body {i} {path}", "POST", path, b, 400))
    bad_values = {
        "max_tokens": [0, -1, -100, "10", 1.5, 1e30, 2 ** 70, True, [1], {"a": 1}, 10 ** 9],
        "temperature": [-0.1, 2.5, "1", True, [0], 1e308, -1e308],
        "top_p": [0, -1, 1.01, "0.5", False],
        "n": [0, -1, 65, 10 ** 6, "2", 2.5, None and 0],
        "stop": [1, [1], [""], {"a": 1}, [None], ["x"] * 40, True],
        "seed": ["x", 1.5, [1], {"s": 1}, 2 ** 64],
        "presence_penalty": [-3, 3, "0", []],
        "frequency_penalty": [-2.01, 2.01, "0", {}],
        "logit_bias": [[1], "x", {"a": 1}, {"-1": 1}, {"5": 101}, {"5": "x"}, {"99999999999": 1}],
        "stream": ["yes", 1, [True], {}],
        "top_k": [-2, "5", 1.5, []],
        "min_p": [-0.1, 1.1, "0"],
        "repetition_penalty": [0, -1, "1", 101],
        "min_tokens": [-1, "1", 1.5],
        "ignore_eos": ["no", 1, []],
        "priority": ["high", 1.5, 10 ** 7],
        "user": [1, [], {}],
        "model": [1, [], {}, True],
        "stream_options": [{"include_usage": True}, "x", 1],
    }
    for field, values in bad_values.items():
        for v in values:
            if v is None:
                continue
            cases.append((f"completions {field}={json.dumps(v)[:40]}", "POST", C,
                          {"prompt": "x", field: v, "max_tokens": 2} if field != "max_tokens" else {"prompt": "x", field: v},
                          400))
            chat_field = field
            cases.append((f"chat {field}={json.dumps(v)[:40]}", "POST", H,
                          {"messages": msgs, chat_field: v, "max_tokens": 2} if field != "max_tokens"
                          else {"messages": msgs, chat_field: v}, 400))
    for v in [None, 5, [], [1, 2, "a"], [-1], [[]], [[1, "a"]], [2 ** 31], [{"a": 1}], [[1], "a", 3], {"p": 1},
              [99999], [[1], [99999]], True]:
        body = {"max_tokens": 2} if v is None else {"prompt": v, "max_tokens": 2}
        cases.append((f"prompt={json.dumps(v)[:40]}", "POST", C, body, 400))
    for v in [None, "hi", [], [1], [{}], [{"role": "user"}], [{"content": "x"}], [{"role": 1, "content": "x"}],
              [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 5}],
              [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
              [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": [1]}],
              [{"role": "user", "content": {"a": 1}}], {"role": "user"}]:
        body = {"max_tokens": 2} if v is None else {"messages": v, "max_tokens": 2}
        cases.append((f"messages={json.dumps(v)[:40]}", "POST", H, body, 400))
    chat_bad = {"logprobs": ["x", 1], "top_logprobs": [21, -1, "3"], "tools": [{}, "x", [1]],
                "tool_choice": [1, []], "chat_template_kwargs": [[], "x", 1], "max_completion_tokens": [0, -5, "5"],
                "response_format": [{"type": "json_object"}, "x"], "add_generation_prompt": ["x"]}
    for field, values in chat_bad.items():
        for v in values:
            cases.append((f"chat {field}={json.dumps(v)[:40]}", "POST", H, {"messages": msgs, field: v}, 400))
    cases.append(("chat top_logprobs without logprobs", "POST", H, {"messages": msgs, "top_logprobs": 2}, 400))
    comp_bad = {"logprobs": [21, -1, True, "1"], "echo": ["yes", 1], "suffix": ["tail"], "best_of": [3, 0]}
    for field, values in comp_bad.items():
        for v in values:
            cases.append((f"completions {field}={json.dumps(v)[:40]}", "POST", C, {"prompt": "x", field: v}, 400))
    # context length
    cases.append(("context overflow max_tokens", "POST", C, {"prompt": "x", "max_tokens": 100000}, 400))
    cases.append(("context overflow prompt", "POST", C, {"prompt": [65] * 5000, "max_tokens": 1}, 400))
    cases.append(("context overflow chat", "POST", H, {"messages": msgs, "max_completion_tokens": 100000}, 400))
    cases.append(("token id outside vocabulary", "POST", C, {"prompt": [10 ** 6], "max_tokens": 1}, 400))
    cases.append(("min_tokens > max_tokens", "POST", C, {"prompt": "x", "max_tokens": 2, "min_tokens": 5}, 400))
    cases.append(("huge n x prompts", "POST", C, {"prompt": ["x"] * 200, "n": 64, "max_tokens": 1}, 400))
    # unknown model (404), routes (404), methods (405)
    for path, body in ((C, {"prompt": "x"}), (H, {"messages": msgs}), ("/tokenize", {"prompt": "x"}),
                       ("/detokenize", {"tokens": [1]})):
        cases.append((f"unknown model {path}", "POST", path, dict(body, model="gpt-17"), 404))
    for path in ["/", "/v1", "/v2/completions", "/v1/completion", "/v1/chat", "/admin", "/../etc/passwd",
                 "/v1/completions/x", "/metrics/x", "/%00"]:
        cases.append((f"unknown route {path}", "POST", path, {}, 404))
    for method, path in [("GET", C), ("GET", H), ("PUT", C), ("DELETE", H), ("POST", "/v1/models"),
                         ("GET", "/tokenize"), ("POST", "/metrics"), ("PATCH", "/ready"), ("DELETE", "/detokenize")]:
        cases.append((f"{method} {path}", method, path, None, 405))
    # tokenize / detokenize shapes
    for body in [{}, {"prompt": 5}, {"prompt": ["a"]}, {"messages": []}, {"messages": "x"}]:
        cases.append((f"tokenize {json.dumps(body)[:40]}", "POST", "/tokenize", body, 400))
    for body in [{}, {"tokens": "abc"}, {"tokens": [-1]}, {"tokens": [1.5]}, {"tokens": [[1]]}, {"tokens": [10 ** 7]}]:
        cases.append((f"detokenize {json.dumps(body)[:40]}", "POST", "/detokenize", body, 400))
    return cases


def test_malformed(s):
    cases = malformed_cases()
    n_ok = 0
    for name, method, path, body, want in cases:
        st, hdrs, data = s.request(method, path, body, {"Content-Type": "application/json"})
        try:
            j = json.loads(data)
        except ValueError:
            j = None
        good = bool(st == want and is_error(j))
        if want == 400 and good and name.startswith("completions ") and "=" in name:
            good = bool(j["error"]["param"] is not None or "stream_options" in name)
        check(good, "malformed: " + name, (st, data[:300]))
        n_ok += good
    check(len(cases) >= 300, "malformed suite has >= 300 cases", len(cases))
    print(f"malformed suite: {n_ok}/{len(cases)} answered with the right 4xx JSON error", flush=True)
    st, _, _ = s.request("GET", "/health")
    check(st == 200, "healthy after the malformed suite")
    st, _, r = s.post("/v1/completions", {"prompt": "still fine", "max_tokens": 2})
    check(st == 200, "answers normally after the malformed suite", r)
    # /ready answered 503 while the server was starting; nothing else may have.
    err5xx = [l for l in s.request("GET", "/metrics")[2].decode().splitlines()
              if 'status="5' in l and 'endpoint="/ready"' not in l]
    check(not err5xx, "no 5xx for client mistakes", err5xx)


def test_http_limits(s):
    # Oversized body -> 413 (the server runs with --max-request-body 64K).
    st, _, data = s.request("POST", "/v1/completions", b'{"prompt": "' + b"a" * 100000 + b'"}')
    check(st == 413 and is_error(json.loads(data)), "oversized body -> 413", (st, data[:200]))
    # Oversized headers -> 431.
    st, _, _ = s.request("GET", "/health", headers={"X-Big": "a" * 20000})
    check(st == 431, "oversized headers -> 431", st)
    # Malformed HTTP -> 400.
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        resp = c.recv(4096)
        check(resp.startswith(b"HTTP/1.1 400"), "garbage request line -> 400", resp[:100])
    # A half-sent request is cut off after --read-timeout (1 s here).
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
        t0 = time.time()
        closed = False
        try:
            while time.time() - t0 < 8:
                if not c.recv(4096):
                    closed = True
                    break
        except (ConnectionError, socket.timeout):
            closed = True
        check(closed and time.time() - t0 < 5, "slow partial request closed by the read timeout")
    # Keep-alive: two requests on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    ok = True
    for _ in range(3):
        conn.request("GET", "/health")
        r = conn.getresponse()
        r.read()
        ok = ok and r.status == 200
    conn.close()
    check(ok, "keep-alive: three requests on one connection")
    st, _, _ = s.request("GET", "/health")
    check(st == 200, "healthy after HTTP-level abuse")


def test_disconnect_frees_blocks(s):
    before_abort = s.metric("tide_request_success_total", 'finished_reason="abort"') or 0
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    body = json.dumps({"prompt": "go", "max_tokens": 1900, "ignore_eos": True, "stream": True}).encode()
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
              str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += c.recv(65536)
    used_during = s.metric("tide_kv_cache_blocks_used")
    c.close()
    deadline = time.time() + 10
    used = None
    while time.time() < deadline:
        used = s.metric("tide_kv_cache_blocks_used")
        aborted = s.metric("tide_request_success_total", 'finished_reason="abort"') or 0
        if used == 0 and aborted > before_abort:
            break
        time.sleep(0.05)
    check(used_during and used_during > 0, "blocks in use while streaming", used_during)
    check(used == 0, "disconnect mid-stream frees every KV block", used)
    check(aborted > before_abort, "disconnect counted as abort")
    st, _, _ = s.request("GET", "/health")
    check(st == 200, "healthy after a disconnect")


def test_keys_and_quotas():
    keys = os.path.join(tempfile.mkdtemp(), "keys.json")
    json.dump([{"key": "sk-limited", "name": "limited", "requests_per_minute": 2},
               {"key": "sk-tokens", "name": "tokens", "tokens_per_minute": 50},
               {"key": "sk-free", "name": "free"}], open(keys, "w"))
    s = Server("--api-keys-file", keys, "--api-key", "sk-cli")
    try:
        body = {"prompt": "x", "max_tokens": 2}
        st, h, r = s.post("/v1/completions", body)
        check(st == 401 and is_error(r) and r["error"]["code"] == "invalid_api_key", "no key -> 401", r)
        st, _, r = s.post("/v1/completions", body, {"Authorization": "Bearer wrong"})
        check(st == 401 and "wrong" not in json.dumps(r), "bad key -> 401 (key not echoed)", r)
        st, _, _ = s.post("/v1/completions", body, {"Authorization": "Bearer sk-cli"})
        check(st == 200, "--api-key accepted")
        st, _, _ = s.post("/v1/completions", body, {"Authorization": "Bearer sk-free"})
        check(st == 200, "keys-file key accepted")
        auth = {"Authorization": "Bearer sk-limited"}
        codes = [s.post("/v1/completions", body, auth)[0] for _ in range(2)]
        st, h, r = s.post("/v1/completions", body, auth)
        check(codes == [200, 200] and st == 429 and int(h.get("retry-after", "0")) >= 1 and is_error(r),
              "requests_per_minute -> 429 + Retry-After", (codes, st, h))
        st, h, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 100}, {"Authorization": "Bearer sk-tokens"})
        check(st == 429 and "retry-after" in h, "tokens_per_minute -> 429", (st, r))
        st, _, _ = s.request("GET", "/health")
        check(st == 200, "/health needs no key")
        log = s.output()
        check("sk-limited" not in log and "sk-cli" not in log and "wrong" not in log, "keys never logged")
        rej = s.metric("tide_request_rejected_total", 'reason="rate_limit"')
        check(rej and rej >= 2, "rate_limit rejections counted", rej)
    finally:
        s.stop()


def test_admission_and_timeout():
    s = Server("--max-waiting", "0")
    try:
        st, h, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2})
        check(st == 503 and int(h.get("retry-after", "0")) >= 1 and is_error(r), "--max-waiting -> 503 + Retry-After",
              (st, h, r))
        check((s.metric("tide_request_rejected_total", 'reason="max_waiting"') or 0) >= 1, "max_waiting counted")
    finally:
        s.stop()
    s = Server("--request-timeout", "0.05")
    try:
        st, _, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2000, "ignore_eos": True})
        check(st == 504 and is_error(r), "--request-timeout -> 504", (st, r))
        deadline = time.time() + 10
        while time.time() < deadline and s.metric("tide_kv_cache_blocks_used") != 0:
            time.sleep(0.05)
        check(s.metric("tide_kv_cache_blocks_used") == 0, "timed-out request frees its blocks")
    finally:
        s.stop()


def test_drain():
    s = Server("--drain-timeout", "20")
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    body = json.dumps({"prompt": "go", "max_tokens": 300, "ignore_eos": True, "stream": True}).encode()
    c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() +
              b"\r\n\r\n" + body)
    got = c.recv(65536)
    s.proc.send_signal(signal.SIGTERM)
    ready = None
    deadline = time.time() + 5
    while time.time() < deadline:
        ready = s.request("GET", "/ready")[0]
        if ready == 503:
            break
        time.sleep(0.02)
    check(ready == 503, "SIGTERM -> /ready 503", ready)
    st, h, r = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2})
    check(st in (503, 0), "new request while draining -> 503", (st, r))
    if st == 503:
        check("retry-after" in h, "draining 503 has Retry-After")
    c.settimeout(30)
    while b"[DONE]" not in got:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    c.close()
    check(b"[DONE]" in got and b'"finish_reason":"length"' in got, "running stream finishes during drain")
    rc = s.proc.wait(30)
    check(rc == 0, "drain exits 0", rc)


def test_shared():
    if not os.path.exists(STORIES):
        print(f"SKIP: {STORIES} not found (../shared absent)")
        sys.exit(77)
    s = Server(model=STORIES)
    try:
        st, _, r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 20, "temperature": 0})
        text = r["choices"][0]["text"] if st == 200 else ""
        check(st == 200 and len(text.strip()) > 0, "stories260K completion", r)
        print("stories260K:", repr(text))
        st, ev, done = s.stream("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell a story"}],
                                                          "max_tokens": 16, "stream": True})
        check(st == 200 and done and ev, "stories260K chat stream")
        st, _, r = s.post("/tokenize", {"prompt": "Once upon a time"})
        st2, _, d = s.post("/detokenize", {"tokens": r["tokens"]})
        check(st == 200 and "Once upon a time" in d["prompt"], "stories260K tokenize round trip", d)
        test_disconnect_frees_blocks(s)
    finally:
        check(s.stop() == 0, "stories260K server exits 0")


def main():
    if SHARED:
        test_shared()
    else:
        s = Server("--max-request-body", "64K", "--read-timeout", "1")
        try:
            test_startup(s)
            test_endpoints(s)
            test_malformed(s)
            test_http_limits(s)
            test_disconnect_frees_blocks(s)
        finally:
            rc = s.stop()
            check(rc == 0, "server exits 0 on SIGTERM", rc)
            if fails:
                print(s.output()[-3000:])
        test_keys_and_quotas()
        test_admission_and_timeout()
        test_drain()
        test_device_cuda()
        test_tools()
    print(f"{passes} passed, {len(fails)} failed", flush=True)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
