#!/usr/bin/env bash
# Builds corrsde and runs the whole test suite:
#   1. the fast, slow, cli and python suites (./build, release);
#   2. the fast suite again under valgrind's memcheck (meson test --setup valgrind, quick
#      sizes);
#   3. the fast suite built with ASan + UBSan (./build-asan, debugoptimized);
#   4. a build at warning_level=3 with -Werror (./build-werror; build only);
#   5. the libFuzzer harnesses (tests/fuzz/run.sh in ./build-fuzz: every seed and saved
#      crash input once, then each harness for CSDE_FUZZ_SECONDS, default 30; skipped
#      without clang);
#   6. the install (scripts/check_install.sh: `meson install -C build` into the prefix,
#      then the package, the program's python: models and a pkg-config C program checked
#      from outside the source tree; removed afterwards; needs root, skipped otherwise).
# Each step prints its time. Ends with one line "tests: N passed, N failed" (every test
# of every step; a build that fails counts as one failure); exit status 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh || exit 1

pass=0 fail=0 rc=0
count() { # count results in a meson JSON test log
  local log=$1
  pass=$((pass + $(grep -c '"result": "OK"' "$log" 2>/dev/null || true)))
  fail=$((fail + $(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" 2>/dev/null || true)))
}
t0=$SECONDS
step() { # step NAME: print the time of the step before
  [ -n "${step_name:-}" ] && echo "step $step_name: $((SECONDS - t0)) s"
  step_name=$1
  t0=$SECONDS
  [ -n "$1" ] && echo "== $1"
}

step "tests (build)"
# --logbase: our own logs, which another `meson test -C build` cannot overwrite
meson test -C build --print-errorlogs --num-processes 2 --logbase testsh || rc=1
count build/meson-logs/testsh.json

step "valgrind (build, fast suite)"
meson test -C build --setup valgrind --suite fast --print-errorlogs --num-processes 2 \
  --no-rebuild --logbase testsh || rc=1
count build/meson-logs/testsh-valgrind.json  # meson adds the setup name

# ASan + UBSan. -Db_lundef=false: the sanitizer runtimes are not linked into the shared
# library. Any UBSan report stops the test (halt_on_error); LeakSanitizer checks every
# test at exit; allocator_may_return_null: a failed allocation returns NULL as malloc
# does (the library's ENOMEM paths) instead of aborting. OpenBLAS and libgomp leave
# nothing unreachable, so no suppression file is needed (tests/asan.supp would go in
# LSAN_OPTIONS=suppressions=...).
step "asan+ubsan (build-asan, fast suite)"
if [ -f build-asan/build.ninja ] ||
   meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
     --buildtype=debugoptimized >/dev/null; then
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite fast --print-errorlogs --num-processes 2 \
      --logbase testsh || rc=1
  count build-asan/meson-logs/testsh.json
else
  rc=1 fail=$((fail + 1))
fi

step "werror (build-werror, warning_level=3, build only)"
if { [ -f build-werror/build.ninja ] ||
     meson setup build-werror -Dwarning_level=3 -Dwerror=true >/dev/null; } &&
   ninja -C build-werror >build-werror/ninja.log 2>&1; then
  pass=$((pass + 1))
  echo "werror: ok"
else
  rc=1 fail=$((fail + 1))
  grep -E 'error:|warning:' build-werror/ninja.log 2>/dev/null | sort -u | head -40
  echo "werror: FAILED (build-werror/ninja.log)"
fi

step "fuzz (build-fuzz)"
fuzz_log=$(mktemp)
bash tests/fuzz/run.sh 2>&1 | tee "$fuzz_log"
fuzz_out=$(tail -1 "$fuzz_log")
rm -f "$fuzz_log"
if [[ $fuzz_out =~ ^fuzz:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  pass=$((pass + BASH_REMATCH[1])) fail=$((fail + BASH_REMATCH[2]))
  [ "${BASH_REMATCH[2]}" = 0 ] || rc=1
else
  rc=1 fail=$((fail + 1))
fi
step "install (build, meson install into the prefix)"
inst_log=$(mktemp)
bash scripts/check_install.sh 2>&1 | tee "$inst_log"
inst_out=$(tail -1 "$inst_log")
rm -f "$inst_log"
if [[ $inst_out =~ ^install:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  pass=$((pass + BASH_REMATCH[1])) fail=$((fail + BASH_REMATCH[2]))
  [ "${BASH_REMATCH[2]}" = 0 ] || rc=1
else
  rc=1 fail=$((fail + 1))
fi
step ""

[ $fail -eq 0 ] || rc=1
echo "tests: $pass passed, $fail failed"
exit $rc
