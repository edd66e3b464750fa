/* The HDF5 trajectory file: writer (append + flush per saved state) and reader
 * (h5traj.h). HDF5's own error stack printing is turned off: every failure becomes one
 * csde_err message naming the file and the object. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "core/util.h"
#include "io/h5group.h"
#include "io/h5meta.h"
#include "io/h5util.h"
#include "io/outfile.h"
#include "io/h5traj.h"

#define CHUNK_TARGET ((size_t)4 << 20) /* bytes: chunks of at most ~4 MiB when possible */
#define GZIP_LEVEL 4
#define T_CHUNK 256                    /* /trajectory/t and /step chunk length */

#define RESERVE_BYTES ((off_t)256 << 10) /* disk kept for the last flush, beyond a chunk */
#define CHUNK_CACHE ((size_t)1 << 20)     /* HDF5's default: smaller chunks are cached */
#define ROOM_MARGIN ((double)(64 << 10))  /* metadata an append may add, beyond its data */
#define GROW_START 64                     /* states of a trajectory of unknown length */
#define GROW_K 1024                       /* its chunk-index nodes hold 2 GROW_K entries */

struct csde_h5traj {
  char *path;        /* the file the user named */
  csde_outfile out;  /* rank 0: OUT's directory, OUT.lock and the temporary (outfile.h) */
  char *h5name;      /* the name HDF5 opens the temporary by */
  const char *cur;   /* the file written now, for messages: the temporary before the
                        commit, else path */
  const volatile sig_atomic_t *stop; /* non-zero: asked to stop; no commit over a file */
  int reserved;      /* disk allocated past the lock file's pid line (reserve_take) */
  int replaces;      /* path existed: tmp replaces it once the run is viable */
  int committed;     /* tmp has been renamed to path */
  int broken;        /* a failed write could not be undone: the file takes no more */
  int failed;        /* an append failed (x is then never cut: see csde_h5traj_stats) */
  hid_t file, x, t, step, nsaved;
  hid_t xtype_mem;   /* H5T_NATIVE_FLOAT or H5T_NATIVE_DOUBLE */
  hid_t mspace;      /* one state: [1, B, tau, *SHAPE] */
  hid_t mspace1;     /* one scalar: [1] */
  int rank;          /* of /trajectory/x */
  hsize_t dims[CSDE_H5_MAXRANK];
  size_t n;          /* states per append: B * tau * prod(SHAPE) */
  size_t tau, D;     /* for naming the place of a bad value */
  size_t count;      /* states appended */
  hsize_t cap;       /* the length of x, t and step: the states they have room for */
  int compress;      /* an append writes a new (compressed) chunk: it needs disk */
  int fixed;         /* the length is known: x, t and step never grow */
  int64_t last_step;
  float *conv;       /* float32 files: the converted state */
  csde_h5group g;    /* the writers of the file: one, or the ranks of an MPI job */
  hid_t dxpl;        /* x's transfers: collective for a group */
  hsize_t part_first, part_n; /* this writer's samples of x */
  size_t n_part;     /* its values per state: part_n * tau * prod(SHAPE) */
};

/* Rank 0 of a group does what touches the file system by name (the lock, the disk, the
 * renames); its result is agreed on. */
#define ROOT(w) ((w)->g.rank == 0)

/* ---- writer ---- */

static int close_id(hid_t id, herr_t (*fn)(hid_t))
{
  return id >= 0 ? (fn(id) < 0 ? -1 : 0) : 0;
}

static int h5traj_close_ids(csde_h5traj *w)
{
  int bad = 0;
  bad |= close_id(w->nsaved, H5Aclose);
  bad |= close_id(w->x, H5Dclose);
  bad |= close_id(w->t, H5Dclose);
  bad |= close_id(w->step, H5Dclose);
  bad |= close_id(w->mspace, H5Sclose);
  bad |= close_id(w->mspace1, H5Sclose);
  bad |= close_id(w->file, H5Fclose);
  csde_h5group_close_plist(w->dxpl);
  w->nsaved = w->x = w->t = w->step = w->mspace = w->mspace1 = w->file = -1;
  w->dxpl = H5P_DEFAULT;
  return bad;
}

/* ---- the reserve and the commit ---- */

/* Keep disk space for the flush that records a failure when the disk fills: the
 * metadata, and the chunk in HDF5's cache that the failed flush could not write. */
static void reserve_take(csde_h5traj *w, size_t chunk_bytes)
{
  if (w->out.lock_fd < 0) return; /* rank 0 of a group holds it */
  off_t len = RESERVE_BYTES + (off_t)(chunk_bytes < CHUNK_CACHE ? chunk_bytes : CHUNK_CACHE);
  w->reserved = posix_fallocate(w->out.lock_fd, 4096, len) == 0;
}

/* Give the reserve back to the file system, so that a full disk has room for the
 * flush that makes the file consistent and records the failure. */
static void reserve_release(csde_h5traj *w)
{
  if (w->reserved && ftruncate(w->out.lock_fd, 4096) == 0) w->reserved = 0;
}

/* Rename the temporary file to the user's name: from here on the new run is the file.
 * An overwrite is not committed once the run has been asked to stop (w->stop): the old
 * file stays as it was. */
static int commit(csde_h5traj *w, csde_err *err)
{
  if (w->committed) return CSDE_SUCCESS;
  int hold = w->replaces && w->stop && *w->stop;
  csde_h5group_bcast(&w->g, &hold, sizeof hold); /* rank 0's word */
  if (hold) return CSDE_SUCCESS;
  int s = ROOT(w) ? csde_outfile_commit(&w->out, err) : CSDE_SUCCESS;
  if ((s = csde_h5group_agree(&w->g, s, err))) return s;
  w->committed = 1;
  w->cur = w->path;
  return CSDE_SUCCESS;
}

