#!/usr/bin/env bash
# Device run for the decode-step overhead figure (issue #7: launch gaps + host time
# <= 5% of a decode step): where libcupti comes from on the device, the tracer's own
# test (spin kernels of known duration), then `tide bench forward --trace-overhead` on
# a random Llama-3-8B-shape bf16 model synthesised into /tmp.
# Expects build/overhead-carry/ (carried): tide, kernel_trace_test, step_overhead_test,
# lib/ (the shared libraries tide links from outside /usr/local/cuda), cupti/libcupti.so.13
# (the build machine's, used only when the device has none).
# Env: BATCHES (default 1,8,64), PROMPT (1024), STEPS (32).
cd "$(dirname "$0")/../.."
D=build/overhead-carry
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
echo "=== libcupti on the device"
ls -l /usr/local/cuda/lib64/libcupti* /usr/local/cuda/extras/CUPTI/lib64/libcupti* 2>&1 | head -6
ldconfig -p | grep -i cupti | head -3
$D/step_overhead_test > $OUT/step_overhead_test.log 2>&1; echo "=== step_overhead_test rc=$?"
timeout 60 $D/kernel_trace_test > $OUT/kernel_trace_test.log 2>&1; echo "=== kernel_trace_test rc=$?"
if grep -q "skipping: NOT_FOUND" $OUT/kernel_trace_test.log; then
  echo "=== no libcupti on the device: using the carried one"
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$PWD/$D/cupti
  timeout 60 $D/kernel_trace_test > $OUT/kernel_trace_test.log 2>&1; echo "=== kernel_trace_test rc=$?"
fi
grep -E "CUPTI|skipping|eager|graph:|^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is|actual|error" \
  $OUT/kernel_trace_test.log | head -30
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
( time timeout 300 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 ) > $OUT/synth.log 2>&1
tail -3 $OUT/synth.log
ARGS="--batch ${BATCHES:-1,8,64} --prompt-len ${PROMPT:-1024} --decode-steps ${STEPS:-32} --trace-overhead"
echo "=== tide bench forward --device cuda -m /tmp/l8b $ARGS"
timeout 420 $D/tide bench forward --device cuda -m /tmp/l8b $ARGS > $OUT/bench.log 2>&1; echo "rc=$?"
grep -E "trace-overhead|^gpu|^model" $OUT/bench.log
grep -vE "^\[tide\]" $OUT/bench.log | tail -14
