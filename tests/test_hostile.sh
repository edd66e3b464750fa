#!/usr/bin/env bash
# TAP test of issue 23: hostile HDF5 files against `corrsde info` and `corrsde sample
# --init`. Each point provokes one finding and asserts what the readers now do:
#  11. an array-valued /trajectory n_saved (it overflowed a long long on the stack), and
#      negative, too large, unsigned-huge and string ones: --init refuses each with a
#      message naming n_saved, info ignores or clamps it and says so;
#  13. files that crashed libhdf5 through `info`'s iteration over attributes (H5A__close
#      in H5Aiterate2): info now reads only the attributes it knows, by name;
#  14. external storage pointing at a FIFO (--init blocked for ever), an external link to
#      a FIFO, a virtual dataset, an unknown filter with a plugin in HDF5_PLUGIN_PATH
#      (which HDF5 would load): refused within seconds, nothing opened or loaded;
#  19. control characters in the file's strings: info prints them escaped;
# and a quick run of tests/hostile_files.py (mutated real files and hand-made ones):
# every command exits 0 or with a clean error (1 or 2, one line), within a timeout.
# Needs /usr/bin/python3 with h5py to make the files (skipped without it).
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"
PY=${PYTHON3:-/usr/bin/python3}
SRC=${CORRSDE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
REG=$SRC/tests/fuzz/regressions/h5_raw

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/tap.sh"

have_h5py=0
"$PY" -c 'import h5py, numpy' 2>/dev/null && have_h5py=1

# clean_error DESCRIPTION PATTERN ARGS...: within 10 s, exit 1, one stderr line matching
# PATTERN (grep -E), nothing on stdout.
clean_error() {
  local what=$1 pat=$2
  shift 2
  last_args="$*"
  timeout 10 "$CORRSDE" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -s "$tmp/out" ] &&
    grep -qE -- "$pat" "$tmp/err"
  ok $? "$what: exit 1 within 10 s (got $rc), one line matching '$pat'"
}

# info_ok DESCRIPTION ARGS...: `corrsde info` exits 0 within 10 s, nothing on stderr
info_ok() {
  local what=$1
  shift
  last_args="info $*"
  timeout 10 "$CORRSDE" info "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]
}

init=(sample --batch 2 --frames 4 --frame-shape 8 --steps 2 -q --force -o "$tmp/o.h5")

if [ $have_h5py -eq 0 ]; then
  skip "hostile files" "no python3-h5py"
  echo "1..$n"
  exit 0
fi

# a real file: x [3, 2, 4, 8], the base of the hand-made ones
"$CORRSDE" sample --batch 2 --frames 4 --frame-shape 8 --steps 4 --save every:2 -q \
  -o "$tmp/base.h5"
ok $? "a real trajectory file to start from"
mkfifo "$tmp/fifo"

# ---- 11. n_saved ----

py '
import sys, shutil, h5py, numpy as np
base, d = sys.argv[1], sys.argv[2]
cases = {"array": np.arange(5), "negative": np.int64(-3), "large": np.int64(50),
         "u64": np.uint64(2**64 - 1), "string": "five", "one": np.array([2], np.int32)}
for name, v in cases.items():
    shutil.copy(base, "%s/ns-%s.h5" % (d, name))
    with h5py.File("%s/ns-%s.h5" % (d, name), "r+") as f:
        f["trajectory"].attrs["n_saved"] = v
' "$tmp/base.h5" "$tmp"
ok $? "files with n_saved of the wrong forms"

info_ok "info, array n_saved" "$tmp/ns-array.h5" &&
  grep -q 'n_saved ignored: an array of 5 values, expected one integer; all 3 entries counted' \
    "$tmp/out" && grep -q '^ *3 saved states' "$tmp/out"
ok $? "item 11: info on an array n_saved: exit 0, 'n_saved ignored: an array of 5 values', 3 states"
clean_error "item 11: --init, array n_saved" "n_saved .*an array of 5 values, expected one integer" \
  "${init[@]}" --init "$tmp/ns-array.h5"
clean_error "--init, negative n_saved" "n_saved .* is -3: a count of saved states cannot be negative" \
  "${init[@]}" --init "$tmp/ns-negative.h5"
clean_error "--init, n_saved larger than x" "n_saved .* is 50, but '/trajectory/x' has 3 entries" \
  "${init[@]}" --init "$tmp/ns-large.h5"
