/* corrsde/corrsde.h: the umbrella header. */
#ifndef CORRSDE_H
#define CORRSDE_H

#include "corrsde/status.h"
#include "corrsde/rng.h"
#include "corrsde/cov.h"
#include "corrsde/schedule.h"
#include "corrsde/discrete.h"

#endif
