/* `corrsde cov`: build a frame covariance from a spec and report how it is represented:
 * the method, the matrix (or its top-left corner), the eigenvalue range, log det C and,
 * for a circulant approximation, its distance from the exact Toeplitz matrix.
 * Everything is computed before anything is printed, so an error leaves stdout empty. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "corrsde/cov.h"

#define CMD "cov"
#define DEFAULT_SPEC "ar1:rho=0.9"
#define DEFAULT_TAU 16
#define DEFAULT_ROWS 8
/* Up to this many frames every eigenvalue is computed (O(tau^3) for embed) and csv
 * writes the whole matrix by default; above it only what --eigenvalues, --full or
 * --rows ask for. The matrix is never formed: entries are printed as they are read. */
#define FULL_TAU 2048

enum { OPT_FULL = 256, OPT_FORMAT, OPT_EIG };

static const cli_option cov_options[] = {
  {"cov", 'c', "a covariance spec such as ar1:rho=0.9"},
  {"frames", 't', "a positive integer"},
  {"method", 'm', cli_arg_cov_method},
  {"rows", 'k', "a positive integer"},
  {"full", OPT_FULL, NULL},
  {"eigenvalues", OPT_EIG, NULL},
  {"format", OPT_FORMAT, "text or csv"},
  {"help", 'h', NULL},
  {0},
};

static const char *const formats[] = {"text", "csv", NULL};
enum { FMT_TEXT = 0, FMT_CSV };

typedef struct {
  const char *spec;
  size_t tau;
  const char *method_name;
  csde_cov_method method;
  size_t rows; /* 0: the default for the format */
  int full;
  int eigs; /* --eigenvalues */
  int format;
  int help;
} cov_args;

/* What the report prints, all computed up front. */
typedef struct {
  csde_cov *C;
  size_t tau, k; /* k: rows and columns shown */
  double eig_lo, eig_hi; /* eigenvalue range of C: exact, or bounds (embed) */
  int eig_exact;
  double logdet;
  csde_cov_report rep;
} cov_result;

static void help(void)
{
  printf(
      "Usage: corrsde cov [--cov SPEC] [--frames TAU] [--method M] [--rows K | --full]\n"
      "                   [--eigenvalues] [--format text|csv]\n"
      "\n"
      "Build the tau x tau covariance C of the noise along the frame axis and show\n"
      "how it is represented: the method used, the matrix, its eigenvalue range,\n"
      "log det C and, for a circulant approximation, how far it is from the exact C.\n"
      "\n"
      "Options:\n"
      "  -c, --cov SPEC     the covariance (default " DEFAULT_SPEC "; forms below)\n"
      "  -t, --frames TAU   number of frames tau, a positive integer (default %d)\n"
      "  -m, --method M     how C is represented (default auto; methods below)\n"
      "  -k, --rows K       show the first K rows and columns (default min(%d, tau))\n"
      "      --full         show all tau rows and columns\n"
      "      --eigenvalues  compute every eigenvalue of C exactly, whatever tau\n"
      "                     (a dense eigensolve for embed: O(tau^3) time, tau x tau\n"
      "                     memory); this is the default up to %d frames. Above it,\n"
      "                     embed reports bounds: the range of its circulant embedding\n"
      "                     (dense and circulant methods are always exact)\n"
      "      --format F     text (default) or csv: the matrix as comma-separated\n"
      "                     rows at full precision, every other result on a\n"
      "                     '# key = value' line; csv writes the whole matrix\n"
      "                     up to %d frames (above, the first %d rows and columns)\n"
      "                     unless --rows or --full is given\n"
      "  -h, --help         show this help and exit\n"
      "\n"
      "Long clips: with embed and the circulant methods nothing of size tau x tau is\n"
      "formed (entries are printed as they are read), so --frames 100000 takes well\n"
      "under a second for ar1, mixed and identity. For other Toeplitz families log det\n"
      "C costs one Levinson-Durbin pass (O(tau^2) time, O(tau) memory: seconds at\n"
      "100000 frames). dense and dense-cholesky (and auto below %d frames) form\n"
      "tau x tau matrices.\n"
      "\n"
      "Covariance specs. All but dense are Toeplitz: C_ij = c_k with k = |i - j|.\n",
      DEFAULT_TAU, DEFAULT_ROWS, FULL_TAU, FULL_TAU, DEFAULT_ROWS, CSDE_COV_AUTO_TAU);
  const char *name, *form, *what;
  for (size_t i = 0; (name = csde_cov_family_entry(i, &form, &what)); i++)
    cli_help_entry(2, 31, form, what);
  printf(
      "  For example:\n"
      "    identity   ar1:rho=0.9   mixed:alpha=1   mixed:r=0.5\n"
      "    toeplitz:col=1,0.5,0.25   toeplitz:file=col.txt   toeplitz:file=col.h5:/col\n"
      "    dense:file=C.h5:/C   matern32:ell=4   matern52:ell=4,var=1,nugget=1e-6\n"
      "    rbf:ell=4,nugget=1e-6\n"
      "\n"
      "Methods. Exact ones represent C itself; circulant ones replace it by a\n"
      "circulant matrix and so change the model (the report says by how much).\n");
  for (size_t i = 0; (name = csde_cov_method_entry(i, &what)); i++)
    cli_help_entry(2, 20, name, what);
  /* in parts: C99 compilers need not take string literals over 4095 characters */
  printf(      "\n"
      "Examples:\n"
      "  corrsde cov                                      AR(1), rho = 0.9, 16 frames\n"
      "  corrsde cov --cov mixed:alpha=1 --frames 8 --full\n"
      "  corrsde cov --cov ar1:rho=0.9 --frames 64 --method circulant-tchan\n"
      "  corrsde cov --cov matern52:ell=4,var=1,nugget=1e-6 --frames 256 --method embed\n"
      "  corrsde cov --cov dense:file=C.h5:/C --frames 32 --format csv > C.csv\n"
      "\n"
      "Exit status: 0 on success; 1 when the library rejects the covariance (a\n"
      "parameter out of range, an unreadable file, a matrix that is not PSD);\n"
      "2 for a malformed command line.\n");
}