void csde_h5traj_free(csde_h5traj *w)
{
  if (!w) return;
  h5traj_close_ids(w);
  /* a temporary file that never became the output holds nothing worth keeping; the
   * lock goes last */
  csde_outfile_release(&w->out);
  free(w->conv);
  free(w->h5name);
  free(w->path);
  free(w);
}

void csde_h5traj_discard(csde_h5traj *w)
{
  if (!w) return;
  if (w->committed && !w->replaces) { /* a file of our own making, never a user's old one */
    h5traj_close_ids(w);
    csde_outfile_remove_new(&w->out);
  }
  csde_h5traj_free(w); /* removes the temporary */
}

static int reserve_file(csde_h5traj *w, csde_err *err);
static int allocate_file(csde_h5traj *w, hsize_t size, csde_err *err);

int csde_h5traj_ready(csde_h5traj *w, csde_err *err)
{
  int s = csde_h5traj_flush(w, err);
  if (!s && w->fixed && !w->compress) s = reserve_file(w, err);
  return s ? s : w->replaces ? CSDE_SUCCESS : commit(w, err);
}

int csde_h5traj_close(csde_h5traj *w, csde_err *err)
{
  if (!w) return CSDE_SUCCESS;
  int bad = w->broken;
  if (!bad && w->file >= 0 && H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0) bad = 1;
  if (h5traj_close_ids(w)) bad = 1;
  int s = bad ? csde_err_set(err, CSDE_EIO, "cannot finish writing '%s'", w->cur)
              : CSDE_SUCCESS;
  s = csde_h5group_agree(&w->g, s, err);
  csde_h5traj_free(w);
  return s;
}

/* Chunks allocated when the dataset is made or grows: an append then writes only into
 * space that exists, so it changes no HDF5 metadata (an uncompressed chunk stays where
 * it is). fill (memory type mt) is written into them at once; NULL writes nothing (the
 * space reads as 0: an uncompressed x, whose disk csde_h5traj_ready reserves). */
static int set_prealloc(hid_t dcpl, hid_t mt, const void *fill)
{
  if (H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0) return -1;
  if (!fill) return H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ? -1 : 0;
  return H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC) < 0 ||
                 H5Pset_fill_value(dcpl, mt, fill) < 0
             ? -1
             : 0;
}

/* The disk of a file whose size is now final (uncompressed, of known length): flush,
 * then allocate every byte (posix_fallocate), so that no later write can find the disk
 * full. */
static int reserve_file(csde_h5traj *w, csde_err *err)
{
  hsize_t size = 0;
  struct stat sb;
  int got = H5Fflush(w->file, H5F_SCOPE_LOCAL) >= 0;
  if (got && !csde_h5group_parallel(&w->g))
    got = H5Fget_filesize(w->file, &size) >= 0;
  else if (got && ROOT(w)) /* MPI-IO gives no size (1.10), but its flush sets the file's */
    got = fstat(csde_outfile_fd(&w->out), &sb) == 0 && (size = (hsize_t)sb.st_size, 1);
  int s = !got ? csde_err_set(err, CSDE_EIO, "'%s': cannot flush the new file", w->cur)
               : ROOT(w) ? allocate_file(w, size, err) : CSDE_SUCCESS;
  return csde_h5group_agree(&w->g, s, err);
}

/* Rank 0: every byte of the file, size long, on disk (posix_fallocate). */
static int allocate_file(csde_h5traj *w, hsize_t size, csde_err *err)
{
  int e = posix_fallocate(csde_outfile_fd(&w->out), 0, (off_t)size);
  if (e == ENOSPC || e == EDQUOT || e == EFBIG)
    return csde_err_set(err, CSDE_EIO, "'%s': disk full: the run's %.4g MB cannot be "
                        "allocated%s", w->cur, (double)size * 1e-6,
                        e == EFBIG ? " (file-size limit)" : "");
  if (e && e != EOPNOTSUPP && e != EINVAL)
    return csde_err_set(err, CSDE_EIO, "'%s': cannot allocate its %.4g MB: %s", w->cur,
                        (double)size * 1e-6, strerror(e));
  return CSDE_SUCCESS;
}

/* An extendable 1-D dataset [cap] of type ftype, filled with *fill (memory type mt). */
static hid_t make_series(hid_t grp, const char *name, hid_t ftype, hsize_t cap, hid_t mt,
                         const void *fill)
{
  hsize_t dmax = H5S_UNLIMITED, ch = T_CHUNK;
  hid_t sp = H5Screate_simple(1, &cap, &dmax);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t d = -1;
  if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &ch) >= 0 &&
      set_prealloc(dcpl, mt, fill) == 0)
    d = H5Dcreate2(grp, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return d;
}

/* Dataset d := buf, whole: rank 0's in a group (collective; the others write nothing). */
static int write_whole(csde_h5traj *w, hid_t d, hid_t mt, const void *buf)
{
  hid_t fs = H5Dget_space(d), ms = H5Dget_space(d);
  int bad = fs < 0 || ms < 0 ||
            (!ROOT(w) && (H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0)) ||
            H5Dwrite(d, mt, ms, fs, w->dxpl, buf) < 0;
  if (fs >= 0) H5Sclose(fs);
  if (ms >= 0) H5Sclose(ms);
  return bad ? -1 : 0;
}

/* Dimension scales (H5DS), so that netCDF readers (xarray with engine h5netcdf) name
 * the axes: t is the coordinate of the saved-state axis of x and step; x's other axes
 * get index scales 0 .. n-1 named sample, frame and the frame shape's axes. */
