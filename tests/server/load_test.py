#!/usr/bin/env python3
"""Load test: 500 concurrent streaming clients against `tide serve` (built-in model).

usage: load_test.py TIDE_BINARY [--clients N]

Drives `tide bench serve` (one request per client, all sent at once, --max-concurrency N)
at a server on loopback, then checks: every request completed (zero failed), all N were
in flight together, the p99 inter-token latency (printed), and that afterwards /metrics
shows no request running and every KV block free. Bounded: the server must be ready in
60 s and the whole load within 90 s (a hang is a failure, not a CI timeout).
"""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TIDE = sys.argv[1]
CLIENTS = int(sys.argv[sys.argv.index("--clients") + 1]) if "--clients" in sys.argv else 500
work = tempfile.mkdtemp(prefix="tide-load-")
os.environ.setdefault("TIDE_CACHE_DIR", os.path.join(work, "cache"))

# Each client holds a socket on both ends (server and load generator inherit this).
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 4 * CLIENTS + 256
if soft != resource.RLIM_INFINITY and soft < want:
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft = new
if soft != resource.RLIM_INFINITY and soft < 2 * CLIENTS + 64:
    print(f"SKIP: open-file limit {soft} (hard {hard}) is too low for {CLIENTS} clients")
    sys.exit(77)

fails = []


def check(cond, name, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f" {detail}"[:3000]), flush=True)
    if not cond:
        fails.append(name)


def metrics(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


port_file = os.path.join(work, "port")
log = open(os.path.join(work, "server.log"), "w+")
# 500 requests of 32 tokens fit the KV cache at once; 256 run per step, the rest
# wait in the engine (the admission queue allows 1024).
server = subprocess.Popen([TIDE, "serve", "--host", "127.0.0.1", "--port", "0", "--port-file", port_file,
                           "--kv-cache-memory", "64M", "--threads", "2", "--io-threads", "2"],
                          stdout=log, stderr=subprocess.STDOUT)
try:
    deadline = time.time() + 60
    while time.time() < deadline and server.poll() is None and not (
            os.path.exists(port_file) and open(port_file).read().strip()):
        time.sleep(0.05)
    if not (os.path.exists(port_file) and open(port_file).read().strip()):
        log.seek(0)
        print("server did not become ready:\n" + log.read())
        sys.exit(1)
    base = "http://127.0.0.1:" + open(port_file).read().strip()
    before = metrics(base)
    # The model folder the server loaded, so the load generator counts prompt tokens with
    # its tokenizer (without it, a "16-token" prompt is 16 x 4 bytes: ~4x more prefill).
    log.flush()
    log.seek(0)
    model_dir = re.search(r"\[tide\] loading (.*) \.\.\.", log.read())
    tok_args = ["--model", model_dir.group(1)] if model_dir else []

    out_json = os.path.join(work, "bench.json")
    t0 = time.time()
    bench = subprocess.run([TIDE, "bench", "serve", "--base-url", base, "--endpoint", "/v1/completions",
                            "--served-model-name", "tide-builtin", *tok_args, "--num-prompts", str(CLIENTS), "--max-concurrency", str(CLIENTS), "--request-rate", "inf",
                            "--random-input-len", "16", "--random-output-len", "16", "--ignore-eos",
                            "--temperature", "1", "--request-timeout", "80", "--no-progress", "--json", out_json],
                           capture_output=True, text=True, timeout=90)
    wall = time.time() - t0
    print(bench.stdout)
    check(bench.returncode == 0, "tide bench serve exits 0", bench.stderr)
    doc = json.load(open(out_json))
    s = doc["points"][0]["summary"]
    print(f"{CLIENTS} concurrent streaming clients: {s['completed']} completed, {s['failed']} failed, "
          f"max in flight {s['max_in_flight']}, {s['duration_s']:.2f} s ({wall:.2f} s wall), "
          f"{s['output_throughput']:.0f} output tok/s")
    print(f"inter-token latency ms: p50 {s['itl_ms']['p50']:.2f}  p90 {s['itl_ms']['p90']:.2f}  "
          f"p99 {s['itl_ms']['p99']:.2f}  max {s['itl_ms']['max']:.2f}")
    print(f"TTFT ms: p50 {s['ttft_ms']['p50']:.1f}  p99 {s['ttft_ms']['p99']:.1f}")
    check(s["completed"] == CLIENTS and s["failed"] == 0, "zero failed requests", s.get("errors"))
    check(s["max_in_flight"] == CLIENTS, f"all {CLIENTS} clients in flight at once", s["max_in_flight"])
    check(s["total_output_tokens"] == 16 * CLIENTS, "every client got all 16 tokens", s["total_output_tokens"])
    check(s["itl_ms"]["p99"] > 0, "p99 inter-token latency measured", s["itl_ms"])

    # The server's own books once the load is gone: nothing running or queued, every KV
    # block back (the prefix cache may keep freed blocks as cached-free; they are not used).
    after = None
    for _ in range(100):
        after = metrics(base)
        if after.get("tide_num_requests_running") == 0 and after.get("tide_kv_cache_blocks_used") == 0:
            break
        time.sleep(0.05)
    check(after.get("tide_num_requests_running") == 0, "/metrics: running 0", after.get("tide_num_requests_running"))
    check(after.get("tide_num_requests_waiting") == 0 and after.get("tide_num_requests_queued") == 0,
          "/metrics: waiting 0, queued 0")
    check(after.get("tide_kv_cache_blocks_used") == 0 and after.get("tide_kv_cache_blocks_total", 0) > 0,
          "/metrics: all KV blocks free", (after.get("tide_kv_cache_blocks_used"), after.get("tide_kv_cache_blocks_total")))
    done = after.get("tide_request_success_total", 0) - before.get("tide_request_success_total", 0)
    check(done == CLIENTS, f"/metrics: {CLIENTS} more requests finished", done)
    st = urllib.request.urlopen(base + "/health", timeout=10).status
    check(st == 200, "server still healthy")
finally:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if fails:
        log.seek(0)
        print(log.read()[-4000:])
check(server.returncode == 0, "server exits 0 on SIGTERM", server.returncode)
print(f"{len(fails)} failed")
sys.exit(1 if fails else 0)