static int parse_args(int argc, char **argv, cov_args *a)
{
  cli_getopt g;
  const char *v;
  int c, rc;
  a->spec = DEFAULT_SPEC;
  a->tau = DEFAULT_TAU;
  a->method_name = "auto";
  a->method = CSDE_COV_AUTO;
  a->rows = 0;
  a->full = 0;
  a->eigs = 0;
  a->format = FMT_TEXT;
  a->help = 0;
  cli_getopt_init(&g, CMD, cov_options, argc, argv);
  while ((c = cli_getopt_next(&g, &v)) != -1) {
    switch (c) {
    case 'c':
      a->spec = v;
      break;
    case 't':
      if ((rc = cli_parse_size(CMD, "--frames", v, &a->tau))) return rc;
      break;
    case 'm': {
      csde_err err;
      csde_err_clear(&err);
      if (csde_cov_method_parse(v, &a->method, &err)) {
        char names[256];
        cli_error(CMD, "--method: expected one of %s, got '%s'",
                  csde_cov_method_names(names, sizeof names), v);
        return CLI_EUSAGE;
      }
      a->method_name = v;
      break;
    }
    case 'k':
      if ((rc = cli_parse_size(CMD, "--rows", v, &a->rows))) return rc;
      break;
    case OPT_FULL:
      a->full = 1;
      break;
    case OPT_EIG:
      a->eigs = 1;
      break;
    case OPT_FORMAT:
      if ((rc = cli_parse_choice(CMD, "--format", v, formats, &a->format))) return rc;
      break;
    case 'h':
      a->help = 1;
      break;
    default: /* '?': the error is printed */
      return CLI_EUSAGE;
    }
  }
  return CLI_OK;
}

static void result_free(cov_result *r) { csde_cov_free(r->C); }

