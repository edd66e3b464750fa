#!/usr/bin/env bash
# TAP: the command line uses the library's public headers (include/corrsde/) and its own
# (src/cli/) only: every #include "..." of src/cli/*.c and *.h names a header there.
# Usage: check_cli_includes.sh SOURCE_ROOT
set -u
root=$1
n=0 failed=0
for f in "$root"/src/cli/*.c "$root"/src/cli/*.h; do
  base=${f##*/}
  bad=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
    sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/' | while read -r h; do
      case $h in
        corrsde/*) [ -f "$root/include/$h" ] || echo "$h" ;;
        cli/*) [ -f "$root/src/$h" ] || echo "$h" ;;
        *) echo "$h" ;;
      esac
    done | tr '\n' ' ')
  n=$((n + 1))
  if [ -z "$bad" ]; then
    echo "ok $n - src/cli/$base includes public and cli headers only"
  else
    echo "not ok $n - src/cli/$base includes $bad"
    failed=$((failed + 1))
  fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
