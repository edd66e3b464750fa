#!/usr/bin/env bash
# Builds corrsde and runs the whole test suite: the fast and slow suites, then every test
# again under valgrind's memcheck (meson test --setup valgrind, with quick sizes).
# Ends with one line "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh || exit 1

count() { # count results in meson's JSON test log
  local log=build/meson-logs/testlog$1.json
  pass=$((pass + $(grep -c '"result": "OK"' "$log" 2>/dev/null || true)))
  fail=$((fail + $(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" 2>/dev/null || true)))
}
pass=0 fail=0 rc=0
meson test -C build --print-errorlogs --num-processes 2 || rc=1
count ""
meson test -C build --setup valgrind --suite fast --print-errorlogs --num-processes 2 \
  --no-rebuild || rc=1
count "-valgrind"
echo "tests: $pass passed, $fail failed"
exit $rc