/* Build C and everything the report shows. Prints the error and returns nonzero on failure. */
static int compute(const cov_args *a, cov_result *r)
{
  csde_err err;
  csde_cov_params p = csde_cov_default_params();
  memset(r, 0, sizeof *r);
  csde_err_clear(&err);
  p.method = a->method;
  if (csde_cov_alloc(&r->C, a->spec, a->tau, &p, &err)) {
    /* A method that cannot apply to this kind of covariance is the --method flag's fault.
     * A singular or indefinite matrix may be the pair's (dense-cholesky of a singular C,
     * an indefinite Strang circulant), so an explicit method is named beside --cov. */
    int explicit_method = a->method != CSDE_COV_AUTO;
    if (explicit_method && err.status == CSDE_ENOTSUP)
      return cli_lib_error(CMD, "--method", a->method_name, &err);
    if (explicit_method && (err.status == CSDE_ENOTPSD || err.status == CSDE_ESING)) {
      if (strstr(err.msg, a->spec))
        cli_error(CMD, "--cov with --method %s: %s", a->method_name, err.msg);
      else
        cli_error(CMD, "--cov '%s' with --method %s: %s", a->spec, a->method_name, err.msg);
      return CLI_EFAIL;
    }
    if (err.status == CSDE_EINVAL) { /* the only invalid argument left is tau */
      cli_error(CMD, "--frames %zu: %s", a->tau, err.msg);
      return CLI_EFAIL;
    }
    return cli_lib_error(CMD, "--cov", a->spec, &err);
  }
  r->tau = csde_cov_tau(r->C);
  r->eig_exact = csde_cov_eig_bounds(r->C, &r->eig_lo, &r->eig_hi);
  if (!r->eig_exact && (a->eigs || r->tau <= FULL_TAU)) { /* every eigenvalue, exactly */
    if (r->tau > ((size_t)-1) / sizeof(double) / r->tau) {
      cli_error(CMD, "--eigenvalues: %zu frames: a %zu x %zu matrix does not fit in memory",
                r->tau, r->tau, r->tau);
      return CLI_EFAIL;
    }
    double *eig = malloc(r->tau * sizeof *eig);
    if (!eig) {
      cli_error(CMD, "--eigenvalues: out of memory for %zu eigenvalues", r->tau);
      return CLI_EFAIL;
    }
    if (csde_cov_eigenvalues(r->C, eig, &err)) {
      free(eig);
      cli_error(CMD, "eigenvalues of --cov '%s': %s", a->spec,
                err.msg[0] ? err.msg : csde_strerror(err.status));
      return CLI_EFAIL;
    }
    r->eig_lo = eig[0];
    r->eig_hi = eig[r->tau - 1];
    r->eig_exact = 1;
    free(eig);
  }
  r->logdet = csde_cov_logdet(r->C);
  r->rep = csde_cov_approx_report(r->C);
  if (a->full)
    r->k = r->tau;
  else if (a->rows)
    r->k = a->rows < r->tau ? a->rows : r->tau;
  else if (a->format == FMT_CSV)
    r->k = r->tau <= FULL_TAU ? r->tau : DEFAULT_ROWS;
  else
    r->k = r->tau < DEFAULT_ROWS ? r->tau : DEFAULT_ROWS;
  return CLI_OK;
}

/* ---- text output ---- */

