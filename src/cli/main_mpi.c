/* corrsde-mpi: the corrsde program under MPI (Open MPI; meson -Dmpi). `corrsde-mpi
 * converge ...` splits the paths over the processes (csde_conv_dist: item it runs on rank
 * it % size, then every item's per-path values are broadcast from its rank in item order):
 * the table, the files and the plot are bitwise those of `corrsde converge` with the same
 * arguments, for any number of ranks. `corrsde-mpi sample ...` splits the batch in
 * contiguous shares, and every rank writes its samples of each saved state into the one
 * file through parallel HDF5 (run/traj_part.h): the datasets are those of `corrsde
 * sample`, for any number of ranks. Rank 0 prints (and writes converge's files); every rank checks the
 * arguments and builds its objects, and they agree (an MPI_Allreduce) before the run, so a
 * rank that fails there stops all of them with its message and none hangs. OpenMP threads
 * inside each rank (--threads) need MPI_THREAD_FUNNELED only: MPI is called from the
 * main thread. On more than one rank only converge, sample (and help) run: the other commands
 * would run once per rank. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "corrsde/converge.h"

static int synced;
static MPI_Comm world; /* cli_mpi_comm */

/* MPI_Bcast in pieces of at most INT_MAX bytes. */
static int bcast(void *user, void *buf, size_t n, int root)
{
  (void)user;
  char *p = buf;
  while (n > 0) {
    const int k = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (MPI_Bcast(p, k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* The lowest rank whose rc is non-zero, or -1 (cli.h). */
static int sync_ranks(int rc)
{
  int mine = rc ? cli_rank : INT_MAX, first = INT_MAX;
  synced = 1;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
    return cli_rank;
  return first == INT_MAX ? -1 : first;
}

int main(int argc, char **argv)
{
  int provided = 0, rank = 0, size = 1;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "corrsde-mpi: MPI_Init_thread failed\n");
    return CLI_EFAIL;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  static csde_conv_dist dist;
  dist.rank = rank;
  dist.size = size;
  dist.bcast = bcast;
  cli_conv_dist = &dist;
  cli_rank = rank;
  cli_size = size;
  cli_sync = sync_ranks;
#if CSDE_CLI_PARALLEL_HDF5
  world = MPI_COMM_WORLD;
  cli_mpi_comm = &world;
#endif
  int rc;
  if (provided < MPI_THREAD_FUNNELED) {
    cli_error(NULL, "MPI gives thread level %d, below MPI_THREAD_FUNNELED", provided);
    rc = CLI_EFAIL;
  } else if (size > 1 && argc >= 2 && argv[1][0] != '-' && strcmp(argv[1], "converge") &&
             strcmp(argv[1], "sample") && strcmp(argv[1], "help")) {
    /* the others would run once per rank, writing the same files */
    cli_error(NULL, "corrsde-mpi on %d ranks runs converge and sample (got '%s'; run "
                    "corrsde %s, or corrsde-mpi on 1 rank)", size, argv[1], argv[1]);
    rc = CLI_EUSAGE;
  } else {
    rc = cli_main(argc, argv);
  }
  if (!synced) { /* it stopped before the agreement: agree now, and tell if first */
    int first = sync_ranks(rc);
    if (first == rank && rank != 0) fputs(cli_held_messages(), stderr);
  } /* after it, failures are shared: rank 0 has told them */
  MPI_Finalize();
  return rc;
}
