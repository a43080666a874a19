#!/usr/bin/env bash
# Device run: `tide serve --device cuda` on a random Llama-3-8B-shape bf16 model (with the
# real Llama 3 tokenizer, so text prompts and the random dataset work), loaded by
# `tide bench serve` at a few request rates; then, with HF=1, scripts/cuda/hf_compare.py
# (transformers eager baseline and tide-vs-transformers fidelity on the same card). After the
# greedy load: one request with every sampling knob and a temperature-0.8 load (GPU sampling).
# Expects $D (default build/perfcarry): tide, lib/, llama3-tokenizer/ (tokenizer.json and
# tokenizer_config.json of Llama 3). Env: RATES (default 4,16,inf), PROMPTS (default 200).
cd "$(dirname "$0")/../.."
D=${D:-build/perfcarry}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
[ -f /tmp/l8b/config.json ] || timeout 300 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 > $OUT/synth.log 2>&1
cp $D/llama3-tokenizer/* /tmp/l8b/
if [ "${HF:-0}" = 1 ]; then
  echo "=== transformers baseline and fidelity"
  timeout ${HF_TIMEOUT:-420} python3 scripts/cuda/hf_compare.py --model /tmp/l8b --tide $D/tide --out $OUT > $OUT/hf.log 2>&1; echo "rc=$?"
  grep -vE "Loading|it/s\]" $OUT/hf.log | tail -14
fi
[ "${SKIP_SERVE:-0}" = 1 ] && exit 0
echo "=== tide serve --device cuda"
rm -f $OUT/port
$D/tide serve -m /tmp/l8b --device cuda --host 127.0.0.1 --port 0 --port-file $OUT/port --max-num-seqs 128 \
  > $OUT/serve.log 2>&1 &
pid=$!
for _ in $(seq 1800); do [ -s $OUT/port ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
grep -E "^\[tide\]" $OUT/serve.log | tail -6
if [ -s $OUT/port ]; then
  url=http://127.0.0.1:$(cat $OUT/port)
  curl -s $url/v1/completions -H 'Content-Type: application/json' \
    -d '{"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0}' | head -c 600; echo
  timeout 300 $D/tide bench serve --base-url $url --model /tmp/l8b --dataset-name random \
    --num-prompts ${PROMPTS:-200} --random-input-len 512 --random-output-len 128 --ignore-eos --seed 0 \
    --request-rate ${RATES:-4,16,inf} --json $OUT/serve_bench.json 2>&1 | tee $OUT/bench_serve.log | tail -30
  echo "=== sampled on the GPU: a request with every sampling knob, then load at temperature 0.8"
  curl -s $url/v1/completions -H 'Content-Type: application/json' \
    -d '{"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
         "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": 0.3, "repetition_penalty": 1.1,
         "logit_bias": {"13": -100}, "seed": 3, "logprobs": 2}' | head -c 600; echo
  timeout 200 $D/tide bench serve --base-url $url --model /tmp/l8b --dataset-name random \
    --num-prompts ${PROMPTS:-200} --random-input-len 512 --random-output-len 128 --ignore-eos --seed 1 \
    --temperature 0.8 --request-rate inf 2>&1 | tee $OUT/bench_serve_sampled.log | tail -16
  curl -s $url/metrics | grep -E "^tide_(num_requests|kv_cache_usage|gpu_cache|num_preemptions)" | head
else
  echo "tide serve did not become ready"; tail -20 $OUT/serve.log
fi
kill -TERM $pid 2>/dev/null; wait $pid; echo "serve exit rc=$?"
