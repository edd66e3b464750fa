#!/usr/bin/env bash
# TAP: libcorrsde.so exports exactly the functions include/corrsde/ declares with CSDE_API
# (less csde_plugin_init, which a plugin defines), and a program linked against the shared
# library, with only the umbrella header, runs (experiments/example_solve.c).
# Usage: check_exports.sh LIBCORRSDE.so INCLUDE_DIR EXAMPLE_SHARED
set -u
lib=$1 inc=$2 example=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() {
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
grep -ho '^CSDE_API[^(]*\bcsde_[A-Za-z0-9_]*(' "$inc"/corrsde/*.h | grep -o 'csde_[A-Za-z0-9_]*($' |
  tr -d '(' | grep -vx csde_plugin_init | sort -u >"$tmp/declared"
# a function a public header declares without CSDE_API is neither exported nor listed above
grep -nE '^[A-Za-z_].*\bcsde_[A-Za-z0-9_]*[(]' "$inc"/corrsde/*.h |
  grep -vE '^[^:]*:[0-9]+:(CSDE_API|typedef|#)' >"$tmp/bare"
st=$?
sed 's/^/#   /' "$tmp/bare"
ok $((st == 0)) "every function the public headers declare carries CSDE_API"
# (.gomp_critical_user_*: the lock of a named OpenMP critical section, made by the compiler)
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRB]$/ && $3 !~ /^\.gomp_critical_user_/ {print $3}' |
  sort -u >"$tmp/exported"
diff "$tmp/declared" "$tmp/exported" >"$tmp/diff"
st=$?
sed 's/^/#   /' "$tmp/diff" | head -20
ok $st "the shared library exports the $(wc -l <"$tmp/declared") declared functions and nothing else"
"$example" >"$tmp/out" 2>&1
st=$?
sed 's/^/#   /' "$tmp/out"
ok $st "example_solve linked against the shared library runs and matches the exact flow"
echo "1..$n"
[ "$failed" -eq 0 ]
