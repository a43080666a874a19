#!/usr/bin/env bash
# Builds and runs every test tide has, as CI does (README's second command):
#   1. release build, warnings as errors, all CPU tests (CUDA-labelled tests skipped
#      when no GPU is present);
#   2. the same CPU tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. each parser fuzz target for a short, bounded run.
# Idempotent: installs what is missing, reuses build folders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
fuzz_seconds=${TIDE_FUZZ_SECONDS:-20}
passed=0; failed=0
summarise() {  # reads ctest output on stdin, adds its counts
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$1" | tail -1 || true)
  if [ -n "$line" ]; then
    local total fail
    fail=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + total - fail)); failed=$((failed + fail))
  fi
}

echo "== release build (warnings as errors)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTIDE_WERROR=ON >/dev/null
cmake --build build/release -j "$jobs"
set +e
ctest --test-dir build/release --output-on-failure -j "$jobs" 2>&1 | tee build/release-ctest.log
rc1=${PIPESTATUS[0]}
set -e
summarise build/release-ctest.log

# -O1 -g1 keeps the sanitizer build quick to compile; warnings are already errors in the
# release build above, so this one does not repeat -Werror (-O1 has its own false alarms).
echo "== ASan + UBSan build (CPU tests; CUDA code is compiled once, in the release build)"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DTIDE_SANITIZE=ON -DTIDE_CUDA=OFF >/dev/null
cmake --build build/asan -j "$jobs"
set +e
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs" -LE 'cuda|no_asan' 2>&1 | tee build/asan-ctest.log
rc2=${PIPESTATUS[0]}
set -e
summarise build/asan-ctest.log

echo "== fuzzers (${fuzz_seconds}s each)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIDE_FUZZ=ON -DTIDE_BUILD_TESTS=OFF >/dev/null
# Only the fuzz targets (and what they link): the rest was built twice already.
fuzz_targets=$(ninja -C build/fuzz -t targets all | sed -n 's/^\([A-Za-z0-9_]*_fuzz\): .*/\1/p' | grep -v '^cmake_' | sort -u)
cmake --build build/fuzz -j "$jobs" --target $fuzz_targets
rc3=0
for f in $(find build/fuzz/src -name '*_fuzz' -type f -perm -u+x | sort); do
  name=$(basename "$f")
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  seeds=tests/fuzz/$name
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=0 \
       "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) >"build/fuzz/$name.log" 2>&1; then
    echo "fuzz $name: clean ($(grep -Eo 'Done [0-9]+ runs' "build/fuzz/$name.log" | tail -1))"
    passed=$((passed + 1))
  else
    echo "fuzz $name: FAILED (build/fuzz/$name.log)"; tail -40 "build/fuzz/$name.log"
    failed=$((failed + 1)); rc3=1
  fi
done

echo "suite: $passed passed, $failed failed"
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && [ "$rc3" -eq 0 ]
