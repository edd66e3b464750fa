/* Internal: a trajectory file of several writers (corrsde-mpi sample); the declarations
 * (csde_traj_part, csde_traj_create_part, csde_traj_agree, csde_traj_failed_rank) are
 * public: corrsde/run.h. */
#ifndef CSDE_RUN_TRAJ_PART_H
#define CSDE_RUN_TRAJ_PART_H

#include "corrsde/run.h"

#endif
