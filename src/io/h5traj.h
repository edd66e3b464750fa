/* Internal: the HDF5 trajectory file of `corrsde sample` and its reader (`corrsde info`).
 *
 * Layout (H5MD-like; a contract, see the README and issue 4):
 *   /trajectory/x     [n_saved, B, tau, *SHAPE]  float32 or float64, chunked, extendable
 *                     along axis 0, optionally gzip + shuffle (a killed run: longer,
 *                     entries past n_saved read as 0, with t NaN and step -1)
 *   /trajectory/t     [n_saved] float64, model time of each saved state
 *   /trajectory/step  [n_saved] int64, the solver step that produced it (0: the start)
 *   /trajectory/{sample,frame,pixel | height,width | channel,height,width}: int64 index
 *                     dimension scales (H5DS) of x's axes 1.. ; t is the scale of axis 0
 *                     of x and step (netCDF/xarray readers name every axis)
 *   /                 attributes format, format_version, Conventions (CF-1.8)
 *   /parameters       attributes: every setting of the run
 *   /covariance       matrix [tau, tau] (the C actually used), eigenvalues [tau]
 *   /stats            attributes nfe, steps, accepted, rejected, wall_seconds, status
 *
 * Crash safety:
 * - The file is created whole (parameters, covariance, empty trajectory, /stats with
 *   status "running") before a solve starts.
 * - x, t and step are made as long as the run's saved states (capacity) with their
 *   space allocated at once (x reads as 0, t as NaN, step as -1 until saved), so that an append changes no
 *   HDF5 metadata but the attribute /trajectory n_saved: it writes x and flushes, then t
 *   and step and flushes, then n_saved and flushes. A SIGKILL at any moment leaves
 *   entries below n_saved whole. (A flush that splits a node of HDF5's chunk index is
 *   not safe against a kill: HDF5 writes the superblock's end of file last, so a node
 *   the old ones point to can lie past it.) An uncompressed state is written in place;
 *   a compressed one moves its chunk, changing only its own index entry. A run of
 *   unknown length (capacity 0) doubles the datasets when they are full; its file's
 *   index nodes hold 2 GROW_K = 2048 entries, so no node splits before 2048 states:
 *   the doublings past that are the exception.
 *   A clean close cuts the datasets to n_saved (one writer: parallel HDF5 1.10 breaks the
 *   file when a dataset is cut, so several writers leave them at the capacity). The
 *   superblock is HDF5's oldest format, which carries no "open for writing" mark, so a
 *   killed run's file opens without h5clear. No SWMR.
 * - A run of known length that the disk (or the file-size limit) cannot hold is
 *   refused at create. A failed write (disk full, compressed or of unknown length)
 *   gives back a reserve of disk space kept since create and flushes, so /stats can
 *   still record the failure; the datasets then keep their length. A state that is not finite (or beyond float32's range in a float32
 *   file) is refused before anything is written.
 * - path.lock is held (flock) from create to close: a second writer of the same path
 *   is refused before it touches the file. It also holds the disk reserve.
 * - The file is written as a fresh path.partial.XXXXXX (io/outfile.h: made with O_EXCL,
 *   never through a link; HDF5 opens it by /proc/self/fd/N). A new file is renamed to
 *   path once it is whole (csde_h5traj_ready, before the solve), so path never names a
 *   file that HDF5 cannot open. Over an existing regular file (overwrite) the rename
 *   waits until the run is viable: its first state past the start (step > 0), or a
 *   finish with status "ok", and never happens once *stop is set. A run that fails
 *   before that removes its temporary and leaves the old file as it was; a killed one
 *   leaves it.
 * - /stats holds all its attributes from create on; csde_h5traj_stats overwrites their
 *   values in place.
 *
 * Strings are written as variable-length UTF-8 (h5py reads them as str). The reader
 * accepts what any HDF5 program writes with the same paths: fixed or variable strings,
 * integers and floats of any size, small arrays.
 */
#ifndef CSDE_IO_H5TRAJ_H
#define CSDE_IO_H5TRAJ_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "corrsde/problem.h"
#include "corrsde/status.h"
#include "io/h5meta.h"
#include "io/h5traj_read.h"

/* The root attributes format and format_version: the layout above, version 2 since the
 * datasets are made at the run's length with dimension scales (1: growing, no scales). */
#define CSDE_H5TRAJ_FORMAT "corrsde-trajectory"
#define CSDE_H5TRAJ_FORMAT_VERSION "2"
#define CSDE_H5TRAJ_MAXSHAPE 3

/* ---- writer ---- */

typedef struct csde_h5traj csde_h5traj;

