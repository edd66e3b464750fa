/* The writers of one HDF5 file (h5group.h): MPI under parallel HDF5, nothing otherwise. */
#include <limits.h>
#include <string.h>

#include "io/h5group.h"

#ifdef H5_HAVE_PARALLEL
#include <mpi.h>
#define COMM(g) (*(const MPI_Comm *)(g)->comm)
#endif

void csde_h5group_single(csde_h5group *g)
{
  g->rank = 0;
  g->size = 1;
  g->comm = NULL;
  g->failed_rank = -1;
}

int csde_h5group_init(csde_h5group *g, const void *comm, csde_err *err)
{
  csde_h5group_single(g);
  if (!comm) return CSDE_SUCCESS;
#ifdef H5_HAVE_PARALLEL
  int on = 0;
  if (MPI_Initialized(&on) != MPI_SUCCESS || !on)
    return csde_err_set(err, CSDE_EINVAL, "a file of several writers needs MPI initialised");
  g->comm = comm;
  if (MPI_Comm_rank(COMM(g), &g->rank) != MPI_SUCCESS ||
      MPI_Comm_size(COMM(g), &g->size) != MPI_SUCCESS) {
    csde_h5group_single(g);
    return csde_err_set(err, CSDE_EIO, "MPI_Comm_rank/size failed");
  }
  return CSDE_SUCCESS;
#else
  return csde_err_set(err, CSDE_EINVAL, "this HDF5 is serial: a file of several writers "
                                        "needs parallel HDF5 (hdf5-openmpi, corrsde-mpi)");
#endif
}

int csde_h5group_parallel(const csde_h5group *g) { return g->comm != NULL; }

int csde_h5group_agree(csde_h5group *g, int s, csde_err *err)
{
  if (!g->comm) return s;
#ifdef H5_HAVE_PARALLEL
  int mine = s ? g->rank : INT_MAX, first = INT_MAX;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, COMM(g)) != MPI_SUCCESS) first = g->rank;
  if (first == INT_MAX) return CSDE_SUCCESS;
  struct {
    int status;
    char msg[CSDE_MSG_MAX];
  } m;
  memset(&m, 0, sizeof m);
  if (g->rank == first) {
    m.status = s;
    if (err) memcpy(m.msg, err->msg, sizeof m.msg);
  }
  MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, COMM(g));
  m.msg[CSDE_MSG_MAX - 1] = '\0';
  g->failed_rank = first;
  if (err) {
    err->status = m.status ? m.status : CSDE_EIO;
    memcpy(err->msg, m.msg, sizeof m.msg);
    err->param = NULL; /* a pointer of another process */
  }
  return m.status ? m.status : CSDE_EIO;
#else
  (void)err;
  return s;
#endif
}

int csde_h5group_bcast(const csde_h5group *g, void *buf, size_t n)
{
  if (!g->comm) return 0;
#ifdef H5_HAVE_PARALLEL
  char *p = buf;
  while (n > 0) {
    const int k = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (MPI_Bcast(p, k, MPI_BYTE, 0, COMM(g)) != MPI_SUCCESS) return -1;
    p += k;
    n -= (size_t)k;
  }
#else
  (void)buf;
  (void)n;
#endif
  return 0;
}

double csde_h5group_max(const csde_h5group *g, double v)
{
#ifdef H5_HAVE_PARALLEL
  double m = v;
  if (g->comm && MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, COMM(g)) == MPI_SUCCESS) return m;
#else
  (void)g;
#endif
  return v;
}

#ifdef H5_HAVE_PARALLEL
/* metadata read by rank 0 and broadcast, and written collectively: every rank's cache then
 * sees the same file (after a dataset shrinks, independent reads on the other ranks can
 * find object headers that moved) */
static herr_t set_fapl_mpio(hid_t p, const csde_h5group *g)
{
  return H5Pset_fapl_mpio(p, COMM(g), MPI_INFO_NULL) < 0 ||
                 H5Pset_all_coll_metadata_ops(p, 1) < 0 || H5Pset_coll_metadata_write(p, 1) < 0
             ? -1
             : 0;
}

static herr_t set_dxpl_mpio(hid_t p, const csde_h5group *g)
{
  (void)g;
  return H5Pset_dxpl_mpio(p, H5FD_MPIO_COLLECTIVE);
}
#endif

/* A property list of class cls, set by set_mpio, for a group over MPI (-1 on failure);
 * H5P_DEFAULT for one writer. */
#ifdef H5_HAVE_PARALLEL
#define GROUP_PLIST(g, cls, set_mpio) group_plist(g, cls, set_mpio)
static hid_t group_plist(const csde_h5group *g, hid_t cls,
                         herr_t (*set_mpio)(hid_t, const csde_h5group *))
{
  if (!g->comm) return H5P_DEFAULT;
  hid_t p = H5Pcreate(cls);
  if (p >= 0 && set_mpio(p, g) < 0) {
    H5Pclose(p);
    return -1;
  }
  return p;
}
#else
#define GROUP_PLIST(g, cls, set_mpio) ((void)(g), H5P_DEFAULT)
#endif

hid_t csde_h5group_fapl(const csde_h5group *g)
{
  return GROUP_PLIST(g, H5P_FILE_ACCESS, set_fapl_mpio);
}

hid_t csde_h5group_dxpl(const csde_h5group *g)
{
  return GROUP_PLIST(g, H5P_DATASET_XFER, set_dxpl_mpio);
}

void csde_h5group_close_plist(hid_t p)
{
  if (p >= 0 && p != H5P_DEFAULT) H5Pclose(p);
}
