#!/usr/bin/env bash
# Device run (on the GPU machine) for the sampling ops: their cuda tests (sample,
# sample_greedy, logits_process against the references; UniformAt bit for bit) and the
# sample timings at 64 x 128256. Expects build/sample-carry/ops_cuda_test (carried,
# stripped). Full logs under $OUT; a short summary last.
cd "$(dirname "$0")/../.."
D=build/sample-carry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$D/ops_cuda_test --gtest_filter='Sample*:LogitsProcess*' > $OUT/sample_cuda.log 2>&1; echo "rc=$?"
grep -E "Failure|token |error|CUDA" $OUT/sample_cuda.log | head -40
grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED) |mismatched rows" $OUT/sample_cuda.log
grep "timing:" $OUT/sample_cuda.log
echo "=== timing again (spread)"
$D/ops_cuda_test --gtest_filter='SampleCudaTest.Timing' > $OUT/sample_timing2.log 2>&1; echo "rc=$?"
grep "timing:" $OUT/sample_timing2.log
