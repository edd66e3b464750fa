#!/usr/bin/env bash
# The install check (a step of scripts/test.sh, so of .ci/run): `meson install -C build`
# into the configured prefix (default /usr/local), then, from a fresh directory outside the
# source tree, with PYTHONPATH and LD_LIBRARY_PATH unset:
#   1. /usr/bin/python3 imports the installed package (not the build tree's) and solves;
#   2. the installed `corrsde` runs a `--model python:FILE.py:NAME` model through the
#      installed plugin (the model checks that the package it sees is the installed one);
#   3. experiments/example_ar1.c, built with `cc $(pkg-config --cflags --libs corrsde)`,
#      links the installed libcorrsde.so and runs.
# Prints "ok N - ..." / "not ok N - ..." and ends with "install: N passed, N failed".
# Needs root (as CI is); otherwise every check is skipped, and said so. The installed
# files are removed afterwards (`ninja -C build uninstall`) unless CSDE_KEEP_INSTALL=1.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
pass=0 fail=0 n=0
result() { # result OK NAME [DETAIL...]
  n=$((n + 1))
  if [ "$1" = 0 ]; then
    pass=$((pass + 1)); echo "ok $n - $2"
  else
    fail=$((fail + 1)); echo "not ok $n - $2"; shift 2; [ $# -gt 0 ] && printf '  %s\n' "$@"
  fi
}

if [ "$(id -u)" != 0 ]; then
  echo "install: skipped (meson install into the prefix needs root)"
  echo "install: 0 passed, 0 failed"
  exit 0
fi
work=$(mktemp -d /tmp/corrsde-install.XXXXXX)
cleanup() {
  if [ "${CSDE_KEEP_INSTALL:-0}" != 1 ]; then
    ninja -C "$src/build" uninstall >"$work/uninstall.log" 2>&1 || cat "$work/uninstall.log"
    ldconfig 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if ! meson install -C build >"$work/install.log" 2>&1; then
  result 1 "meson install -C build" "$(tail -20 "$work/install.log")"
  echo "install: $pass passed, $fail failed"
  exit 1
fi
prefix=$(meson introspect --buildoptions build | /usr/bin/python3 -c \
  'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
cd "$work"
clean=(env -u PYTHONPATH -u LD_LIBRARY_PATH -u CORRSDE_PYTHON_PLUGIN)

# 1. the package, from /usr/bin/python3 in a directory of its own
out=$("${clean[@]}" /usr/bin/python3 -c '
import os, sys, corrsde
C = corrsde.Cov("ar1:rho=0.9", frames=4)
r = corrsde.solve(lambda t, x, ctx: -x, cov=C, output="cscore", steps=10, batch=2,
                  frame_shape=(3, 3), seed=1)
assert r.x.shape == (2, 4, 3, 3) and r.nfe == 10, r
print(os.path.dirname(os.path.abspath(corrsde.__file__)))' 2>&1)
rc=$?
pkg=$(tail -1 <<<"$out")
if [ $rc = 0 ] && [[ $pkg == "$prefix"/* ]]; then
  result 0 "import corrsde from $work: $pkg"
else
  result 1 "import corrsde from $work (expected a package under $prefix)" "$out"
fi

# 2. the installed program with a python: model, through the installed plugin: the model
# sees the installed package (the build tree's plugin would give it build/python's)
cat >model.py <<'EOF'
import corrsde

def make(ctx, args):
    assert corrsde.__file__.startswith(args + "/"), (corrsde.__file__, args)
    def model(t, x, c):
        return -x
    model.output = "cscore"
    return model
EOF
out=$("${clean[@]}" "$prefix/bin/corrsde" sample --model "python:$work/model.py:make:$pkg" \
  --frames 4 --frame-shape 3x3 --batch 2 --steps 10 -q -o "$work/s.h5" 2>&1)
rc=$?
if [ $rc = 0 ] && [ -s "$work/s.h5" ]; then
  result 0 "$prefix/bin/corrsde sample --model python:model.py:make (the installed plugin)"
else
  result 1 "$prefix/bin/corrsde sample --model python:model.py:make (exit $rc)" "$out"
fi

# 3. a C program against the installed library, through pkg-config, run without
# LD_LIBRARY_PATH (the loader's cache: meson install ran ldconfig)
out=$( { "${clean[@]}" cc -o ex "$src/experiments/example_ar1.c" \
           $(pkg-config --cflags --libs corrsde) &&
         ldd ./ex | grep libcorrsde && "${clean[@]}" ./ex; } 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q "=> $prefix/" <<<"$out"; then
  result 0 "cc example_ar1.c \$(pkg-config --cflags --libs corrsde) runs: $(grep libcorrsde <<<"$out" | xargs)"
else
  result 1 "cc example_ar1.c \$(pkg-config --cflags --libs corrsde) and run (exit $rc)" "$out"
fi

echo "install: $pass passed, $fail failed"
[ $fail = 0 ]