static int attach_scales(csde_h5traj *w, hid_t grp, int shape_rank)
{
  static const char *const names[3][3] = {
      {"pixel", NULL, NULL}, {"height", "width", NULL}, {"channel", "height", "width"}};
  if (H5DSset_scale(w->t, "t") < 0 || H5DSattach_scale(w->x, w->t, 0) < 0 ||
      H5DSattach_scale(w->step, w->t, 0) < 0)
    return -1;
  for (int i = 1; i < w->rank; i++) {
    const char *name = i == 1 ? "sample" : i == 2 ? "frame" : names[shape_rank - 1][i - 3];
    hsize_t n = w->dims[i];
    int64_t *v = malloc(n * sizeof *v);
    hid_t sp = H5Screate_simple(1, &n, NULL), d = -1;
    if (v && sp >= 0)
      d = H5Dcreate2(grp, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (hsize_t k = 0; v && k < n; k++) v[k] = (int64_t)k;
    int bad = !v || d < 0 || write_whole(w, d, H5T_NATIVE_INT64, v) ||
              H5DSset_scale(d, name) < 0 || H5DSattach_scale(w->x, d, (unsigned)i) < 0;
    free(v);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (bad) return -1;
  }
  return 0;
}

/* The chunk of /trajectory/x: one saved state when it fits in CHUNK_TARGET bytes, else
 * as many samples as fit, else as many frames of one sample (a frame is never split). */
static void chunk_dims(const csde_h5traj_params *p, size_t esize, hsize_t *ch)
{
  size_t D = 1;
  for (int i = 0; i < p->shape_rank; i++) D *= p->shape[i];
  size_t frame = D * esize, sample = p->tau * frame;
  size_t bc = p->batch, tc = p->tau;
  if (bc * sample > CHUNK_TARGET) {
    bc = CHUNK_TARGET / sample;
    if (bc == 0) {
      bc = 1;
      tc = CHUNK_TARGET / frame;
      if (tc == 0) tc = 1;
    }
  }
  ch[0] = 1;
  ch[1] = bc;
  ch[2] = tc;
  for (int i = 0; i < p->shape_rank; i++) ch[3 + i] = p->shape[i];
}

static double state_bytes(const csde_h5traj *w)
{
  return (double)w->n * (double)(w->conv ? sizeof(float) : sizeof(double));
}

/* Free bytes on the file system of the file (+inf when unknown). */
static double free_bytes(const csde_h5traj *w)
{
  struct statvfs v;
  int ok = ROOT(w) ? fstatvfs(csde_outfile_fd(&w->out), &v) == 0 : statvfs(w->h5name, &v) == 0;
  return ok ? (double)v.f_bavail * (double)v.f_frsize : INFINITY;
}

/* Bytes the file may still grow by: the free disk, or less the room left under the
 * file-size limit (ulimit -f; then *fsize = 1). */
static double room_left(const csde_h5traj *w, int *fsize)
{
  double avail = free_bytes(w);
  struct rlimit lim;
  struct stat st;
  hsize_t size = 0;
  *fsize = 0;
  if (getrlimit(RLIMIT_FSIZE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY || !ROOT(w) ||
      fstat(csde_outfile_fd(&w->out), &st) != 0)
    return avail;
  if (!csde_h5group_parallel(&w->g) && H5Fget_filesize(w->file, &size) < 0) size = 0;
  double used = fmax((double)st.st_size, (double)size), left = (double)lim.rlim_cur - used;
  if (left < avail) {
    *fsize = 1;
    return fmax(left, 0.0);
  }
  return avail;
}

/* CSDE_EIO unless the disk, and the file-size limit, hold nstates uncompressed states:
 * each its bytes and its t and step, and once a margin for the metadata. known: the run
 * saves nstates (else they are the room a run of unknown length starts with). */
static int room_for(csde_h5traj *w, size_t nstates, int known, csde_err *err)
{
  double need = (double)nstates * (state_bytes(w) + 16) + ROOM_MARGIN, avail = free_bytes(w);
  char what[96];
  snprintf(what, sizeof what, known ? "the run saves %zu state%s" :
           "a run of unknown length starts with room for %zu state%s", nstates,
           nstates == 1 ? "" : "s");
  if (avail < need)
    return csde_err_set(err, CSDE_EIO,
                        "'%s': disk full: %s of %.4g MB, %.4g MB in all, but %.4g MB are "
                        "free", w->cur, what, state_bytes(w) * 1e-6, need * 1e-6,
                        avail * 1e-6);
  struct rlimit lim;
  if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
      (double)lim.rlim_cur < need)
    return csde_err_set(err, CSDE_EIO,
                        "'%s': %s, %.4g MB in all, past the file-size limit of %.4g MB "
                        "(ulimit -f)", w->cur, what, need * 1e-6, (double)lim.rlim_cur * 1e-6);
  return CSDE_SUCCESS;
}

static int h5traj_create(csde_h5traj **out, const char *path, const csde_h5traj_params *p,
                         csde_err *err);

int csde_h5traj_create(csde_h5traj **out, const char *path, const csde_h5traj_params *p,
                       csde_err *err)
{
  csde_h5_quiet q;
  csde_h5_quiet_begin(&q);
  int s = h5traj_create(out, path, p, err);
  csde_h5_quiet_end(&q);
  return s;
}

/* csde_h5traj_create's steps, in order. Each returns a status; the HDF5 and MPI calls are
 * the ones it always made, in the same order (the file is the same to the byte). */

/* The writer with its sizes, before any file exists (*out NULL on failure). */
static int traj_new(csde_h5traj **out, const char *path, const csde_h5traj_params *p,
                    csde_err *err)
{
  *out = NULL;
  if (p->shape_rank < 1 || p->shape_rank > CSDE_H5TRAJ_MAXSHAPE || p->batch == 0 ||
      p->tau == 0)
    return csde_err_set(err, CSDE_EINVAL, "trajectory: bad sizes (batch %zu, tau %zu, rank %d)",
                        p->batch, p->tau, p->shape_rank);
  csde_h5traj *w = calloc(1, sizeof *w);
  if (!w) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  w->file = w->x = w->t = w->step = w->nsaved = w->mspace = w->mspace1 = -1;
  w->dxpl = H5P_DEFAULT;
  w->last_step = -1;
  w->stop = p->stop;
  int s = csde_h5group_init(&w->g, p->comm, err);
  if (!s && p->comm && (p->capacity == 0 || p->part_first > p->batch ||
                        p->part_batch > p->batch - p->part_first))
    s = csde_err_set(err, CSDE_EINVAL, "trajectory: a file of several writers needs a known "
                     "length and parts within the batch (samples %zu + %zu of %zu)",
                     p->part_first, p->part_batch, p->batch);
  if (s) {
    free(w);
    return s;
  }
  w->part_first = p->comm ? p->part_first : 0;
  w->part_n = p->comm ? p->part_batch : p->batch;
  w->path = strdup(path);
  w->rank = 3 + p->shape_rank;
  w->tau = p->tau;
  w->D = 1;
  w->n = p->batch * p->tau;
  w->dims[0] = 0;
  w->dims[1] = p->batch;
  w->dims[2] = p->tau;
  for (int i = 0; i < p->shape_rank; i++) {
    w->dims[3 + i] = p->shape[i];
    w->n *= p->shape[i];
    w->D *= p->shape[i];
  }
  w->n_part = w->n / p->batch * (size_t)w->part_n;
  w->xtype_mem = p->float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  if (p->float32) w->conv = malloc((w->n_part ? w->n_part : 1) * sizeof *w->conv);
  if (!w->path || (p->float32 && !w->conv)) {
    csde_h5traj_free(w);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the trajectory buffers");
  }
  w->cur = w->path;
  *out = w;
  return CSDE_SUCCESS;
}

static int cannot(const csde_h5traj *w, const char *what, csde_err *err)
{
  return csde_err_set(err, CSDE_EIO, "'%s': cannot %s", w->cur, what);
}

/* OUT.lock first (a second writer is refused before it touches anything), OUT's checks,
 * then the temporary OUT.partial.XXXXXX (io/outfile.h): a new file is renamed into place
 * once it is whole (csde_h5traj_ready), an old one is replaced only once the new run is
 * viable (csde_h5traj_append). A group's ranks open rank 0's temporary by its name. */
static int open_file(csde_h5traj *w, const char *path, const csde_h5traj_params *p,
                     csde_err *err)
{
  int s = 0;
  if (ROOT(w))
    s = csde_outfile_open(&w->out, path, CSDE_OUT_LOCK |
                                             (p->overwrite ? CSDE_OUT_OVERWRITE : 0) |
                                             (p->comm ? CSDE_OUT_NAMED : 0), err);
  if ((s = csde_h5group_agree(&w->g, s, err))) return s;
  w->replaces = w->out.existed;
  size_t len = ROOT(w) ? strlen(csde_outfile_name(&w->out)) + 1 : 0;
  if (csde_h5group_bcast(&w->g, &w->replaces, sizeof w->replaces) ||
      csde_h5group_bcast(&w->g, &len, sizeof len) || !(w->h5name = malloc(len)) ||
      (ROOT(w) && !memcpy(w->h5name, csde_outfile_name(&w->out), len)) ||
      csde_h5group_bcast(&w->g, w->h5name, len))
    return csde_err_set(err, CSDE_EIO, "'%s': MPI_Bcast failed (or out of memory)", path);
  w->cur = ROOT(w) ? csde_outfile_tmp_path(&w->out) : w->h5name;
  errno = 0;
  hid_t fapl = csde_h5group_fapl(&w->g);
  /* A run of unknown length grows its datasets: chunk-index nodes of 2 GROW_K entries
   * take GROW_K * 2 states before a node splits, so growing rewrites a node in place and
   * allocates only chunks past the saved ones (a kill in that flush cannot cut the path
   * to a saved state). */
  hid_t fcpl = p->capacity ? H5P_DEFAULT : H5Pcreate(H5P_FILE_CREATE);
  if (fcpl >= 0 && !p->capacity && H5Pset_istore_k(fcpl, GROW_K) < 0) {
    H5Pclose(fcpl);
    fcpl = -1;
  }
  w->file = fapl < 0 || fcpl < 0 ? -1 : H5Fcreate(w->h5name, H5F_ACC_TRUNC, fcpl, fapl);
  if (fcpl >= 0 && fcpl != H5P_DEFAULT) H5Pclose(fcpl);
  if (w->file < 0)
    s = csde_err_set(err, CSDE_EIO, "cannot create '%s'%s%s", w->cur, errno ? ": " : "",
                     errno ? strerror(errno) : "");
  csde_h5group_close_plist(fapl);
  if ((s = csde_h5group_agree(&w->g, s, err))) return s;
  if ((w->dxpl = csde_h5group_dxpl(&w->g)) < 0) return cannot(w, "create the file", err);
  return CSDE_SUCCESS;
}

/* /trajectory/x in the open group grp, with room for every state from the start. */
static int create_x(csde_h5traj *w, const csde_h5traj_params *p, hid_t grp, csde_err *err)
{
  const char *what = "create /trajectory/x";
  hsize_t maxd[CSDE_H5_MAXRANK], ch[CSDE_H5_MAXRANK];
  for (int i = 0; i < w->rank; i++) maxd[i] = w->dims[i];
  maxd[0] = H5S_UNLIMITED;
  chunk_dims(p, p->float32 ? sizeof(float) : sizeof(double), ch);
  size_t chunk_bytes = p->float32 ? sizeof(float) : sizeof(double);
  for (int i = 0; i < w->rank; i++) chunk_bytes *= (size_t)ch[i];
  reserve_take(w, chunk_bytes);
  /* x, t and step have room for every state from the start: states not (yet) saved
   * read as NaN (step -1); a clean close cuts them to n_saved */
  w->cap = w->dims[0] = p->capacity ? p->capacity : GROW_START;
  w->compress = p->compress;
  w->fixed = p->capacity > 0;
  int s;
  if (!p->compress && (s = csde_h5group_agree(
                           &w->g, ROOT(w) ? room_for(w, w->cap, p->capacity > 0, err) : 0, err)))
    return s;
  const double zero = 0;
  hid_t sp = H5Screate_simple(w->rank, w->dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  s = sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, w->rank, ch) < 0 ||
      set_prealloc(dcpl, H5T_NATIVE_DOUBLE, p->compress ? &zero : NULL);
  if (!s && p->compress && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, GZIP_LEVEL) < 0)) {
    what = "enable gzip compression (is zlib support built into HDF5?)";
    s = 1;
  }
  if (!s)
    w->x = H5Dcreate2(grp, "x", p->float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                      dcpl, H5P_DEFAULT);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return s || w->x < 0 ? cannot(w, what, err) : CSDE_SUCCESS;
}

