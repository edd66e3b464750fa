/* Internal: a trajectory file of several writers (corrsde-mpi sample; io/h5group.h).
 *
 * Each writer (an MPI rank) runs samples [first, first + count) of the file's batch of
 * `total`, as a run of its own whose settings' first_sample is first, so that its
 * samples are those of the serial run, bit for bit. (A writer with count 0 runs a
 * stand-in sample and writes none of it: it must still make every call.) Every writer
 * calls every csde_traj function in the same order. /parameters records the whole run
 * (batch total, first_sample of the file's sample 0).
 *
 * The sync points are csde_traj_agree. A writer whose solve fails (so that it skips the
 * appends and step hooks of the others) calls it once with its failure, unless that
 * failure came from a sync point already (csde_traj_failed_rank() >= 0): it then meets
 * the others at their next append or step hook, and every writer stops there.
 */
#ifndef CSDE_RUN_TRAJ_PART_H
#define CSDE_RUN_TRAJ_PART_H

#include "corrsde/run.h"

typedef struct {
  size_t total, first, count;
  const void *comm; /* an MPI_Comm * */
} csde_traj_part;

int csde_traj_create_part(csde_traj **out, const char *path, const csde_run *r,
                          const csde_traj_options *o, const csde_traj_part *part,
                          csde_err *err);
/* Every writer's status in, the lowest failing rank's status and message out. */
int csde_traj_agree(csde_traj *w, int s, csde_err *err);
/* The rank whose failure was agreed on last, or -1. */
int csde_traj_failed_rank(const csde_traj *w);

#endif
