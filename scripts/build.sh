#!/usr/bin/env bash
# Configures (once) and builds corrsde in ./build. Used by the quick start and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build >/dev/null
echo "build: ok ($(pwd)/build)"
