/* Internal: the time maps of the grid kinds (grid.c): t = map(u), u = i / N. The Brownian
 * tree (noise/tree.h) uses them for its dyadic nodes. */
#ifndef CSDE_SOLVE_GRID_H
#define CSDE_SOLVE_GRID_H

#include "corrsde/schedule.h"
#include "corrsde/status.h"

typedef enum {
  CSDE_GRID_UNIFORM,
  CSDE_GRID_QUADRATIC,
  CSDE_GRID_KARRAS,
  CSDE_GRID_LOGSNR
} csde_grid_kind;

typedef struct {
  csde_grid_kind kind;
  char name[64];
  const csde_schedule *s;
  double ts, te;
  int data_at_start; /* quadratic: the data end is t_start */
  double a, b;       /* karras: sigma^(1/rho) at the ends; logsnr: logsnr at the ends */
  double rho;
} csde_grid_map;

/* The map of a grid spec other than list:... (CSDE_ESPEC for an unknown kind). */
int csde_grid_map_make(const char *spec, const csde_schedule *s, double t_start, double t_end,
                       csde_grid_map *g, csde_err *err);
/* t(u) for u in [0, 1], the ends exactly t_start and t_end (a csde_tree_time_fn). */
double csde_grid_map_at(const void *g, double u);

#endif
