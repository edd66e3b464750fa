/* Internal: the writers of one HDF5 file. One process (the default, and always with the
 * serial HDF5), or every rank of an MPI communicator through parallel HDF5 (corrsde-mpi,
 * built against hdf5-openmpi, where hdf5.h defines H5_HAVE_PARALLEL).
 *
 * Every writer of a group makes every call on the file in the same order with the same
 * arguments, except the part of the data it owns. A sync point is csde_h5group_agree:
 * each writer brings its status, and all leave with the status and message of the
 * lowest rank that failed. It is the only collective call that a writer's own failure
 * may meet, so a writer that fails between sync points calls it once more, alone, and
 * meets the others at their next one (see csde_traj_agree, corrsde/run.h's internals).
 */
#ifndef CSDE_IO_H5GROUP_H
#define CSDE_IO_H5GROUP_H

#include <stddef.h>

#include <hdf5.h>

#include "corrsde/status.h"

typedef struct {
  int rank, size;     /* 0 and 1 for one writer */
  const void *comm;   /* an MPI_Comm *, or NULL for one writer */
  int failed_rank;    /* the rank of the last failure agreed on, or -1 */
} csde_h5group;

/* One writer. */
void csde_h5group_single(csde_h5group *g);
/* The ranks of *comm (an MPI_Comm *). CSDE_EINVAL when HDF5 was built without parallel
 * support, or MPI is not initialised. */
int csde_h5group_init(csde_h5group *g, const void *comm, csde_err *err);
int csde_h5group_parallel(const csde_h5group *g);

/* The sync point: returns 0 when every writer's s is 0, else the status of the lowest
 * failing rank, whose message every writer gets in err (which may be NULL) and whose
 * rank is kept in g->failed_rank. One writer: s. */
int csde_h5group_agree(csde_h5group *g, int s, csde_err *err);
/* buf (n bytes) := rank 0's. One writer: nothing. */
int csde_h5group_bcast(const csde_h5group *g, void *buf, size_t n);
/* The largest v over the writers. */
double csde_h5group_max(const csde_h5group *g, double v);

/* File access and data transfer properties: MPI-IO and collective transfers for a
 * group, H5P_DEFAULT for one writer (close them with csde_h5group_close_plist). */
hid_t csde_h5group_fapl(const csde_h5group *g);
hid_t csde_h5group_dxpl(const csde_h5group *g);
void csde_h5group_close_plist(hid_t p);

#endif
