#!/usr/bin/env bash
# Builds the libFuzzer harnesses in ./build-fuzz (clang, -Dfuzz=true), runs every seed and
# every saved crash reproducer once (meson test --suite fuzz), then fuzzes each harness
# for SECONDS (default 30; 0: the saved inputs only), two at a time.
#   bash tests/fuzz/run.sh [SECONDS]
# Without clang or libFuzzer it says so and passes. Ends with one line
# "fuzz: N passed, N failed"; exit status 1 on any failure. A crash leaves its input in
# build-fuzz/fuzz-work/NAME/ (see README.md here for what to do with it).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${1:-${CSDE_FUZZ_SECONDS:-30}}
names=(cov schedule grid model h5 text) # h5_raw: replayed, fuzzed by hand (README.md)

skip() {
  echo "fuzz: skipped ($1)"
  echo "fuzz: 0 passed, 0 failed"
  exit 0
}
command -v clang >/dev/null || skip "no clang; Debian: clang libclang-rt-14-dev"
probe=$(mktemp -d)
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
  > "$probe/p.c"
clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null
ok=$?
rm -rf "$probe"
[ $ok -eq 0 ] || skip "clang cannot link -fsanitize=fuzzer; Debian: libclang-rt-14-dev"

# (re)configured every time: a new tests/fuzz/regressions/NAME/ directory is seen at setup
if [ -f build-fuzz/build.ninja ]; then
  meson setup --reconfigure build-fuzz >/dev/null
else
  CC=clang meson setup build-fuzz -Dfuzz=true -Dopenmp=disabled --buildtype=debugoptimized \
    >/dev/null
fi || { echo "fuzz: meson setup failed"; echo "fuzz: 0 passed, 1 failed"; exit 1; }
targets=(tests/fuzz/fuzz_h5_raw) # built, its seeds and regressions run once, not fuzzed here
for n in "${names[@]}"; do targets+=("tests/fuzz/fuzz_$n"); done
if ! ninja -C build-fuzz "${targets[@]}" >build-fuzz/fuzz-build.log 2>&1; then
  tail -30 build-fuzz/fuzz-build.log
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0
pass=0 fail=0

# 1. the seeds and the regression inputs, each once
meson test -C build-fuzz --suite fuzz --no-rebuild --print-errorlogs --num-processes 2 \
  --logbase fuzz-regress >build-fuzz/fuzz-regress.log 2>&1
log=build-fuzz/meson-logs/fuzz-regress.json
p=$(grep -c '"result": "OK"' "$log" 2>/dev/null || true)
f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" 2>/dev/null || true)
pass=$((pass + p)) fail=$((fail + f))
grep -E '^ *[0-9]+/[0-9]+ ' build-fuzz/fuzz-regress.log | awk '!seen[$0]++' |
  sed 's/^ */fuzz inputs: /'
[ "$f" -eq 0 ] || grep -E 'ERROR: |SUMMARY: |^    #[0-9]+ .*/(src|solvers|tests)/' \
  build-fuzz/fuzz-regress.log | head -40

# 2. fuzzing for secs seconds each, two harnesses at a time
if [ "$secs" -gt 0 ]; then
  run_one() {
    local n=$1 w=$root/build-fuzz/fuzz-work/$1
    mkdir -p "$w/corpus"
    rm -f "$w"/crash-* "$w"/leak-* "$w"/oom-* "$w"/timeout-*
    # new inputs go to the first corpus directory (build-fuzz), never into the checked-in
    # seeds; -timeout: one input running that long is a hang
    "$root/build-fuzz/tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=25 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$w/" \
      "$w/corpus" "$root/tests/fuzz/corpus/$n" >"$w/log" 2>&1
    echo $? >"$w/rc"
  }
  running=0
  for n in "${names[@]}"; do
    if [ $running -ge 2 ]; then wait -n; running=$((running - 1)); fi
    run_one "$n" &
    running=$((running + 1))
  done
  wait
  for n in "${names[@]}"; do
    w=build-fuzz/fuzz-work/$n
    rc=$(cat "$w/rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$w/log" | tail -1)
    if [ "$rc" = 0 ]; then
      pass=$((pass + 1))
      echo "fuzz $n: ok, ${secs}s, ${runs:-?} inputs, $cov"
    else
      fail=$((fail + 1))
      art=$(ls "$w"/crash-* "$w"/leak-* "$w"/oom-* "$w"/timeout-* 2>/dev/null | head -1)
      echo "fuzz $n: FAILED (exit $rc); input: ${art:-none saved}; log: $w/log"
      grep -E 'ERROR: |SUMMARY: |^    #[0-9]+ .*/(src|solvers|tests)/' "$w/log" | head -20
      echo "  keep it as a regression: cp ${art:-INPUT} tests/fuzz/regressions/$n/"
    fi
  done
fi
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