/* t, step, the scales and n_saved beside x in grp, and the memory layout of an append. */
static int create_series(csde_h5traj *w, const csde_h5traj_params *p, hid_t grp, csde_err *err)
{
  const double nan = NAN;
  const int64_t no_step = -1;
  w->t = make_series(grp, "t", H5T_IEEE_F64LE, w->cap, H5T_NATIVE_DOUBLE, &nan);
  w->step = make_series(grp, "step", H5T_STD_I64LE, w->cap, H5T_NATIVE_INT64, &no_step);
  if (w->t < 0 || w->step < 0) return cannot(w, "create /trajectory/t and /trajectory/step", err);
  if (attach_scales(w, grp, p->shape_rank)) return cannot(w, "attach the dimension scales", err);
  hid_t sc = H5Screate(H5S_SCALAR);
  int64_t zero = 0;
  if (sc >= 0)
    w->nsaved = H5Acreate2(grp, "n_saved", H5T_STD_I64LE, sc, H5P_DEFAULT, H5P_DEFAULT);
  if (sc >= 0) H5Sclose(sc);
  if (w->nsaved < 0 || H5Awrite(w->nsaved, H5T_NATIVE_INT64, &zero) < 0)
    return cannot(w, "create /trajectory n_saved", err);
  hsize_t one[CSDE_H5_MAXRANK];
  for (int i = 0; i < w->rank; i++) one[i] = w->dims[i];
  one[0] = 1;
  one[1] = w->part_n ? w->part_n : 1; /* this writer's samples */
  w->mspace = H5Screate_simple(w->rank, one, NULL);
  w->mspace1 = H5Screate_simple(1, one, NULL);
  /* a writer with no samples writes none; t and step are rank 0's */
  if (w->mspace < 0 || w->mspace1 < 0 || (!w->part_n && H5Sselect_none(w->mspace) < 0) ||
      (!ROOT(w) && H5Sselect_none(w->mspace1) < 0))
    return cannot(w, "prepare the memory layout", err);
  return CSDE_SUCCESS;
}