clean_error "--init, n_saved 2^64 - 1 (unsigned)" "n_saved .*18446744073709551615, beyond the range of int64" \
  "${init[@]}" --init "$tmp/ns-u64.h5"
clean_error "--init, string n_saved" "n_saved .*a string, expected one integer" \
  "${init[@]}" --init "$tmp/ns-string.h5"
info_ok "info, negative n_saved" "$tmp/ns-negative.h5" &&
  grep -q 'n_saved ignored: -3 is negative' "$tmp/out"
ok $? "info on a negative n_saved: 'n_saved ignored: -3 is negative'"
info_ok "info, too large n_saved" "$tmp/ns-large.h5" &&
  grep -q 'n_saved is 50, more than the 3 entries of x: clamped to 3' "$tmp/out"
ok $? "info on n_saved 50 > 3 entries: 'clamped to 3'"
"$CORRSDE" "${init[@]}" --init "$tmp/ns-one.h5" && info_ok "info, one-element n_saved" \
  "$tmp/ns-one.h5" && grep -q '^ *2 saved states' "$tmp/out"
ok $? "n_saved as an array of one element is one count: --init and info take 2"

# ---- 13. files that crashed libhdf5 through info's attribute iteration ----

for f in "$REG"/segv-*.h5; do
  [ -e "$f" ] || continue
  last_args="info $f"
  timeout 10 "$CORRSDE" info "$f" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  { [ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]; } ||
    { [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; }
  ok $? "item 13: info on $(basename "$f") (a corrupt attribute table): exit 0 or a clean error (got $rc)"
done

# ---- 14. nothing outside the file is opened, nothing is loaded ----

py '
import sys, h5py, numpy as np
d = sys.argv[1]
fifo = d + "/fifo"
ext = [(fifo, 0, h5py.h5f.UNLIMITED)]
with h5py.File(d + "/ext-x.h5", "w") as f:          # /x and /trajectory/x in a FIFO
    f.create_dataset("x", shape=(2, 4, 8), dtype="f8", external=ext)
    f.create_dataset("trajectory/x", shape=(3, 2, 4, 8), dtype="f8", external=ext)
with h5py.File(d + "/ext-t.h5", "w") as f:          # /trajectory/t in a FIFO
    f["trajectory/x"] = np.zeros((3, 2, 4, 8))
    f.create_dataset("trajectory/t", shape=(3,), dtype="f8", external=ext)
with h5py.File(d + "/elink.h5", "w") as f:          # /trajectory: a link into a FIFO
    f["trajectory"] = h5py.ExternalLink(fifo, "/")
lay = h5py.VirtualLayout(shape=(2, 4, 8), dtype="f8")
lay[:] = h5py.VirtualSource(fifo, "x", shape=(2, 4, 8))
with h5py.File(d + "/vds.h5", "w") as f:            # /x: a virtual dataset of a FIFO
    f.create_virtual_dataset("x", lay, fillvalue=0)
    f["trajectory/x"] = np.zeros((3, 2, 4, 8))
    lt = h5py.VirtualLayout(shape=(3,), dtype="f8")
    lt[:] = h5py.VirtualSource(fifo, "t", shape=(3,))
    f.create_virtual_dataset("trajectory/t", lt, fillvalue=0)
' "$tmp"
ok $? "files whose data is in a FIFO: external storage, an external link, a virtual dataset"
clean_error "item 14: --init F:/x, /x in a FIFO (external storage)" \
  "dataset '/x' .* uses external storage .*external storage is not read" \
  "${init[@]}" --init "$tmp/ext-x.h5:/x"
clean_error "item 14: info, /trajectory/x in a FIFO (external storage)" \
  "'/trajectory/x' .* uses external storage" info "$tmp/ext-x.h5"
clean_error "info, /trajectory/t in a FIFO (external storage)" \
  "'/trajectory/t' .* uses external storage" info "$tmp/ext-t.h5"
clean_error "info, /trajectory an external link to a FIFO" \
  "'/trajectory' in .* is an external link: only hard links are followed" info "$tmp/elink.h5"
clean_error "--init F:/trajectory/x, /trajectory an external link to a FIFO" \
  "'/trajectory' in .* is an external link" "${init[@]}" --init "$tmp/elink.h5:/trajectory/x"
clean_error "--init F:/x, /x a virtual dataset of a FIFO" \
  "dataset '/x' .* is a virtual dataset" "${init[@]}" --init "$tmp/vds.h5:/x"
clean_error "info, /trajectory/t a virtual dataset" "'/trajectory/t' .* is a virtual dataset" \
  info "$tmp/vds.h5"

if [ -n "${CSDE_H5FILTER_PROBE:-}" ] && [ -f "$CSDE_H5FILTER_PROBE" ]; then
  mkdir -p "$tmp/plugins"
  # HDF5 1.10 loads only lib*.so* from HDF5_PLUGIN_PATH
  cp "$CSDE_H5FILTER_PROBE" "$tmp/plugins/libcsde_probe.so"
  HDF5_PLUGIN_PATH="$tmp/plugins" CSDE_PROBE_MARK="$tmp/made" py '
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/plugin.h5", "w") as f:   # filter 40000 applied through the plugin
    for name, shape in (("x", (2, 4, 8)), ("trajectory/x", (3, 2, 4, 8))):
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(shape)
        # optional: H5Dcreate takes an unregistered filter; the write loads the plugin
        dcpl.set_filter(40000, h5py.h5z.FLAG_OPTIONAL, ())
        if "/" in name:
            f.require_group("trajectory")
        ds = h5py.h5d.create(f.id, name.encode(), h5py.h5t.IEEE_F64LE,
                             h5py.h5s.create_simple(shape), dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ones(shape))
    f["trajectory/t"] = np.linspace(1, 0, 3)
' "$tmp" && grep -q loaded "$tmp/made"
  ok $? "a file written through an HDF5 filter plugin (the plugin says when it is loaded)"
  export HDF5_PLUGIN_PATH="$tmp/plugins" CSDE_PROBE_MARK="$tmp/mark"
  clean_error "item 14: --init F:/x, /x through filter 40000 with HDF5_PLUGIN_PATH set" \
    "dataset '/x' .* uses filter 40000.*only deflate" "${init[@]}" --init "$tmp/plugin.h5:/x"
  [ ! -e "$tmp/mark" ]
  ok $? "--init did not load the plugin"
  rm -f "$tmp/mark"
  clean_error "info, /trajectory/x through filter 40000" "uses filter 40000" info "$tmp/plugin.h5"
  [ ! -e "$tmp/mark" ]
  ok $? "info did not load the plugin"
  unset HDF5_PLUGIN_PATH CSDE_PROBE_MARK
else
  skip "filter plugins: not loaded" "no CSDE_H5FILTER_PROBE (the test plugin)"
fi

# ---- 19. strings from the file, escaped ----

py '
import sys, shutil, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    f["parameters"].attrs["solver"] = "euler\x1b[31mRED\x07"
    f["stats"].attrs["status"] = "ok\x1b]0;title\x07"
    f["covariance"].attrs["spec"] = "ar1\u009b2J"
' "$tmp/base.h5" "$tmp/esc.h5"
info_ok "info, escapes" "$tmp/esc.h5" && grep -qF 'euler\x1b[31mRED\x07' "$tmp/out" &&
  grep -qF 'ok\x1b]0;title\x07' "$tmp/out" && grep -qF 'ar1\u009b2J' "$tmp/out" &&
  ! grep -q $'\x1b' "$tmp/out" && ! grep -q $'\x07' "$tmp/out" &&
  ! LC_ALL=C grep -q $'\xc2\x9b' "$tmp/out"
ok $? "item 19: info prints ESC, BEL and C1 controls from the file escaped (\\x1b, \\u009b), never raw"

# ---- files that still crash or hang libhdf5 itself (a broken global heap of a
# variable-length string): info reads in a child process and says so ----

for f in "$SRC"/tests/fuzz/libhdf5/*.h5; do
  CORRSDE_INFO_TIMEOUT=5 run info "$f"
  [ "$rc" -eq 1 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -Eq "the HDF5 library crashed reading it \(signal 11|did not end in 5 s" "$tmp/err"
  ok $? "info on $(basename "$f") (libhdf5 crashes or loops on it): exit 1, one line, nothing on stdout"
done

# ---- a quick run over many hostile files ----

if "$PY" "$SRC/tests/hostile_files.py" --corrsde "$CORRSDE" --flips "${CSDE_HOSTILE_FLIPS:-45}" \
  --seed 23 --timeout 10 >"$tmp/hostile" 2>&1; then
  ok 0 "hostile_files.py: $(tail -1 "$tmp/hostile")"
else
  sed 's/^/#   /' "$tmp/hostile" | tail -40
  ok 1 "hostile_files.py: every run ok or a clean error"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