typedef struct {
  size_t batch, tau;
  int shape_rank;                   /* 1 (D), 2 (HxW) or 3 (CxHxW) */
  size_t shape[CSDE_H5TRAJ_MAXSHAPE];
  int float32;                      /* 1: store float32, 0: float64 */
  int compress;                     /* 1: gzip (level 4) + shuffle */
  int overwrite;                    /* 1: truncate an existing file; 0: fail if it exists */
  size_t capacity;                  /* the states the run saves (at most), if known; 0:
                                       unknown (the datasets double when full) */
  /* Several writers of one file (io/h5group.h; parallel HDF5): comm is an MPI_Comm *, and
   * this writer's states are samples [part_first, part_first + part_batch) of batch (a
   * part may be empty). Every writer makes every call, with the same arguments but its
   * own part of x. The lock, the disk checks and the renames are rank 0's; attributes
   * take rank 0's values. Needs a known capacity. NULL: one writer of the whole batch. */
  const void *comm;
  size_t part_first, part_batch;
  /* Optional: a flag set (by a signal handler, say) once the run has been asked to stop;
   * from then on an existing file is never replaced. */
  const volatile sig_atomic_t *stop;
} csde_h5traj_params;

/* Take path.lock, then create the file (path, or path.partial when overwriting an
 * existing one) with its groups, the empty extendable trajectory datasets and /stats
 * with status "running". Allocates every buffer an append needs. */
int csde_h5traj_create(csde_h5traj **out, const char *path, const csde_h5traj_params *p,
                       csde_err *err);

/* Everything before the first state is written (parameters, covariance): flush, and
 * put a new file in place under its name. Call once, before the solve. */
int csde_h5traj_ready(csde_h5traj *w, csde_err *err);

/* Attributes on an existing group (obj: "/parameters", "/covariance", "/stats",
 * "/trajectory/x", ...). An attribute of the same name is replaced. n == 1 writes a
 * scalar, n > 1 a 1-D array. */
int csde_h5traj_attr_str(csde_h5traj *w, const char *obj, const char *name, const char *v,
                         csde_err *err);
int csde_h5traj_attr_f64(csde_h5traj *w, const char *obj, const char *name, const double *v,
                         size_t n, csde_err *err);
int csde_h5traj_attr_i64(csde_h5traj *w, const char *obj, const char *name,
                         const int64_t *v, size_t n, csde_err *err);
int csde_h5traj_attr_u64(csde_h5traj *w, const char *obj, const char *name,
                         const uint64_t *v, size_t n, csde_err *err);
/* Always a 1-D array, even of one value (a shape, a list of times). */
int csde_h5traj_attr_f64_list(csde_h5traj *w, const char *obj, const char *name,
                              const double *v, size_t n, csde_err *err);
int csde_h5traj_attr_i64_list(csde_h5traj *w, const char *obj, const char *name,
                              const int64_t *v, size_t n, csde_err *err);

/* A fixed float64 dataset (e.g. "/covariance/matrix"), rank <= CSDE_H5_MAXRANK. */
int csde_h5traj_write_array(csde_h5traj *w, const char *name, const double *v, int rank,
                            const size_t *dims, csde_err *err);

/* Several writers: the sync point of io/h5group.h (every writer's status in, the
 * lowest failing rank's status and message out), the rank that failed last (-1: none),
 * and buf := rank 0's bytes. One writer: s, -1 and nothing. */
int csde_h5traj_agree(csde_h5traj *w, int s, csde_err *err);
int csde_h5traj_failed_rank(const csde_h5traj *w);
int csde_h5traj_bcast(csde_h5traj *w, void *buf, size_t n);

/* Flush everything written so far to the file. */
int csde_h5traj_flush(csde_h5traj *w, csde_err *err);

/* Append one state x (B * tau * prod(SHAPE) doubles, converted to the file's type; with
 * several writers, this writer's part_batch samples) with its time and step, with the
 * flushes above. No allocation. A state with a NaN or an
 * Inf is refused (CSDE_ENAN), as is one beyond float32's range in a float32 file
 * (CSDE_ERANGE), naming the step, t and the first bad index; the file is unchanged. */
int csde_h5traj_append(csde_h5traj *w, int64_t step, double t, const double *x,
                       csde_err *err);

/* States appended so far, and the step of the last one (-1 if none). */
size_t csde_h5traj_count(const csde_h5traj *w);
int64_t csde_h5traj_last_step(const csde_h5traj *w);
/* The file being written: path.partial while an overwrite has not replaced the old
 * file yet (csde_h5traj_replaces() == 1), else path. */
const char *csde_h5traj_path(const csde_h5traj *w);
int csde_h5traj_replaces(const csde_h5traj *w);

/* Write /stats (nfe, steps, accepted, rejected, wall_seconds, n_saved, status) and
 * flush. Status "ok" also completes an overwrite. */
int csde_h5traj_stats(csde_h5traj *w, const csde_solve_stats *st, const char *status,
                      csde_err *err);

/* Close the file, reporting a failure to write what is left, and release the lock.
 * An overwrite that never became viable removes path.partial. Frees w (even on
 * failure). */
int csde_h5traj_close(csde_h5traj *w, csde_err *err);
/* Close without reporting (error paths). Accepts NULL. */
void csde_h5traj_free(csde_h5traj *w);
/* Close and remove what create made (path.partial, or the new path; never an old
 * file), for a failure before the run starts. Accepts NULL. */
void csde_h5traj_discard(csde_h5traj *w);

/* w as the writer of /parameters and /covariance (io/h5meta.h; its groups exist). */
csde_h5sink csde_h5traj_sink(csde_h5traj *w);

/* csde_h5_program_init: corrsde/io.h. */

#endif