/* The groups, and /trajectory's datasets. */
static int create_layout(csde_h5traj *w, const csde_h5traj_params *p, csde_err *err)
{
  const char *groups[] = {"/trajectory", "/parameters", "/covariance", "/stats"};
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
    hid_t g = H5Gcreate2(w->file, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return cannot(w, "create the groups", err);
    H5Gclose(g);
  }
  hid_t grp = H5Gopen2(w->file, "/trajectory", H5P_DEFAULT);
  if (grp < 0) return cannot(w, "create the groups", err);
  int s = create_x(w, p, grp, err);
  if (!s) s = create_series(w, p, grp, err);
  H5Gclose(grp);
  return s;
}

/* Self-description: the axes, the format, CF's units and long names; and /stats with every
 * attribute it will hold: the end of the run overwrites their values in place, changing no
 * HDF5 structure (a kill in those last writes leaves /stats readable). */
static int describe(csde_h5traj *w, const csde_h5traj_params *p, csde_err *err)
{
  static const char *const axes[] = {"saved, sample, frame, pixel",
                                     "saved, sample, frame, height, width",
                                     "saved, sample, frame, channel, height, width"};
  static const char *const attrs[][3] = {
    {"/trajectory", "n_saved_meaning", "the first n_saved entries of x, t and step are saved "
                                       "states; entries past them (a killed run) are not"},
    {"/", "format", CSDE_H5TRAJ_FORMAT},
    {"/", "format_version", CSDE_H5TRAJ_FORMAT_VERSION},
    {"/", "Conventions", "CF-1.8"},
    {"/trajectory/t", "unit", "model time"},
    {"/trajectory/t", "units", "1"},
    {"/trajectory/t", "long_name", "model time t in [0, 1]"},
    {"/trajectory/x", "units", "1"},
    {"/trajectory/x", "long_name", "saved states"},
    {"/trajectory/step", "long_name", "solver step (0: the start)"}};
  int s = csde_h5traj_attr_str(w, "/trajectory/x", "axes", axes[p->shape_rank - 1], err);
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0] && !s; i++)
    s = csde_h5traj_attr_str(w, attrs[i][0], attrs[i][1], attrs[i][2], err);
  static const char *const counts[] = {"nfe", "steps", "accepted", "rejected", "n_saved"};
  const int64_t z64 = 0;
  const double nan1 = NAN;
  for (size_t i = 0; i < sizeof counts / sizeof counts[0] && !s; i++)
    s = csde_h5traj_attr_i64(w, "/stats", counts[i], &z64, 1, err);
  if (!s) s = csde_h5traj_attr_f64(w, "/stats", "wall_seconds", &nan1, 1, err);
  if (!s) s = csde_h5traj_attr_str(w, "/stats", "status", "running", err);
  return s ? s : csde_h5traj_flush(w, err);
}

static int h5traj_create(csde_h5traj **out, const char *path, const csde_h5traj_params *p,
                         csde_err *err)
{
  csde_h5traj *w;
  int s = traj_new(&w, path, p, err);
  if (s) return s;
  if (!(s = open_file(w, path, p, err)) && !(s = create_layout(w, p, err)))
    s = describe(w, p, err);
  if ((s = csde_h5group_agree(&w->g, s, err))) {
    csde_h5traj_discard(w); /* a half-made file is worth nothing */
    return s;
  }
  *out = w;
  return CSDE_SUCCESS;
}

