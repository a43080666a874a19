#!/usr/bin/env bash
# Device run (on the GPU machine): cuda-labelled tests, then batch-1 decode on a random
# Llama-3-8B-shape bf16 model against a device-to-device copy measured in the same run.
# Expects build/devcarry/ (carried): tide, device_memory_test, ops_cuda_test,
# cuda_golden_test, lib/ (libutf8proc, libxxhash, libpcre2-8, libsentencepiece), and
# llama3_8b.json (= scripts/cuda/llama3_8b_config.json). SKIP_PERF=1 runs the tests only.
cd "$(dirname "$0")/../.."
D=build/devcarry
[ -f $D/llama3_8b.json ] || cp scripts/cuda/llama3_8b_config.json $D/llama3_8b.json
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
git log -1 --format='commit %h' 2>/dev/null
for t in device_memory_test ops_cuda_test cuda_golden_test; do
  echo "=== $t"
  $D/$t > $OUT/$t.log 2>&1; echo "rc=$?"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |CUDA: max|Failure|Expected|Which is|error" $OUT/$t.log | head -40
done
[ "${SKIP_PERF:-0}" = 1 ] && exit 0
echo "=== perf"
python3 - <<'PY' 2>&1 | tee $OUT/bw.log
import torch
n = 4 << 30
a = torch.randint(0, 255, (n,), dtype=torch.uint8, device='cuda'); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
s, e = torch.cuda.Event(True), torch.cuda.Event(True); ts = []
for _ in range(10):
    s.record(); b.copy_(a); e.record(); e.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
ts.sort(); t = ts[len(ts) // 2]
print(f"d2d copy: {2 * n / t / 1e9:.0f} GB/s (read+write, median of 10, {n >> 20} MiB)")
PY
time timeout 200 $D/tide synth -c $D/llama3_8b.json -o /tmp/l8b --dtype bf16 2>&1 | tail -2
ls -la /tmp/l8b | head; du -sb /tmp/l8b
for n in 32 256; do
  timeout 120 $D/tide generate -m /tmp/l8b --device cuda --prompt-ids 128000,791,6864,315,9822,374,12366,13 -n $n --ignore-eos 2>&1 | tail -3
done
