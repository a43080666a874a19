#!/usr/bin/env bash
# Device run: `tide serve --device cuda` A/B on a random Llama-3-8B-shape model — for each
# binary in BINS (in $D), greedy then temperature-0.8 load (all requests at once), TTFT/TPOT
# table last. $D holds the binaries, lib/ and llama3-tokenizer/; the cuda tests in $D run first.
cd "$(dirname "$0")/../.."
D=${D:-build/p5/h5}; OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=$PWD/$D/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name --format=csv,noheader
for t in model_runner_greedy_test decode_graph_cuda_test; do
  [ -x $D/$t ] && { timeout 120 $D/$t > $OUT/$t.log 2>&1; echo "=== $t rc=$? $(grep -E '^\[  PASSED|^\[  FAILED  \] [0-9]' $OUT/$t.log | tr '\n' ' ')"; }
done
timeout 120 $D/tide synth -c scripts/cuda/llama3_8b_config.json -o /tmp/l8b --dtype bf16 > /dev/null 2>&1
cp $D/llama3-tokenizer/* /tmp/l8b/
for b in ${BINS:-tide_old tide}; do
  rm -f $OUT/port; $D/$b serve -m /tmp/l8b --device cuda --host 127.0.0.1 --port 0 --port-file $OUT/port --max-num-seqs 128 > $OUT/serve_$b.log 2>&1 &
  pid=$!; for _ in $(seq 900); do [ -s $OUT/port ] && break; sleep 0.1; done
  url=http://127.0.0.1:$(cat $OUT/port)
  for temp in 0 0.8; do
    timeout 100 $D/tide bench serve --base-url $url --model /tmp/l8b --dataset-name random --num-prompts ${PROMPTS:-120} \
      --random-input-len 512 --random-output-len 128 --ignore-eos --seed 1 --temperature $temp --request-rate inf > $OUT/bs_${b}_$temp.log 2>&1
    echo "$b temperature $temp: $(grep -E '^inf ' $OUT/bs_${b}_$temp.log)" >> $OUT/table.txt
  done
  kill -TERM $pid; wait $pid
done
echo "rate conc done failed | req/s out tok/s goodput | TTFT p50/p99 ms | TPOT p50/p99 ms | ITL p50/p99 ms"; cat $OUT/table.txt