/* Write an attribute of file type ftype from memory type mtype (n values; a group
 * writes rank 0's, since HDF5 takes metadata from one writer). */
static int put_attr(csde_h5traj *w, const char *obj, const char *name, hid_t ftype,
                    hid_t mtype, const void *buf, size_t n, int list, csde_err *err)
{
  if (!csde_h5group_parallel(&w->g))
    return csde_h5_put_attr(w->file, w->cur, obj, name, ftype, mtype, buf, n, list, err);
  size_t bytes = n * H5Tget_size(mtype);
  void *mine = malloc(bytes ? bytes : 1);
  int s = mine ? CSDE_SUCCESS : csde_err_set(err, CSDE_ENOMEM, "out of memory");
  if (!s) {
    memcpy(mine, buf, bytes);
    if (csde_h5group_bcast(&w->g, mine, bytes))
      s = csde_err_set(err, CSDE_EIO, "'%s': MPI_Bcast of attribute %s failed", w->cur, name);
  }
  if (!s) s = csde_h5_put_attr(w->file, w->cur, obj, name, ftype, mtype, mine, n, list, err);
  free(mine);
  return s;
}

int csde_h5traj_attr_str(csde_h5traj *w, const char *obj, const char *name, const char *v,
                         csde_err *err)
{
  hid_t st = csde_h5_str_type();
  if (st < 0) return csde_err_set(err, CSDE_EIO, "'%s': cannot make a string type", w->path);
  const char *val = v ? v : "";
  char *mine = NULL;
  if (csde_h5group_parallel(&w->g)) { /* rank 0's string: its length, then its bytes */
    size_t len = strlen(val) + 1;
    csde_h5group_bcast(&w->g, &len, sizeof len);
    if ((mine = malloc(len))) {
      if (ROOT(w)) memcpy(mine, val, len);
      csde_h5group_bcast(&w->g, mine, len);
      mine[len - 1] = '\0';
      val = mine;
    }
  }
  int s = !csde_h5group_parallel(&w->g) || mine
              ? csde_h5_put_attr(w->file, w->cur, obj, name, st, st, &val, 1, 0, err)
              : csde_err_set(err, CSDE_ENOMEM, "out of memory");
  free(mine);
  H5Tclose(st);
  return s;
}

int csde_h5traj_attr_f64(csde_h5traj *w, const char *obj, const char *name, const double *v,
                         size_t n, csde_err *err)
{
  return put_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, n, 0, err);
}

int csde_h5traj_attr_f64_list(csde_h5traj *w, const char *obj, const char *name,
                              const double *v, size_t n, csde_err *err)
{
  return put_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, n, 1, err);
}

int csde_h5traj_attr_i64_list(csde_h5traj *w, const char *obj, const char *name,
                              const int64_t *v, size_t n, csde_err *err)
{
  return put_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, n, 1, err);
}

int csde_h5traj_attr_i64(csde_h5traj *w, const char *obj, const char *name,
                         const int64_t *v, size_t n, csde_err *err)
{
  return put_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, n, 0, err);
}

int csde_h5traj_attr_u64(csde_h5traj *w, const char *obj, const char *name,
                         const uint64_t *v, size_t n, csde_err *err)
{
  return put_attr(w, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, v, n, 0, err);
}

