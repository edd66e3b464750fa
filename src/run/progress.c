/* The progress line of a run (corrsde/run.h), drawn on stderr by a step hook. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "corrsde/run.h"

void csde_run_progress_init(csde_run_progress *p, const csde_run *r, int on)
{
  memset(p, 0, sizeof *p);
  p->on = on;
  p->tty = isatty(STDERR_FILENO);
  csde_run_span(r, &p->t0, &p->t1);
  p->total = csde_run_nsteps(r);
  p->start = p->last = csde_now();
}

int csde_run_progress_step(size_t step, double t, size_t saved, int final, void *user)
{
  csde_run_progress *p = user;
  if (!p->on) return 0;
  double tn = csde_now();
  if (!final && tn - p->last < (p->tty ? 0.1 : 1.0)) return 0;
  p->last = tn;
  /* the fraction done: of the steps, or of the time span when adaptive */
  double frac = p->total ? (double)step / (double)p->total
                         : fabs(t - p->t0) / fmax(fabs(p->t1 - p->t0), 1e-300);
  frac = fmin(fmax(frac, 0.0), 1.0);
  double el = tn - p->start, eta = frac > 0 ? el * (1 - frac) / frac : NAN;
  char bar[32], es[32], steps[48];
  int w = 20, k = (int)(frac * w + 0.5);
  for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '.';
  bar[w] = '\0';
  csde_fmt_seconds(frac >= 1 ? el : eta, es, sizeof es);
  if (p->total)
    snprintf(steps, sizeof steps, "step %zu/%zu", step, p->total);
  else
    snprintf(steps, sizeof steps, "step %zu", step);
  fprintf(stderr, "%s%s  t = %-10.6g [%s] %3.0f%%  %s %s  saved %zu%s", p->tty ? "\r" : "",
          steps, t, bar, 100 * frac, frac >= 1 ? "took" : "ETA", es, saved,
          p->tty ? "\033[K" : "\n");
  fflush(stderr);
  p->drawn = 1;
  return 0;
}

void csde_run_progress_end(csde_run_progress *p)
{
  if (p->on && p->tty && p->drawn) fputc('\n', stderr);
  p->drawn = 0;
}
