#!/usr/bin/env bash
# TAP test of the `corrsde` program (meson sets $CORRSDE to the binary).
# Checks the help, exact log det values through every exact method, the circulant report,
# file inputs, the csv format, and every error path: one line on stderr naming the flag,
# nothing on stdout, exit status 2 for a malformed command line and 1 for a library error.
set -u
: "${CORRSDE:?set CORRSDE to the corrsde binary}"

n=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/tap.sh"

# close A B RELTOL: |A - B| <= RELTOL |B| (A must be a number).
close() {
  awk -v a="$1" -v b="$2" -v tol="$3" 'BEGIN {
    if (a !~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) exit 1
    d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b
    exit !(d <= tol * s) }'
}

# The value printed after "log det C" in the text output of the last run.
logdet() { awk '/^log det C/ { print $4 }' "$tmp/out"; }

# expect_error DESCRIPTION FLAG STATUS ARGS...: the run fails with STATUS, writes exactly
# one line to stderr that contains FLAG, and writes nothing to stdout.
expect_error() {
  local what=$1 flag=$2 want=$3
  shift 3
  run "$@"
  local lines bytes
  lines=$(wc -l <"$tmp/err")
  bytes=$(wc -c <"$tmp/out")
  [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && [ "$bytes" -eq 0 ] &&
    grep -qF -- "$flag" "$tmp/err"
  ok $? "$what: exit $want, one stderr line naming '$flag', empty stdout"
}

# ---- the top level ----

run --help
ok $(( rc != 0 )) "corrsde --help exits 0"
grep -q '^  cov ' "$tmp/out"
ok $? "corrsde --help lists the cov command"

run --version
grep -q '^corrsde [0-9][0-9.]*$' "$tmp/out" && [ "$rc" -eq 0 ]
ok $? "corrsde --version prints the version"

expect_error "unknown command" "frobnicate" 2 frobnicate
expect_error "no command" "corrsde" 2
expect_error "unknown top-level option" "--bogus" 2 --bogus

run help cov
[ "$rc" -eq 0 ] && grep -q 'Usage: corrsde cov' "$tmp/out"
ok $? "corrsde help cov shows the cov help"

# ---- cov --help ----

run cov --help
ok $(( rc != 0 )) "cov --help exits 0"
[ ! -s "$tmp/err" ]
ok $? "cov --help writes nothing to stderr"
missing=""
for word in identity ar1 mixed toeplitz dense matern32 matern52 rbf \
            auto dense-cholesky circulant circulant-tchan circulant-strang embed \
            --cov --frames --method --rows --full --format --help \
            ar1:rho=0.9 mixed:alpha=1 mixed:r=0.5 toeplitz:col=1,0.5,0.25 \
            toeplitz:file=col.txt toeplitz:file=col.h5:/col dense:file=C.h5:/C \
            matern32:ell=4 matern52:ell=4,var=1,nugget=1e-6 rbf:ell=4,nugget=1e-6; do
  grep -qF -- "$word" "$tmp/out" || missing="$missing $word"
done
[ -z "$missing" ]
ok $? "cov --help mentions every family, method, option and example${missing:+ (missing:$missing)}"

# ---- exact log det values ----

# AR(1): det C = (1 - rho^2)^(tau - 1).
ar1_logdet() { awk -v t="$1" -v r="$2" 'BEGIN { printf "%.17g", (t - 1) * log(1 - r * r) }'; }
# mixed: the eigenvalues are 1 - r (tau - 1 times) and 1 + (tau - 1) r.
mixed_logdet() {
  awk -v t="$1" -v r="$2" 'BEGIN { printf "%.17g", log((1 - r) ^ (t - 1) * (1 + (t - 1) * r)) }'
}

run cov
want=$(ar1_logdet 16 0.9)
[ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ] && close "$(logdet)" "$want" 1e-9
ok $? "default run (ar1:rho=0.9, 16 frames): log det $(logdet) = 15 log(0.19) = $want"
grep -q '^method  *dense ' "$tmp/out"
ok $? "default run: auto picks dense below 512 frames"
grep -q 'first 8 of 16 rows' "$tmp/out"
ok $? "default run: shows the first 8 of 16 rows"

for m in dense dense-cholesky embed; do
  run cov --method "$m"
  [ "$rc" -eq 0 ] && grep -q "^method  *$m " "$tmp/out" && close "$(logdet)" "$want" 1e-9
  ok $? "ar1:rho=0.9, 16 frames, --method $m: log det $(logdet) (exact $want)"
done

run cov --frames 512
want512=$(ar1_logdet 512 0.9)
[ "$rc" -eq 0 ] && grep -q '^method  *embed ' "$tmp/out" && grep -q '^embedding' "$tmp/out" &&
  close "$(logdet)" "$want512" 1e-9
ok $? "ar1, 512 frames: auto picks embed, shows m, log det $(logdet) (exact $want512)"

run cov --cov mixed:r=0.5 --frames 4
wantm=$(mixed_logdet 4 0.5)
[ "$rc" -eq 0 ] && close "$(logdet)" "$wantm" 1e-9
ok $? "mixed:r=0.5, 4 frames: log det $(logdet) = log(0.5^3 * 2.5) = $wantm"

run cov --cov mixed:alpha=1 --frames 4
[ "$rc" -eq 0 ] && close "$(logdet)" "$wantm" 1e-9
ok $? "mixed:alpha=1 is mixed:r=0.5: log det $(logdet)"

run cov --cov identity --frames 5
[ "$rc" -eq 0 ] && awk -v a="$(logdet)" 'BEGIN { exit !(a != "" && a < 1e-12 && a > -1e-12) }'
ok $? "identity: log det 0"

# ---- the circulant report ----

run cov --cov ar1:rho=0.9 --frames 16 --method circulant-tchan
kl=$(awk '/KL per frame/ { print $4 }' "$tmp/out")
[ "$rc" -eq 0 ] && grep -q '^method  *circulant-tchan ' "$tmp/out" &&
  awk -v k="$kl" 'BEGIN { exit !(k + 0 > 0) }' && grep -q 'max |C - T|' "$tmp/out"
ok $? "circulant-tchan of ar1: report with a positive KL per frame ($kl)"

run cov --method circulant --frames 8
[ "$rc" -eq 0 ] && grep -q '^method  *circulant-tchan ' "$tmp/out"
ok $? "--method circulant means circulant-tchan"

run cov --method dense
! grep -q 'KL per frame' "$tmp/out"
ok $? "an exact method prints no approximation report"

# ---- every family builds ----

for spec in ar1:rho=-0.5 toeplitz:col=1,0.5,0.25 matern32:ell=4 \
            matern52:ell=4,var=1,nugget=1e-6 rbf:ell=4,nugget=1e-6; do
  run cov --cov "$spec" --frames 12
  [ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ] && grep -qF "$spec" "$tmp/out"
  ok $? "--cov $spec builds"
done

# ---- files ----

run cov --cov toeplitz:col=1,0.5,0.25 --frames 6
ref=$(logdet)
printf '1\n0.5\n0.25\n' >"$tmp/col.txt"
run cov --cov "toeplitz:file=$tmp/col.txt" --frames 6
[ "$rc" -eq 0 ] && close "$(logdet)" "$ref" 1e-12
ok $? "toeplitz:file=col.txt gives the same C as toeplitz:col=1,0.5,0.25"

# h5make DATASET RANK "DIMS" TEXT OUT: an HDF5 file of doubles from a text file.
h5make() {
  printf 'PATH %s\nINPUT-CLASS TEXTFP\nRANK %s\nDIMENSION-SIZES %s\nOUTPUT-CLASS FP\nOUTPUT-SIZE 64\n' \
    "$1" "$2" "$3" >"$tmp/h5make.conf"
  h5import "$4" -c "$tmp/h5make.conf" -o "$5" >/dev/null 2>&1
}

if command -v h5import >/dev/null 2>&1; then
  h5make /col 1 3 "$tmp/col.txt" "$tmp/col.h5"
  run cov --cov "toeplitz:file=$tmp/col.h5:/col" --frames 6
  [ "$rc" -eq 0 ] && close "$(logdet)" "$ref" 1e-12
  ok $? "toeplitz:file=col.h5:/col gives the same C"
  # The 3 x 3 tridiagonal matrix with 2 on the diagonal and 1 beside it: det = 4.
  printf '2 1 0\n1 2 1\n0 1 2\n' >"$tmp/C.txt"
  h5make /C 2 "3 3" "$tmp/C.txt" "$tmp/C.h5"
  run cov --cov "dense:file=$tmp/C.h5:/C" --frames 3
  [ "$rc" -eq 0 ] && close "$(logdet)" "$(awk 'BEGIN { printf "%.17g", log(4) }')" 1e-12
  ok $? "dense:file=C.h5:/C: log det $(logdet) = log 4"
  expect_error "dense file of the wrong size" "--cov" 1 \
    cov --cov "dense:file=$tmp/C.h5:/C" --frames 4
  expect_error "no such dataset" "--cov" 1 cov --cov "dense:file=$tmp/C.h5:/nope" --frames 3
  expect_error "embed of a dense matrix" "--method" 1 \
    cov --cov "dense:file=$tmp/C.h5:/C" --frames 3 --method embed
else
  for what in "toeplitz:file=col.h5:/col" "dense:file=C.h5:/C" "dense file of the wrong size" \
              "no such dataset" "embed of a dense matrix"; do
    skip "$what" "h5import not found"
  done
fi

# ---- rows, full and csv ----

run cov --frames 5
grep -q '^C (5 x 5):' "$tmp/out"
ok $? "5 frames: the whole 5 x 5 matrix is shown"

run cov --frames 40 --rows 3
grep -q 'first 3 of 40 rows' "$tmp/out"
ok $? "--rows 3 shows 3 rows and columns"

run cov --frames 12 --full
# the lines of the matrix block: from the "C (12 x 12):" title to the next blank line
rows=$(awk '/^C \(12 x 12\):/ { on = 1; next } on && NF == 0 { exit } on { c++ }
            END { print c + 0 }' "$tmp/out")
[ "$rows" -eq 13 ]
ok $? "--full shows all 12 rows (and the column header): $rows lines"

run cov --frames 6 --format csv
data=$(grep -v '^#' "$tmp/out")
nrow=$(printf '%s\n' "$data" | wc -l)
nfield=$(printf '%s\n' "$data" | awk -F, '{ print NF }' | sort -u)
c01=$(printf '%s\n' "$data" | awk -F, 'NR == 1 { print $2 }')
csvld=$(sed -n 's/^# logdet = //p' "$tmp/out")
[ "$rc" -eq 0 ] && [ "$nrow" -eq 6 ] && [ "$nfield" = "6" ] && close "$c01" 0.9 1e-15 &&
  close "$csvld" "$(ar1_logdet 6 0.9)" 1e-12
ok $? "--format csv: the whole 6 x 6 matrix, C_01 = $c01, and '# logdet = $csvld'"

run cov --frames 6 --format csv --rows 2
[ "$(grep -vc '^#' "$tmp/out")" -eq 2 ]
ok $? "--format csv --rows 2 writes 2 rows"

# ---- long clips (issue 10, item 12): nothing tau x tau for embed ----

run cov --help
grep -qF -- '--eigenvalues' "$tmp/out" && grep -q 'Long clips' "$tmp/out" &&
  grep -q '2048 frames' "$tmp/out"
ok $? "cov --help documents --eigenvalues, the 2048-frame limit and long clips"

run cov --frames 20000 --cov ar1:rho=0.9 --method embed
want20k=$(ar1_logdet 20000 0.9)
[ "$rc" -eq 0 ] && close "$(logdet)" "$want20k" 1e-12 && grep -q '^eigenvalues .*bounds' "$tmp/out" &&
  grep -q 'first 8 of 20000 rows' "$tmp/out"
ok $? "ar1, 20000 frames, embed: log det $(logdet) = 19999 log(0.19); eigenvalue bounds"

run cov --frames 30000 --cov mixed:r=0.5 --method circulant-tchan --format csv
[ "$rc" -eq 0 ] && [ "$(grep -vc '^#' "$tmp/out")" -eq 8 ] && grep -q '^# eig_exact = 1$' "$tmp/out"
ok $? "mixed, 30000 frames, circulant-tchan, csv: 8 rows (above 2048 frames), exact eigenvalues"

run cov --frames 2100 --format csv --rows 2
lo=$(sed -n 's/^# eig_min = //p' "$tmp/out")
[ "$rc" -eq 0 ] && grep -q '^# eig_exact = 0$' "$tmp/out"
ok $? "2100 frames (auto: embed), csv: eig_exact = 0, eig_min = $lo is a bound"
run cov --frames 2100 --format csv --rows 2 --eigenvalues
elo=$(sed -n 's/^# eig_min = //p' "$tmp/out")
[ "$rc" -eq 0 ] && grep -q '^# eig_exact = 1$' "$tmp/out" &&
  awk -v a="$elo" -v b="$lo" 'BEGIN { exit !(a + 0 >= b - 1e-12 && a + 0 > 0) }'
ok $? "... --eigenvalues: exact eig_min $elo >= the bound $lo"

# ---- inputs that used to be altered silently (issue 10, items 9 and 11) ----

expect_error "empty column entry" "--cov" 1 cov --cov toeplitz:col=1,,0.5
grep -q 'entry 2 is empty' "$tmp/err"
ok $? "toeplitz:col=1,,0.5: 'entry 2 is empty'"
printf '1\n0.5\000 0.25\n' >"$tmp/nul.txt"
expect_error "NUL byte in a text column" "--cov" 1 cov --cov "toeplitz:file=$tmp/nul.txt"
grep -q 'NUL byte at offset 5' "$tmp/err"
ok $? "text column with a NUL: 'NUL byte at offset 5'"
expect_error "a device as a column" "--cov" 1 cov --cov toeplitz:file=/dev/zero
grep -q 'not a regular file' "$tmp/err"
ok $? "toeplitz:file=/dev/zero: 'not a regular file'"
expect_error "mixed:alpha=1e200" "--cov" 1 cov --cov mixed:alpha=1e200
grep -q 'alpha = 1e+200' "$tmp/err" && ! grep -qi 'nan' "$tmp/err"
ok $? "mixed:alpha=1e200: names alpha, no NaN"
if [ -f "$tmp/C.h5" ]; then
  expect_error "dense:file=C.h5 without a dataset" "--cov" 1 cov --cov "dense:file=$tmp/C.h5" --frames 3
  grep -q 'is an HDF5 file: name the dataset' "$tmp/err"
  ok $? "dense:file=C.h5: 'is an HDF5 file: name the dataset'"
else
  skip "dense:file=C.h5 without a dataset" "h5import not found"
  skip "dense:file=C.h5: the message" "h5import not found"
fi

# gmm weights whose sum overflows (issue 10, item 8): [1e308, 1e308] used to draw every
# sample from one component. Means -10 and +10 (2 frames), covariances 0.01 I; the data
# law is sampled at t = 0 and the forward SDE runs to t = 1e-6 (no sign can flip).
if command -v h5import >/dev/null 2>&1 && command -v h5dump >/dev/null 2>&1; then
  printf '1e308 1e308\n' >"$tmp/gw.txt"
  printf -- '-10 -10\n10 10\n' >"$tmp/gm.txt"
  printf '0.01 0 0 0.01\n0.01 0 0 0.01\n' >"$tmp/gS.txt"
  gconf() {
    printf 'PATH %s\nINPUT-CLASS TEXTFP\nINPUT-SIZE 64\nRANK %s\nDIMENSION-SIZES %s\n' "$2" "$3" "$4" >"$1"
    printf 'OUTPUT-CLASS FP\nOUTPUT-SIZE 64\n' >>"$1"
  }
  gconf "$tmp/gw.conf" /weights 1 2
  gconf "$tmp/gm.conf" /means 2 "2 2"
  gconf "$tmp/gS.conf" /frame_covs 3 "2 2 2"
  h5import "$tmp/gw.txt" -c "$tmp/gw.conf" "$tmp/gm.txt" -c "$tmp/gm.conf" \
    "$tmp/gS.txt" -c "$tmp/gS.conf" -o "$tmp/gmm.h5" >/dev/null 2>&1
  run sample --model "gmm:file=$tmp/gmm.h5" --frames 2 --frame-shape 1 --batch 40 \
    --process forward-sde --steps 1 --t-end 1e-6 -o "$tmp/gmm_out.h5" -q
  counts=$(h5dump -d /trajectory/x -y -w 0 "$tmp/gmm_out.h5" 2>/dev/null |
    sed -n '/DATA {/,/}/p' | tr ',' '\n' |
    awk '$1 + 0 < -5 { n++ } $1 + 0 > 5 { p++ } END { print n / 2, p / 2 }')
  [ "$rc" -eq 0 ] && awk -v c="$counts" 'BEGIN { split(c, a, " ")
    exit !(a[1] >= 10 && a[2] >= 10 && a[1] + a[2] == 40) }'
  ok $? "gmm weights [1e308, 1e308]: 40 samples split between both components ($counts)"
else
  skip "gmm weights [1e308, 1e308]" "h5import or h5dump not found"
fi

# ---- every error path ----

expect_error "--frames 0" "--frames" 2 cov --frames 0
expect_error "--frames -3" "--frames" 2 cov --frames -3
expect_error "--frames abc" "--frames" 2 cov --frames abc
expect_error "--frames 1.5" "--frames" 2 cov --frames 1.5
expect_error "--frames too large" "--frames" 2 cov --frames 999999999999999999999999
expect_error "--frames without a value" "--frames" 2 cov --frames
expect_error "--frames beyond the library's limit" "--frames" 1 cov --frames 300000000000
expect_error "--rows 0" "--rows" 2 cov --rows 0
expect_error "unknown family" "--cov" 1 cov --cov nosuchfamily:x=1
expect_error "malformed spec" "--cov" 1 cov --cov ar1:0.9
expect_error "unknown method" "--method" 2 cov --method nosuchmethod
expect_error "rho out of range" "--cov" 1 cov --cov ar1:rho=1.5
grep -qF "1.5" "$tmp/err"
ok $? "rho out of range: the message quotes the value"
expect_error "negative mixed r" "--cov" 1 cov --cov mixed:r=-0.5
expect_error "toeplitz column that is not PSD" "--cov" 1 cov --cov toeplitz:col=1,2 --frames 4
expect_error "matern without ell" "--cov" 1 cov --cov matern32:var=1
expect_error "missing text file" "--cov" 1 cov --cov "toeplitz:file=$tmp/no-such-file.txt"
expect_error "missing HDF5 file" "--cov" 1 cov --cov "dense:file=$tmp/no-such-file.h5:/C"
expect_error "unknown option" "--bogus" 2 cov --bogus
expect_error "unknown short option" "-x" 2 cov -x
expect_error "flag given a value" "--full" 2 cov --full=yes
expect_error "unknown format" "--format" 2 cov --format xml
expect_error "stray argument" "stray" 2 cov stray
expect_error "stray argument after --" "stray" 2 cov -- stray

# ---- registries (issue 26): powerexp, added through the family table only ----
run cov --cov powerexp:ell=2,p=1 --frames 4 --method dense --format csv
# p = 1: c_k = e^(-k/2), ar1 with rho = e^(-1/2); entry (0, 3) is e^(-3/2)
awk -F, '/^#/ { next } { exit !(($4 - exp(-1.5)) ^ 2 < 1e-28) } END { }' "$tmp/out" &&
  [ $rc -eq 0 ] && grep -q '^[0-9]' "$tmp/out"
ok $? "cov --cov powerexp:ell=2,p=1: C_03 = exp(-3/2)"
for word in powerexp powerexp:ell=L,p=P; do
  run cov --help
  grep -qF -- "$word" "$tmp/out"
  ok $? "cov --help lists the registry's family $word"
done
for cmd in sample converge; do
  run $cmd --help
  grep -qF -- "discrete:betas=b1,b2,..." "$tmp/out" && grep -qF -- "circulant-strang" "$tmp/out"
  ok $? "$cmd --help lists every schedule form and covariance method from the registries"
done
expect_error "unknown family lists powerexp" "powerexp" 1 cov --cov nosuchfamily:x=1
expect_error "powerexp p > 2" "p = 3" 1 cov --cov powerexp:ell=2,p=3
expect_error "--method without a value lists the methods" "circulant-strang" 2 cov --method

echo "1..$n"
[ "$failed" -eq 0 ]