static void kv(const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void kv(const char *key, const char *fmt, ...)
{
  va_list ap;
  printf("%-16s", key);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

static double clean_zero(double x) { return x == 0 ? 0.0 : x; } /* no "-0" */

/* The condition number max/min as text; a singular or indefinite C says so. With
 * bounds lo <= lambda <= hi (embed, above FULL_TAU), hi / lo is an upper bound. */
static const char *condition_text(double lo, double hi, int exact, size_t tau, char *buf,
                                  size_t len)
{
  double tol = (double)tau * DBL_EPSILON * fabs(hi); /* numerical rank tolerance */
  if (lo > tol)
    snprintf(buf, len, exact ? "%.6g" : "<= %.6g  (bound from the embedding)", hi / lo);
  else if (!exact)
    snprintf(buf, len, "unknown (the embedding's eigenvalues reach 0; --eigenvalues)");
  else if (lo >= -tol)
    snprintf(buf, len, "inf (singular to working precision)");
  else
    snprintf(buf, len, "undefined (min eigenvalue < 0: not PSD)");
  return buf;
}

static int digits(size_t n)
{
  int d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

/* The top-left k x k corner of C in aligned "%.6g" columns, with row and column
 * indices; "..." marks what is cut off. Entries are read one by one (csde_cov_entry). */
static void print_matrix(const csde_cov *C, size_t tau, size_t k)
{
  char cell[64];
  int w = 1, iw = digits(k - 1);
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j < k; j++) {
      int n = snprintf(cell, sizeof cell, "%.6g", clean_zero(csde_cov_entry(C, i, j)));
      if (n > w) w = n;
    }
  printf("  %*s", iw, "");
  for (size_t j = 0; j < k; j++) printf("  %*zu", w, j);
  printf(k < tau ? "  ...\n" : "\n");
  for (size_t i = 0; i < k; i++) {
    printf("  %*zu", iw, i);
    for (size_t j = 0; j < k; j++) printf("  %*.6g", w, clean_zero(csde_cov_entry(C, i, j)));
    printf(k < tau ? "  ...\n" : "\n");
  }
  if (k < tau) printf("  ...\n");
}

static int is_approx(csde_cov_method m)
{
  return m == CSDE_COV_CIRC_TCHAN || m == CSDE_COV_CIRC_STRANG;
}

static void print_text(const cov_args *a, const cov_result *r)
{
  char buf[128];
  csde_cov_method m = csde_cov_method_of(r->C);
  const char *name = csde_cov_method_name(m);
  kv("covariance", "%s", csde_cov_spec(r->C));
  kv("frames", "%zu", r->tau);
  kv("method", "%s  (%s%s)", name,
     is_approx(m) ? "approximation: changes the model" : "exact",
     a->method == CSDE_COV_AUTO ? ", chosen by auto" : "");
  kv("noise dim", "%zu  (rows of white noise per pixel)", csde_cov_noise_dim(r->C));
  if (m == CSDE_COV_EMBED) kv("embedding", "m = %zu", csde_cov_embed_size(r->C));
  printf("\n");
  if (r->k < r->tau)
    printf("C, first %zu of %zu rows and columns (--full for all):\n", r->k, r->tau);
  else
    printf("C (%zu x %zu):\n", r->tau, r->tau);
  print_matrix(r->C, r->tau, r->k);
  printf("\n");
  if (r->eig_exact)
    kv("eigenvalues", "min %.6g, max %.6g", r->eig_lo, r->eig_hi);
  else
    kv("eigenvalues", "in [%.6g, %.6g]  (bounds: the embedding's range; --eigenvalues for "
       "the exact ones)", r->eig_lo, r->eig_hi);
  kv("condition", "%s", condition_text(r->eig_lo, r->eig_hi, r->eig_exact, r->tau, buf,
                                       sizeof buf));
  kv("log det C", "%.12g%s", r->logdet, isinf(r->logdet) ? "  (C is singular)" : "");
  if (r->rep.approx) {
    printf("\ncirculant C in place of the exact Toeplitz matrix T:\n");
    kv("  KL per frame", "%.6g  (KL(N(0,T) || N(0,C)) / tau)", r->rep.kl_per_frame);
    kv("  max |C - T|", "%.6g  (largest entry difference)", r->rep.max_entry_diff);
    kv("  eigenvalues", "min %.6g, max %.6g%s", r->rep.eig_min, r->rep.eig_max,
       r->rep.eig_min < 0 ? "  (indefinite: not a covariance)" : "");
  }
}

/* ---- csv output ---- */

static void print_csv(const cov_args *a, const cov_result *r)
{
  csde_cov_method m = csde_cov_method_of(r->C);
  double lo = r->eig_lo, hi = r->eig_hi;
  printf("# corrsde cov\n");
  printf("# covariance = %s\n", csde_cov_spec(r->C));
  printf("# frames = %zu\n", r->tau);
  printf("# method = %s\n", csde_cov_method_name(m));
  printf("# method_requested = %s\n", a->method_name);
  printf("# exact = %d\n", !is_approx(m));
  printf("# noise_dim = %zu\n", csde_cov_noise_dim(r->C));
  if (m == CSDE_COV_EMBED) printf("# embed_size = %zu\n", csde_cov_embed_size(r->C));
  printf("# eig_min = %.17g\n", lo);
  printf("# eig_max = %.17g\n", hi);
  printf("# eig_exact = %d\n", r->eig_exact); /* 0: eig_min/eig_max are bounds */
  printf("# condition = %.17g\n", lo > 0 ? hi / lo : HUGE_VAL);
  printf("# logdet = %.17g\n", r->logdet);
  if (r->rep.approx) {
    printf("# kl_per_frame = %.17g\n", r->rep.kl_per_frame);
    printf("# max_entry_diff = %.17g\n", r->rep.max_entry_diff);
    printf("# circ_eig_min = %.17g\n", r->rep.eig_min);
    printf("# circ_eig_max = %.17g\n", r->rep.eig_max);
  }
  printf("# rows = %zu\n", r->k);
  for (size_t i = 0; i < r->k; i++)
    for (size_t j = 0; j < r->k; j++)
      printf("%.17g%c", clean_zero(csde_cov_entry(r->C, i, j)), j + 1 < r->k ? ',' : '\n');
}

int cli_cmd_cov(int argc, char **argv)
{
  cov_args a;
  cov_result r;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  if (a.help) {
    help();
    return CLI_OK;
  }
  rc = compute(&a, &r);
  if (rc == CLI_OK) {
    if (a.format == FMT_CSV)
      print_csv(&a, &r);
    else
      print_text(&a, &r);
  }
  result_free(&r);
  return rc;
}
