/* Fuzz the model spec of the command line: cli_spec_model (src/cli/spec_model.c), which
 * parses gaussian[:mean=M,std=S,rho=R], gaussian:file=P.h5 and gmm:file=P.h5 through the
 * library (csde_spec_parse, csde_model_gaussian_alloc/_load, csde_model_gmm_load).
 * Input: byte 0 picks tau = 1 + (byte & 7) ('@' = 1, 'C' = 4), byte 1 the pixels per frame
 * D = 1 + (byte & 3); the rest is the spec. The fixtures G.h5 (gaussian) and P.h5 (gmm)
 * have tau = 4 (fuzz_common.h). C is ar1:rho=0.5, the schedule vp-linear. plugin: specs
 * are skipped (they dlopen a path). A model that builds is called once and, if it has a
 * data law, sampled.
 * The CLI's message functions (main.c) are replaced here by ones that format the message
 * and drop it, so that the quiet check sees only what the library prints. */
#include <stdarg.h>

#include "cli/cli.h"
#include "cli/spec_model.h"
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/schedule.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void cli_error(const char *cmd, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  (void)cmd;
}

int cli_lib_error(const char *cmd, const char *flag, const char *value, const csde_err *err)
{
  cli_error(cmd, "%s '%s': %s", flag, value ? value : "", err ? err->msg : "");
  return CLI_EFAIL;
}

static csde_schedule *sched;
static csde_cov *cov[8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  csde_init();
  fuzz_fixtures();
  csde_err err;
  if (csde_schedule_alloc(&sched, "vp-linear", &err)) abort();
  for (size_t i = 0; i < 8; i++)
    if (csde_cov_alloc(&cov[i], "ar1:rho=0.5", i + 1, NULL, &err)) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  size_t tau = 1 + (data[0] & 7), D = 1 + (data[1] & 3);
  char *spec = fuzz_str(data + 2, size - 2);
  if (strncmp(spec, "plugin", 6) != 0 && fuzz_paths_ok(spec)) {
    enum { B = 2 };
    cli_model m;
    fuzz_quiet_begin();
    int rc = cli_spec_model("fuzz", spec, cov[tau - 1], sched, tau, 1, &D, B, "pf-ode", &m);
    if (rc == CLI_OK) {
      if (!m.model || !m.spec) abort();
      double *x = malloc(B * tau * D * sizeof *x), *out = malloc(B * tau * D * sizeof *out);
      if (!x || !out) abort();
      for (size_t i = 0; i < B * tau * D; i++) x[i] = 0.1 * (double)i - 0.3;
      (void)csde_model_call(m.model, 0.5, B, x, out);
      if (cli_model_has_data_law(&m)) {
        csde_err err;
        csde_rng_key key = {7, 0};
        (void)cli_model_sample_data(&m, key, 0, B, x, &err);
      }
      free(x);
      free(out);
    } else if (rc != CLI_EFAIL && rc != CLI_EUSAGE) {
      abort();
    }
    cli_model_free(&m);
    fuzz_quiet_end("cli_spec_model");
    if (fuzz_verbose()) fprintf(stderr, "model tau=%zu D=%zu '%s': %d\n", tau, D, spec, rc);
  }
  free(spec);
  return 0;
}
