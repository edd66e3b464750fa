# Shared TAP helpers for the shell tests (sourced; the test sets n, failed, tmp, CORRSDE and,
# for py, PY).
# ok STATUS DESCRIPTION: one TAP point; STATUS 0 passes. On failure, show the last run.
ok() {
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then
    echo "ok $n - $2"
  else
    echo "not ok $n - $2"
    failed=$((failed + 1))
    echo "#   command: corrsde ${last_args:-}   (exit ${rc:-?})"
    [ -s "$tmp/out" ] && sed -n '1,15s/^/#   stdout: /p' "$tmp/out"
    [ -s "$tmp/err" ] && sed -n '1,5s/^/#   stderr: /p' "$tmp/err"
  fi
  return 0
}

skip() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}

# run ARGS...: run the program; stdout, stderr and the exit status go to out, err and rc.
# A run past CSDE_RUN_TIMEOUT seconds (default 300) is killed: rc 124 (a hang fails the
# test instead of the suite).
run() {
  last_args="$*"
  timeout -k 5 "${CSDE_RUN_TIMEOUT:-300}" "$CORRSDE" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}

# py SCRIPT ARGS...: run a Python check; exit 0 means pass. Its output goes to the TAP
# stream as comments.
py() {
  local script=$1
  shift
  "$PY" - "$@" <<<"$script" 2>&1 | sed 's/^/#   py: /'
  return "${PIPESTATUS[0]}"
}
