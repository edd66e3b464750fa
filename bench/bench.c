/* corrsde-bench: timing tables for the normal generator and the covariance operators.
 *   corrsde-bench rng [--n N] [--repeats R] [--threads T] [--csv FILE] ...
 *   corrsde-bench cov [--D 4096] [--taus 8,16,...] [--repeats R] [--csv FILE]
 *   corrsde-bench all [options of both]
 * Every row is the median of R repeats with the min and max; ratios are against a
 * baseline measured in the same run. See bench/README.md. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "corrsde/corrsde.h"

double bench_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stat bench_stats(double *t, int r)
{
  bench_stat s = {NAN, NAN, NAN};
  if (r <= 0) return s;
  qsort(t, (size_t)r, sizeof *t, cmp_double);
  s.min = t[0];
  s.max = t[r - 1];
  s.med = r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]);
  return s;
}

/* a CSV field: quoted when it holds a comma or a quote */
static void csv_text(FILE *f, const char *s)
{
  if (!s) s = "";
  if (!strpbrk(s, ",\"\n")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void csv_num(FILE *f, double x)
{
  if (isfinite(x)) fprintf(f, "%.6g", x);
}

void bench_csv_row(const bench_opts *o, const char *bench, const char *name, const char *param,
                   int threads, double n, int repeats, bench_stat s, double rate, double ratio,
                   const char *ratio_to, const char *note)
{
  FILE *f = o->csv;
  if (!f) return;
  csv_text(f, bench);
  fputc(',', f);
  csv_text(f, name);
  fputc(',', f);
  csv_text(f, param);
  fprintf(f, ",%d,", threads);
  if (isfinite(n)) fprintf(f, "%.0f", n);
  fprintf(f, ",%d,", repeats);
  csv_num(f, s.med);
  fputc(',', f);
  csv_num(f, s.min);
  fputc(',', f);
  csv_num(f, s.max);
  fputc(',', f);
  csv_num(f, rate);
  fputc(',', f);
  csv_num(f, ratio);
  fputc(',', f);
  csv_text(f, ratio_to);
  fputc(',', f);
  csv_text(f, note);
  fputc('\n', f);
  fflush(f);
}

/* ---- child processes: the baselines, and corrsde's own cases ---- */

const char *bench_python(const bench_opts *o)
{
  const char *py = o->python ? o->python : getenv("CSDE_PYTHON");
  return py ? py : "/usr/bin/python3";
}

void bench_quote(char *dst, size_t cap, const char *s)
{
  size_t k = 0;
  if (k < cap) dst[k++] = '\'';
  for (; *s && k + 5 < cap; s++) {
    if (*s == '\'') {
      memcpy(dst + k, "'\\''", 4);
      k += 4;
    } else {
      dst[k++] = *s;
    }
  }
  if (k < cap) dst[k++] = '\'';
  dst[k < cap ? k : cap - 1] = 0;
}

static int readable(const char *dir, const char *file, char *path, size_t cap)
{
  char full[PATH_MAX];
  int m = snprintf(path, cap, "%s/%s", dir, file);
  if (m <= 0 || (size_t)m >= cap || access(path, R_OK)) return 0;
  if (realpath(path, full) && strlen(full) < cap) strcpy(path, full);
  return 1;
}

int bench_find_script(const bench_opts *o, const char *file, char *path, size_t cap)
{
  char dir[PATH_MAX + 64];
  if (o->baselines) return readable(o->baselines, file, path, cap);
  const char *src = getenv("CSDE_SRCDIR");
  if (src) {
    snprintf(dir, sizeof dir, "%s/bench/baselines", src);
    if (readable(dir, file, path, cap)) return 1;
  }
  char exe[PATH_MAX];
  ssize_t m = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (m > 0) {
    exe[m] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(dir, sizeof dir, "%s/../../bench/baselines", exe);
    if (readable(dir, file, path, cap)) return 1;
  }
  return readable("bench/baselines", file, path, cap);
}

int bench_run_lines(const char *cmd, bench_line_fn *fn, void *user)
{
  FILE *p = popen(cmd, "r");
  if (!p) {
    fprintf(stderr, "corrsde-bench: cannot run %s\n", cmd);
    return -1;
  }
  char line[16384];
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    char *f[BENCH_MAXF];
    int nf = 0;
    for (char *s = line; s && nf < BENCH_MAXF; nf++) {
      f[nf] = s;
      s = strchr(s, '\t');
      if (s) *s++ = 0;
    }
    if (nf < 2 || !fn(nf, f, user)) printf("# child: %s\n", line);
  }
  int st = pclose(p);
  if (st != 0)
    printf("# %s: %s %d\n", cmd, WIFEXITED(st) ? "exit status" : "status",
           WIFEXITED(st) ? WEXITSTATUS(st) : st);
  return st == 0 ? 0 : -1;
}

static void usage(FILE *f)
{
  fputs("usage: corrsde-bench COMMAND [options]\n"
        "commands:\n"
        "  rng   normals per second: corrsde (1 and --threads threads, uniform, generic\n"
        "        kernel) against NumPy default_rng().standard_normal and torch.randn\n"
        "        (float64), measured by bench/baselines/rng_numpy.py in the same run\n"
        "  cov   y = C x for one block of tau x D (ar1:rho=0.9), methods dense,\n"
        "        circulant-tchan and embed; the tau from which embed beats dense\n"
        "  sde   reverse SDE with Euler-Maruyama (gaussian model, tau 16, batch 4, 100\n"
        "        steps, 64x64 and 256x256, 1 and --threads threads) against NumPy and\n"
        "        PyTorch (bench/baselines/sde_*.py); the solver's own work per step\n"
        "        against a triad over the state (the memory-bandwidth bound); the PF-ODE\n"
        "        with rk45 and dopri5 at rtol = atol = 1e-5 against scipy\n"
        "        solve_ivp(RK45); the peak RSS of every run against k x state bytes\n"
        "  all   rng, cov, then sde\n"
        "options:\n"
        "  --n N            rng: values per fill (default 4194304 = 2^22)\n"
        "  --repeats R      timed repeats per row (default rng 9, cov 5, sde 5)\n"
        "  --threads T      rng: threads of the parallel row (default 2);\n"
        "                   cov: BLAS threads (default 1); sde: threads (default 2)\n"
        "  --D D            cov: pixels per frame (default 4096)\n"
        "  --taus LIST      cov: frame counts, comma-separated\n"
        "                   (default 8,16,32,64,96,128,192,256,384,512,768,1024)\n"
        "  --python EXE     rng, sde: Python for the baselines (default $CSDE_PYTHON or\n"
        "                   /usr/bin/python3)\n"
        "  --baselines DIR  rng, sde: directory of the baseline scripts (default:\n"
        "                   $CSDE_SRCDIR/bench/baselines, or found from the binary's\n"
        "                   location in the source tree)\n"
        "  --no-baselines   rng, sde: skip the Python baselines (no ratio column)\n"
        "  --csv FILE       also write every row to FILE (CSV with a header line)\n"
        "  -h, --help       this text\n",
        f);
}

static int parse_size(const char *s, size_t *out)
{
  char *end;
  double v = strtod(s, &end); /* accepts 1e7 and 16777216 */
  if (end == s || *end || !(v >= 1) || v > 1e15 || v != floor(v)) return -1;
  *out = (size_t)v;
  return 0;
}

int main(int argc, char **argv)
{
  csde_init();
  const char *hint = "usage: corrsde-bench rng|cov|all [options]; --help for details\n";
  if (argc < 2) {
    fputs(hint, stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "case-em") || !strcmp(cmd, "case-ode")) return bench_case(argc, argv);
  int do_rng = !strcmp(cmd, "rng") || !strcmp(cmd, "all");
  int do_cov = !strcmp(cmd, "cov") || !strcmp(cmd, "all");
  int do_sde = !strcmp(cmd, "sde") || !strcmp(cmd, "all");
  if (!do_rng && !do_cov && !do_sde) {
    fprintf(stderr, "corrsde-bench: unknown command '%s'\n", cmd);
    fputs(hint, stderr);
    return 2;
  }
  bench_opts o = {.n = 4194304, .D = 4096, .threads = 0};
  const char *csv = NULL;
  enum { O_N = 256, O_REP, O_THR, O_D, O_TAUS, O_PY, O_BASE, O_NOBASE, O_CSV };
  static const struct option lo[] = {
      {"n", required_argument, 0, O_N},          {"repeats", required_argument, 0, O_REP},
      {"threads", required_argument, 0, O_THR},  {"D", required_argument, 0, O_D},
      {"taus", required_argument, 0, O_TAUS},    {"python", required_argument, 0, O_PY},
      {"baselines", required_argument, 0, O_BASE}, {"no-baselines", no_argument, 0, O_NOBASE},
      {"csv", required_argument, 0, O_CSV},      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    size_t v;
    switch (c) {
    case O_N:
    case O_D:
    case O_REP:
    case O_THR:
      if (parse_size(optarg, &v) || ((c == O_REP || c == O_THR) && v > 100000)) {
        fprintf(stderr, "corrsde-bench: bad value '%s' for --%s\n", optarg,
                lo[c - O_N].name);
        return 2;
      }
      if (c == O_N) o.n = v;
      if (c == O_D) o.D = v;
      if (c == O_REP) o.repeats = (int)v;
      if (c == O_THR) o.threads = (int)v;
      break;
    case O_TAUS: o.taus = optarg; break;
    case O_PY: o.python = optarg; break;
    case O_BASE: o.baselines = optarg; break;
    case O_NOBASE: o.no_baselines = 1; break;
    case O_CSV: csv = optarg; break;
    case 'h': usage(stdout); return 0;
    default: fputs(hint, stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "corrsde-bench: unexpected argument '%s'\n", argv[optind]);
    fputs(hint, stderr);
    return 2;
  }
  if (csv) {
    if (!(o.csv = fopen(csv, "w"))) {
      fprintf(stderr, "corrsde-bench: cannot write '%s'\n", csv);
      return 1;
    }
    fputs("bench,case,param,threads,n,repeats,median_s,min_s,max_s,rate_per_s,ratio,ratio_to,"
          "note\n",
          o.csv);
  }
  int s = 0;
  if (do_rng) s |= bench_rng(&o);
  if (do_rng && do_cov) printf("\n");
  if (do_cov) s |= bench_cov(&o);
  if (do_sde && (do_rng || do_cov)) printf("\n");
  if (do_sde) s |= bench_sde(&o);
  if (o.csv) {
    fclose(o.csv);
    printf("\nCSV written to %s\n", csv);
  }
  return s ? 1 : 0;
}
