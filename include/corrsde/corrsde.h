/* corrsde/corrsde.h: the umbrella header: every public header of the library. */
#ifndef CORRSDE_H
#define CORRSDE_H

#include "corrsde/status.h"
#include "corrsde/rng.h"
#include "corrsde/cov.h"
#include "corrsde/schedule.h"
#include "corrsde/discrete.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/solve.h"
#include "corrsde/plugin.h"
#include "corrsde/run.h"
#include "corrsde/converge.h"
#include "corrsde/likelihood.h"

#endif