int csde_h5traj_write_array(csde_h5traj *w, const char *name, const double *v, int rank,
                            const size_t *dims, csde_err *err)
{
  hsize_t hd[CSDE_H5_MAXRANK];
  if (rank < 1 || rank > CSDE_H5_MAXRANK)
    return csde_err_set(err, CSDE_EINVAL, "'%s': rank %d for %s", w->path, rank, name);
  for (int i = 0; i < rank; i++) hd[i] = dims[i];
  int s = CSDE_SUCCESS;
  hid_t sp = H5Screate_simple(rank, hd, NULL), d = -1;
  if (sp >= 0) d = H5Dcreate2(w->file, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
  if (d < 0 || write_whole(w, d, H5T_NATIVE_DOUBLE, v))
    s = csde_err_set(err, CSDE_EIO, "'%s': cannot write %s", w->path, name);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  return s;
}

int csde_h5traj_flush(csde_h5traj *w, csde_err *err)
{
  if (w->broken)
    return csde_err_set(err, CSDE_EIO, "'%s': an earlier write failed", w->cur);
  if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
    return csde_err_set(err, CSDE_EIO, "'%s': cannot flush the file (disk full?)", w->cur);
  return CSDE_SUCCESS;
}

/* Set the extent of the 1-D or state dataset d to n entries. */
static int set_len(hid_t d, int rank, const hsize_t *dims, hsize_t n)
{
  hsize_t nd[CSDE_H5_MAXRANK];
  for (int i = 0; i < rank; i++) nd[i] = dims[i];
  nd[0] = n;
  return H5Dset_extent(d, nd) < 0 ? -1 : 0;
}

/* Select in *fs entry n - 1 of the 1-D or state dataset d: of a state, samples
 * [first, first + count) only; count 0 selects nothing (a writer of a group that
 * writes no part of it). */
static int select_entry(hid_t d, int rank, const hsize_t *dims, hsize_t n, hsize_t first,
                        hsize_t count1, hid_t *fs)
{
  hsize_t start[CSDE_H5_MAXRANK], count[CSDE_H5_MAXRANK];
  for (int i = 0; i < rank; i++) {
    start[i] = 0;
    count[i] = dims[i];
  }
  start[0] = n - 1;
  count[0] = 1;
  if (rank > 1) {
    start[1] = first;
    count[1] = count1;
  }
  *fs = H5Dget_space(d);
  if (*fs < 0) return -1;
  if (count1 == 0) return H5Sselect_none(*fs) < 0 ? -1 : 0;
  return H5Sselect_hyperslab(*fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ? -1 : 0;
}

/* Entry n - 1 of dataset d (samples [first, first + count) of a state) := buf (memory
 * space ms, type mt), through transfer properties dxpl. */
static int put_entry(hid_t d, int rank, const hsize_t *dims, hsize_t n, hsize_t first,
                     hsize_t count, hid_t mt, hid_t ms, hid_t dxpl, const void *buf)
{
  hid_t fs = -1;
  int bad = select_entry(d, rank, dims, n, first, count, &fs) ||
            H5Dwrite(d, mt, ms, fs, dxpl, buf) < 0;
  if (fs >= 0) H5Sclose(fs);
  return bad;
}

/* After a failed append: free the reserve and flush again, so that the file stays
 * readable and can record the failure (n_saved still counts the states before). If
 * the flush fails even so, the file takes no more writes. */
static void undo_append(csde_h5traj *w)
{
  reserve_release(w);
  w->failed = 1;
  if (H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0) w->broken = 1;
}

/* Why a write found no room, for a message: "" when errno e says nothing of it. */
static const char *no_room(int e)
{
  return e == ENOSPC   ? ": disk full"
         : e == EDQUOT ? ": disk quota exceeded"
         : e == EFBIG  ? ": past the file-size limit (ulimit -f)"
                       : "";
}

/* x, t and step := n entries. */
static int set_lens(csde_h5traj *w, hsize_t n)
{
  hsize_t one = 1;
  return set_len(w->x, w->rank, w->dims, n) || set_len(w->t, 1, &one, n) ||
         set_len(w->step, 1, &one, n);
}

/* The first value of x (n doubles) that is not finite, or n. The sum of 0 * x_i is 0,
 * or NaN as soon as one x_i is NaN or Inf: one pass that vectorises. */
static size_t first_nonfinite(const double *x, size_t n)
{
  double z = 0;
  for (size_t i = 0; i < n; i++) z += 0 * x[i];
  if (z == 0) return n;
  size_t i = 0;
  while (i < n && isfinite(x[i])) i++;
  return i;
}

/* float32 files: conv := (float) x, and the first value that is not finite as a float
 * (NaN, Inf, or beyond float32's range), or n. */
static size_t convert_f32(const double *x, float *conv, size_t n)
{
  float z = 0;
  for (size_t i = 0; i < n; i++) {
    conv[i] = (float)x[i];
    z += 0 * conv[i];
  }
  if (z == 0) return n;
  size_t i = 0;
  while (i < n && isfinite(conv[i])) i++;
  return i;
}

/* The checks of an append that write nothing: the disk, and a state that is not finite
 * (this writer's part of it). */
static int append_check(csde_h5traj *w, int64_t step, double t, const double *x,
                        const void **buf, csde_err *err)
{
  hsize_t n = w->count + 1;
  /* A full disk (or the file-size limit) is seen before HDF5 tries, so that the file is
   * left as it was: one state's bytes (at most, compressed or not; a trajectory that
   * doubles, as many states as it has) and a margin for metadata must be free, unless
   * its disk is reserved (uncompressed, of known length). */
  double need = (n > w->cap ? (double)w->cap : 1.0) * state_bytes(w) + ROOM_MARGIN;
  double avail = INFINITY;
  int fsize = 0;
  if ((w->compress || !w->fixed || n > w->cap) && (avail = room_left(w, &fsize)) < need)
    return csde_err_set(err, CSDE_EIO,
                        "'%s': %s: %.4g MB %s, saved state %zu (step %lld) needs %.4g MB",
                        w->cur, fsize ? "the file-size limit (ulimit -f)" : "disk full",
                        avail * 1e-6, fsize ? "left under it" : "free", (size_t)n - 1,
                        (long long)step, need * 1e-6);
  *buf = x;
  size_t bad_i = w->conv ? convert_f32(x, w->conv, w->n_part) : first_nonfinite(x, w->n_part);
  if (w->conv) *buf = w->conv;
  if (bad_i < w->n_part) { /* nothing is written: the file keeps the states before */
    size_t frame = w->tau * w->D, b = bad_i / frame, r = bad_i % frame;
    int range = isfinite(x[bad_i]);
    return csde_err_set(err, range ? CSDE_ERANGE : CSDE_ENAN,
                        "the state at step %lld (t = %.10g) %s %g at index %zu (sample %zu, "
                        "frame %zu, pixel %zu)%s", (long long)step, t,
                        range ? "does not fit in float32:" : "is not finite:", x[bad_i],
                        bad_i + (size_t)w->part_first * frame, b + (size_t)w->part_first,
                        r / w->D, r % w->D, range ? "; store float64 instead" : "");
  }
  return CSDE_SUCCESS;
}

int csde_h5traj_append(csde_h5traj *w, int64_t step, double t, const double *x,
                       csde_err *err)
{
  hsize_t n = w->count + 1, one = 1;
  const void *buf = x;
  int s = w->broken ? csde_err_set(err, CSDE_EIO, "'%s': an earlier write failed", w->cur)
                    : append_check(w, step, t, x, &buf, err);
  /* a group: every writer's checks, before any writes */
  if ((s = csde_h5group_agree(&w->g, s, err))) return s;
  /* A trajectory of unknown length doubles when full (the one change to HDF5's metadata
   * of an append; it is flushed before the state is written). */
  errno = 0;
  if (n > w->cap) {
    if (set_lens(w, 2 * w->cap) || H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0) {
      int e = errno;
      undo_append(w);
      return csde_err_set(err, CSDE_EIO, "'%s': cannot make room for saved state %zu%s",
                          w->cur, (size_t)n - 1, no_room(e));
    }
    w->cap *= 2;
  }
  /* Three flushes, so that a reader never sees a state that is not whole, even after a
   * SIGKILL in the middle of one: the data of x first; then its t and step; then
   * /trajectory n_saved, which tells that entries 0 .. n - 1 are whole. Their space
   * exists already: only the data and n_saved change in the file. (A group writes x
   * collectively, each writer its samples; t and step are rank 0's.) */
  hsize_t t1 = ROOT(w) ? 1 : 0;
  int bad = put_entry(w->x, w->rank, w->dims, n, w->part_first, w->part_n, w->xtype_mem,
                      w->mspace, w->dxpl, buf) ||
            H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0 ||
            put_entry(w->t, 1, &one, n, 0, t1, H5T_NATIVE_DOUBLE, w->mspace1, w->dxpl, &t) ||
            put_entry(w->step, 1, &one, n, 0, t1, H5T_NATIVE_INT64, w->mspace1, w->dxpl,
                      &step) ||
            H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0;
  int64_t nn = (int64_t)n;
  if (!bad)
    bad = H5Awrite(w->nsaved, H5T_NATIVE_INT64, &nn) < 0 ||
          H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0;
  int e = bad ? errno : 0;
  s = bad ? csde_err_set(err, CSDE_EIO, "'%s': cannot write saved state %zu (step %lld)%s%s",
                         w->cur, (size_t)n - 1, (long long)step, no_room(e), "")
          : CSDE_SUCCESS;
  if ((s = csde_h5group_agree(&w->g, s, err))) {
    undo_append(w);
    if (w->broken && err) {
      size_t k = strlen(err->msg);
      snprintf(err->msg + k, sizeof err->msg - k, "; the file could not be closed cleanly");
    }
    return s;
  }
  w->count = n;
  w->last_step = step;
  /* the first state past the start makes the new run viable: it replaces the old file */
  return step > 0 ? commit(w, err) : CSDE_SUCCESS;
}

int csde_h5traj_agree(csde_h5traj *w, int s, csde_err *err)
{
  return csde_h5group_agree(&w->g, s, err);
}
int csde_h5traj_failed_rank(const csde_h5traj *w) { return w->g.failed_rank; }
int csde_h5traj_bcast(csde_h5traj *w, void *buf, size_t n)
{
  return csde_h5group_bcast(&w->g, buf, n);
}

size_t csde_h5traj_count(const csde_h5traj *w) { return w->count; }
int64_t csde_h5traj_last_step(const csde_h5traj *w) { return w->last_step; }
const char *csde_h5traj_path(const csde_h5traj *w) { return w->cur; }
int csde_h5traj_replaces(const csde_h5traj *w) { return w->replaces && !w->committed; }

int csde_h5traj_stats(csde_h5traj *w, const csde_solve_stats *st, const char *status,
                      csde_err *err)
{
  if (w->broken)
    return csde_err_set(err, CSDE_EIO, "'%s': an earlier write failed", w->cur);
  reserve_release(w); /* the last writes may use it */
  /* x, t and step := the saved states (a run that stopped early, or an adaptive one).
   * x is kept as it is after a failed write: HDF5 1.10 cutting it then also drops the
   * state before. */
  int s;
  int cut = w->count < w->cap && !w->failed &&
            !csde_h5group_parallel(&w->g); /* parallel HDF5 1.10: a cut breaks the file */
  if (cut && set_lens(w, w->count))
    return csde_err_set(err, CSDE_EIO, "'%s': cannot cut the trajectory to its %zu saved "
                        "states", w->cur, w->count);
  if (cut) w->cap = w->count;
  int64_t v[4] = {(int64_t)st->nfe, (int64_t)st->steps, (int64_t)st->accepted,
                  (int64_t)st->rejected};
  static const char *const names[4] = {"nfe", "steps", "accepted", "rejected"};
  for (int i = 0; i < 4; i++) /* a group: rank 0's counts (attributes are rank 0's) */
    if ((s = csde_h5traj_attr_i64(w, "/stats", names[i], &v[i], 1, err))) return s;
  double wall = csde_h5group_max(&w->g, st->wall_seconds); /* a group: the slowest */
  if ((s = csde_h5traj_attr_f64(w, "/stats", "wall_seconds", &wall, 1, err))) return s;
  int64_t saved = (int64_t)w->count;
  if ((s = csde_h5traj_attr_i64(w, "/stats", "n_saved", &saved, 1, err))) return s;
  if ((s = csde_h5traj_attr_str(w, "/stats", "status", status, err))) return s;
  if ((s = csde_h5traj_flush(w, err))) return s;
  /* a run that finished replaces the old file even if it saved only its start (a
   * group: if it finished on rank 0, as the file says) */
  int ok = !strcmp(status, "ok");
  csde_h5group_bcast(&w->g, &ok, sizeof ok);
  return ok && w->count ? commit(w, err) : CSDE_SUCCESS;
}

void csde_h5_program_init(void) { H5dont_atexit(); }

/* ---- as a sink of /parameters and /covariance (h5meta.h) ---- */

static int sink_str(void *w, const char *obj, const char *name, const char *v, csde_err *err)
{
  return csde_h5traj_attr_str(w, obj, name, v, err);
}
static int sink_f64(void *w, const char *obj, const char *name, const double *v, size_t n,
                    int list, csde_err *err)
{
  return list ? csde_h5traj_attr_f64_list(w, obj, name, v, n, err)
              : csde_h5traj_attr_f64(w, obj, name, v, n, err);
}
static int sink_i64(void *w, const char *obj, const char *name, const int64_t *v, size_t n,
                    int list, csde_err *err)
{
  return list ? csde_h5traj_attr_i64_list(w, obj, name, v, n, err)
              : csde_h5traj_attr_i64(w, obj, name, v, n, err);
}
static int sink_u64(void *w, const char *obj, const char *name, const uint64_t *v,
                    csde_err *err)
{
  return csde_h5traj_attr_u64(w, obj, name, v, 1, err);
}
static int sink_array(void *w, const char *name, const double *v, int rank,
                      const size_t *dims, csde_err *err)
{
  return csde_h5traj_write_array(w, name, v, rank, dims, err);
}

csde_h5sink csde_h5traj_sink(csde_h5traj *w)
{
  csde_h5sink k = {w, sink_str, sink_f64, sink_i64, sink_u64, sink_array, NULL};
  return k;
}
