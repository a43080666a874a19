#!/usr/bin/env bash
# One device run over a finished build: every cuda-labelled test, `tide serve --device
# cuda` under `tide bench serve` (greedy and temperature-sampled load), transformers
# fidelity (HF=1 of serve_run.sh), the 8B decode/prefill bench and the MoE bench — each
# stage skipped once the run nears the command's time limit (LIMIT seconds, default 540).
# Expects $D (default build/pc3/h-final, extracted from build/lc3/h-final.tar.xz) holding
# tide, the cuda test binaries, lib/ and llama3-tokenizer/. Result lines last.
cd "$(dirname "$0")/../.."
D=${D:-build/pc3/h-final}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
LIMIT=${LIMIT:-540}
left() { echo $(( LIMIT - SECONDS )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
for t in device_memory_test ops_cuda_test cuda_golden_test decode_graph_cuda_test model_runner_greedy_test kernel_trace_test; do
  timeout 200 $D/$t > $OUT/t_$t.log 2>&1; rc=$?
  echo "=== $t rc=$rc $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' $OUT/t_$t.log | tr '\n' ' ')" >> $OUT/summary.txt
  grep -E "^\[  FAILED  \] [A-Z]|Failure" $OUT/t_$t.log | head -5 >> $OUT/summary.txt
done
( time timeout 300 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 ) > $OUT/synth.log 2>&1
if [ $(left) -gt 200 ]; then
  HF_TIMEOUT=$(( $(left) - 230 )) D=$D RATES=${RATES:-16,inf} PROMPTS=${PROMPTS:-120} HF=${HF:-1} OUT=$OUT bash scripts/cuda/serve_run.sh > $OUT/serve_run.log 2>&1
  grep -E "greedy|nats|tok/s|transformers|prompt" $OUT/hf.log 2>/dev/null | tail -12 >> $OUT/summary.txt
  grep -E "rate|TTFT|TPOT|failed|throughput|Successful" $OUT/bench_serve.log $OUT/bench_serve_sampled.log 2>/dev/null | head -30 >> $OUT/summary.txt
fi
if [ $(left) -gt 120 ]; then
  echo "=== bench forward 8B" >> $OUT/summary.txt
  timeout $(( $(left) - 60 )) $D/tide bench forward --device cuda -m /tmp/l8b --batch 1,64 --prompt-len 1024 --decode-steps 32 \
    > $OUT/bench8b.log 2>&1; grep -E "^[0-9]|^gpu" $OUT/bench8b.log >> $OUT/summary.txt
fi
if [ $(left) -gt 60 ]; then
  echo "=== MoE bench" >> $OUT/summary.txt
  for m in qwen3_moe_small mixtral_small; do
    timeout 60 $D/tide synth -c scripts/cuda/${m}_config.json -o /tmp/$m --dtype bf16 > /dev/null 2>&1
    timeout $(( $(left) > 40 ? 40 : 1 )) $D/tide bench forward --device cuda -m /tmp/$m --batch 1,8,64 --prompt-len 128 --decode-steps 16 \
      > $OUT/bench_$m.log 2>&1; echo "-- $m" >> $OUT/summary.txt; grep -E "^[0-9]|^model" $OUT/bench_$m.log >> $OUT/summary.txt
  done
fi
echo "=== summary (elapsed ${SECONDS}s)"; cat $OUT/summary.txt
