#!/usr/bin/env bash
# Device run for the decode attention kernels (docs/perf.md, "decode attention, one warp
# per chunk"): ops_cuda_test first (attention tests, then the rest, then the decode tests
# again under each TIDE_DECODE_ATTN variant), then decode attention alone
# (`cuda_decode_bench attn`) for the register-fed kernel (TIDE_DECODE_ATTN=0) and the
# warp-per-chunk kernel's variants and chunkings (TIDE_DECODE_MIN_CHUNKS; see
# attention_cuda.cu), then `tide bench forward` on a random Llama-3-8B-shape bf16 model
# synthesised in the same run, old and new kernel from the same binary. Expects
# build/attn-carry/ (carried): tide, ops_cuda_test, cuda_decode_bench, lib/ (shared
# libraries tide links from outside the CUDA toolkit).
# Env: D=folder, CONFIGS="kernel:min_chunks ..." (kernel bench), STEP="kernel:min_chunks ..."
# (bench forward runs), VARIANTS="kernel ..." (decode tests again), SKIP_STEP=1.
cd "$(dirname "$0")/../.."
D=${D:-build/attn-carry}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
timeout 200 $D/ops_cuda_test --gtest_filter='*Attention*' > $OUT/tests.log 2>&1; trc=$?
echo "=== ops_cuda_test (attention) rc=$trc"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|Expected|Which is|error|heads" $OUT/tests.log | grep -v "warps, heads" | head -30
timeout 200 $D/ops_cuda_test --gtest_filter='-*Attention*' >> $OUT/tests.log 2>&1; orc=$?
echo "=== ops_cuda_test (the rest) rc=$orc"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED" $OUT/tests.log | tail -6
for v in ${VARIANTS:-2 3 4}; do
  TIDE_DECODE_ATTN=$v timeout 100 $D/ops_cuda_test --gtest_filter='*Decode*' >> $OUT/tests.log 2>&1; vrc=$?
  echo "=== ops_cuda_test (decode tests, TIDE_DECODE_ATTN=$v) rc=$vrc"; [ $vrc = 0 ] || trc=$vrc
done
for c in ${CONFIGS:-0:16 1:16 1:32 2:16 3:16 4:16}; do
  echo "=== cuda_decode_bench attn, TIDE_DECODE_ATTN=${c%%:*} TIDE_DECODE_MIN_CHUNKS=${c##*:}" | tee -a $OUT/attn.log
  TIDE_DECODE_ATTN=${c%%:*} TIDE_DECODE_MIN_CHUNKS=${c##*:} timeout 120 $D/cuda_decode_bench attn >> $OUT/attn.log 2>&1
  echo "rc=$?" >> $OUT/attn.log
done
[ "${SKIP_STEP:-0}" = 1 ] && { cat $OUT/attn.log; exit 0; }
[ $trc = 0 ] || { echo "attention tests failed: no step timings"; cat $OUT/attn.log; exit 1; }
( time timeout 300 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 ) > $OUT/synth.log 2>&1
tail -3 $OUT/synth.log
for c in ${STEP:-0:16 1:16 1:32}; do
  echo "=== tide bench forward, TIDE_DECODE_ATTN=${c%%:*} TIDE_DECODE_MIN_CHUNKS=${c##*:}" | tee -a $OUT/bench.log
  TIDE_DECODE_ATTN=${c%%:*} TIDE_DECODE_MIN_CHUNKS=${c##*:} timeout 240 $D/tide bench forward --device cuda -m /tmp/l8b \
    --batch 1,8,32,64 --prompt-len 1024 --decode-steps 32 2>&1 | grep -vE "^\[tide\]" >> $OUT/bench.log
done
echo "=== kernels (attention alone)"
cat $OUT/attn.log
echo "=== steps"
grep -E "^===|^gpu:|^[0-9]" $OUT/bench.log
