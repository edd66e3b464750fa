/* corrsde-mpi: the corrsde program under MPI (Open MPI; meson -Dmpi). `corrsde-mpi
 * converge ...` splits the paths over the processes (csde_conv_dist: item it runs on rank
 * it % size, then every item's per-path values are broadcast from its rank in item order):
 * the table, the files and the plot are bitwise those of `corrsde converge` with the same
 * arguments, for any number of ranks. `corrsde-mpi sample ...` splits the batch in
 * contiguous shares, and every rank writes its samples of each saved state into the one
 * file through parallel HDF5 (run/traj_part.h): the datasets are those of `corrsde
 * sample`, for any number of ranks. Rank 0 prints (and writes converge's files); every
 * rank checks the arguments and builds its objects, and they agree (an MPI_Allreduce)
 * before the run, so a rank that fails there stops all of them with its message and none
 * hangs. OpenMP threads
 * inside each rank (--threads) need MPI_THREAD_FUNNELED only: MPI is called from the
 * main thread. On more than one rank only converge, sample (and help) run: the other commands
 * would run once per rank.
 *
 * Every rank must run the same job, or the collective calls of the run (the file's, the
 * exchange's) no longer match and mpirun hangs, or a file mixes two runs' samples under
 * rank 0's /parameters. Two gates check it, each a few collective calls that end every
 * rank within milliseconds with one message from rank 0:
 *   1. the arguments (args_agree), before any command runs and before any help is
 *      printed: rank 0 broadcasts its argv (argv[0] aside: the path to the program may
 *      differ) with the program's version, and each rank compares it with its own, word
 *      by word. The same arguments in another order are refused too: the rule is simple
 *      to state and to check, and the mpirun line that gives them is a mistake anyway.
 *      Exit 2 on every rank.
 *   2. the resolved settings (agree_settings, cli_agree in cli.h), after every rank has
 *      built its run and before any collective I/O: what equal arguments leave open (the
 *      current directory, the files named, the environment, the CPU) as named fields,
 *      compared with rank 0's. Exit 1 on every rank.
 * In both, the lowest rank that differs describes its first difference, which is
 * broadcast to every rank (an MPI_Allreduce of that rank, then an MPI_Bcast from it);
 * rank 0 prints it.
 *
 * Ranks wait for each other at every step (csde_traj_agree) and at every exchange. Open
 * MPI's default wait is a busy poll, which on shared or oversubscribed cores takes the
 * core from the very rank being waited for: corrsde-mpi sets mpi_yield_when_idle unless
 * the environment or mpirun's --mca already does (docs/MPI.md has the figures). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "corrsde/converge.h"
#include "corrsde/model.h"
#include "corrsde/run.h"

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

/* ---- the agreement: a list of strings, compared with rank 0's ---- */

/* n strings one after another, each ending in '\0'; at[i] is the i-th (list_index). */
typedef struct {
  char *buf;
  size_t len, cap, n;
  const char **at;
} strlist;

static void oom(void)
{ /* a few hundred bytes: nothing sensible is left to do, and the others wait in a call */
  fprintf(stderr, "corrsde-mpi: rank %d: out of memory comparing the ranks' settings\n",
          cli_rank);
  MPI_Abort(MPI_COMM_WORLD, CLI_EFAIL);
}

static void list_add(strlist *l, const char *s)
{
  size_t k = strlen(s) + 1;
  if (l->len + k > l->cap) {
    size_t cap = 2 * (l->len + k) + 256;
    char *b = realloc(l->buf, cap);
    if (!b) oom();
    l->buf = b;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, s, k);
  l->len += k;
  l->n++;
}

static void list_addf(strlist *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void list_addf(strlist *l, const char *fmt, ...)
{
  char s[PATH_MAX + 256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s, sizeof s, fmt, ap);
  va_end(ap);
  list_add(l, s);
}

static void list_index(strlist *l)
{
  l->n = 0;
  for (size_t o = 0; o < l->len; o += strlen(l->buf + o) + 1) l->n++;
  l->at = malloc((l->n + 1) * sizeof *l->at);
  if (!l->at) oom();
  size_t i = 0;
  for (size_t o = 0; o < l->len; o += strlen(l->buf + o) + 1) l->at[i++] = l->buf + o;
}

static void list_free(strlist *l)
{
  free(l->buf);
  free(l->at);
  memset(l, 0, sizeof *l);
}

/* '...' for a message: control characters as '?', at most 100 characters. */
static const char *quoted(const char *s, char *buf, size_t len)
{
  size_t o = 0;
  buf[o++] = '\'';
  for (; *s && o + 5 < len && o < 101; s++) buf[o++] = (unsigned char)*s < 32 ? '?' : *s;
  if (*s) o += (size_t)snprintf(buf + o, len - o, "...");
  snprintf(buf + o, len - o, "'");
  return buf;
}

#define AGREE_MSG 1024

/* Describe the first difference, at index i of mine and root (one of them may end
 * before i), into msg. */
typedef void describe_fn(const strlist *mine, const strlist *root, size_t i, char *msg,
                         size_t len);

/* Every rank compares its list with rank 0's; the lowest rank whose list differs
 * describes its first difference, and every rank receives it in msg. Returns that rank,
 * or -1 when every list is rank 0's. A collective call. */
static int agree(strlist *mine, describe_fn *describe, char *msg)
{
  strlist root;
  memset(&root, 0, sizeof root);
  uint64_t len = mine->len;
  MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  root.len = root.cap = (size_t)len;
  root.buf = malloc(root.len + 1);
  if (!root.buf) oom();
  if (cli_rank == 0) memcpy(root.buf, mine->buf, root.len);
  bcast(NULL, root.buf, root.len, 0);
  list_index(mine);
  list_index(&root);

  size_t i = 0;
  while (i < mine->n && i < root.n && !strcmp(mine->at[i], root.at[i])) i++;
  int differs = i < mine->n || i < root.n;
  int me = differs ? cli_rank : INT_MAX, first = INT_MAX;
  MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  msg[0] = '\0';
  if (first != INT_MAX) {
    if (first == cli_rank) describe(mine, &root, i, msg, AGREE_MSG);
    MPI_Bcast(msg, AGREE_MSG, MPI_CHAR, first, MPI_COMM_WORLD);
    msg[AGREE_MSG - 1] = '\0';
  }
  list_free(&root);
  return first == INT_MAX ? -1 : first;
}

/* ---- gate 1: the arguments ---- */

static int is_option(const char *w) { return w[0] == '-' && w[1] != '\0'; }

/* Word 0 is the program ("corrsde 0.1.0, parallel HDF5"); word k >= 1 is argv[k]. */
static void describe_args(const strlist *mine, const strlist *root, size_t i, char *msg,
                          size_t len)
{
  char qa[128], qz[128];
  const char *a = i < mine->n ? mine->at[i] : NULL, *z = i < root->n ? root->at[i] : NULL;
  if (a) quoted(a, qa, sizeof qa);
  if (z) quoted(z, qz, sizeof qz);
  const char *eq_a = a ? strchr(a, '=') : NULL, *eq_z = z ? strchr(z, '=') : NULL;
  if (i == 0) {
    snprintf(msg, len, "it is %s, rank 0 is %s", a, z);
  } else if (!z) {
    snprintf(msg, len, "argument %zu is %s, rank 0 has only %zu", i, qa, root->n - 1);
  } else if (!a) {
    snprintf(msg, len, "it has only %zu argument%s, rank 0's argument %zu is %s", mine->n - 1,
             mine->n == 2 ? "" : "s", i, qz);
  } else if (i == 1) {
    snprintf(msg, len, "the command is %s, rank 0 has %s", qa, qz);
  } else if (!strncmp(a, "--", 2) && eq_a && eq_z && eq_a - a == eq_z - z &&
             !strncmp(a, z, (size_t)(eq_a - a))) { /* --steps=30, --steps=20 */
    snprintf(msg, len, "argument %zu, the value of %.*s, is %s, rank 0 has %s", i,
             (int)(eq_a - a), a, quoted(eq_a + 1, qa, sizeof qa),
             quoted(eq_z + 1, qz, sizeof qz));
  } else if (is_option(mine->at[i - 1]) && !strchr(mine->at[i - 1], '=') &&
             !(is_option(a) && is_option(z))) { /* --steps 30, --steps 20 */
    snprintf(msg, len, "argument %zu, the value of %s, is %s, rank 0 has %s", i,
             mine->at[i - 1], qa, qz);
  } else {
    snprintf(msg, len, "argument %zu is %s, rank 0 has %s", i, qa, qz);
  }
}

/* Before anything runs: every rank's arguments are rank 0's, or every rank is told. */
static int args_agree(int argc, char **argv)
{
  strlist l;
  memset(&l, 0, sizeof l);
  list_addf(&l, "corrsde %s with %s HDF5", csde_version(),
            CSDE_CLI_PARALLEL_HDF5 ? "parallel" : "serial");
  for (int k = 1; k < argc; k++) list_add(&l, argv[k]);
  char msg[AGREE_MSG];
  int first = agree(&l, describe_args, msg);
  list_free(&l);
  if (first >= 0 && cli_rank == 0)
    fprintf(stderr, "corrsde-mpi: rank %d's arguments differ from rank 0's: %s (every rank "
                    "needs the same arguments, in the same order)\n", first, msg);
  return first < 0 ? CLI_OK : CLI_EUSAGE;
}

/* ---- gate 2: the resolved settings (cli_agree) ---- */

/* A field is two strings: its name (what the user would change) and its value. */
static void field(strlist *l, const char *name, const char *value)
{
  list_add(l, name);
  list_add(l, value ? value : "(none)");
}

static void describe_setting(const strlist *mine, const strlist *root, size_t i, char *msg,
                             size_t len)
{
  char qa[128], qz[128];
  size_t f = i & ~(size_t)1; /* the field's name */
  const char *na = f < mine->n ? mine->at[f] : NULL, *nz = f < root->n ? root->at[f] : NULL;
  const char *va = f + 1 < mine->n ? mine->at[f + 1] : "";
  const char *vz = f + 1 < root->n ? root->at[f + 1] : "";
  if (!nz)
    snprintf(msg, len, "it has %s %s, which rank 0 has not", na, quoted(va, qa, sizeof qa));
  else if (!na)
    snprintf(msg, len, "it has no %s, rank 0 has %s", nz, quoted(vz, qz, sizeof qz));
  else if (strcmp(na, nz))
    snprintf(msg, len, "it has %s %s where rank 0 has %s %s", na, quoted(va, qa, sizeof qa),
             nz, quoted(vz, qz, sizeof qz));
  else
    snprintf(msg, len, "%s is %s, rank 0 has %s", na, quoted(va, qa, sizeof qa),
             quoted(vz, qz, sizeof qz));
}

/* The absolute path of a file that may not exist yet: its directory resolved. */
static void absolute(const char *path, char *buf, size_t len)
{
  char dir[PATH_MAX], real[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, sizeof dir, ".");
  } else {
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
  }
  if (realpath(dir, real))
    snprintf(buf, len, "%s%s%s", real, strcmp(real, "/") ? "/" : "", slash ? slash + 1 : path);
  else
    snprintf(buf, len, "%s (unresolved: %s)", path, strerror(errno));
}

/* "N bytes, FNV-1a 64 H" of a file's content. FNV-1a is no cryptographic hash, and needs
 * not be: it tells two versions of a file apart, which is all that is asked here. */
static void content(const char *path, char *buf, size_t len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(buf, len, "unreadable: %s", strerror(errno));
    return;
  }
  static unsigned char chunk[1 << 16];
  uint64_t h = 0xcbf29ce484222325u, n = 0; /* h = (h ^ byte) * p, p = 2^40 + 2^8 + 0xb3 */
  ssize_t k;
  while ((k = read(fd, chunk, sizeof chunk)) > 0 || (k < 0 && errno == EINTR))
    for (ssize_t j = 0; j < k; j++) h = (h ^ chunk[j]) * 0x100000001b3u;
  if (k < 0)
    snprintf(buf, len, "unreadable: %s", strerror(errno));
  else {
    off_t size = lseek(fd, 0, SEEK_CUR);
    n = size > 0 ? (uint64_t)size : 0;
    snprintf(buf, len, "%" PRIu64 " bytes, FNV-1a %016" PRIx64, n, h);
  }
  close(fd);
}

/* Every part of a spec that names a regular file here (FILE.h5:/x, gaussian:file=P.h5,
 * plugin:LIB.so:..., toeplitz:file=col.txt: the parts between ':' and ',', after any
 * '='), as a field "--flag file 'P'" with its content. */
static void spec_files(strlist *l, const char *flag, const char *spec)
{
  if (!spec) return;
  char *copy = strdup(spec), *save = NULL;
  if (!copy) oom();
  for (char *tok = strtok_r(copy, ":,", &save); tok; tok = strtok_r(NULL, ":,", &save)) {
    const char *eq = strchr(tok, '='), *name = eq ? eq + 1 : tok;
    struct stat st;
    char q[128], value[128];
    if (!*name || stat(name, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    content(name, value, sizeof value);
    list_addf(l, "the content of %s file %s", flag, quoted(name, q, sizeof q));
    list_add(l, value);
  }
  free(copy);
}

static void run_fields(strlist *l, const cli_settings *s)
{
  const csde_run_settings *rs = csde_run_settings_of(s->run);
  const csde_problem *P = csde_run_problem(s->run);
  double t0, t1;
  csde_run_span(s->run, &t0, &t1);
  field(l, "--init (the dataset read)", rs->init);
  list_add(l, "--batch");
  list_addf(l, "%zu", s->batch);
  list_add(l, "--frames");
  list_addf(l, "%zu", P->tau);
  list_add(l, "--frame-shape (values per frame)");
  list_addf(l, "%zu", P->D);
  field(l, "--process", rs->process);
  field(l, "--solver", rs->solver);
  list_add(l, "--steps");
  list_addf(l, "%zu", csde_run_nsteps(s->run));
  field(l, "--grid", rs->grid);
  list_add(l, "--t-start");
  list_addf(l, "%.17g", t0);
  list_add(l, "--t-end");
  list_addf(l, "%.17g", t1);
  list_add(l, "--seed");
  list_addf(l, "%" PRIu64, rs->seed);
  field(l, "--noise", rs->noise);
  field(l, "--save", rs->save);
  list_add(l, "--max-nfe");
  list_addf(l, "%zu", rs->max_nfe);
  field(l, "--model (resolved)", rs->model_spec);
  field(l, "--cov-method", rs->cov_method);
}

static void conv_fields(strlist *l, const csde_conv_params *p)
{
  field(l, "--process", csde_process_name(p->P.process));
  list_add(l, "--frames");
  list_addf(l, "%zu", p->P.tau);
  list_add(l, "--frame-shape (values per frame)");
  list_addf(l, "%zu", p->P.D);
  list_add(l, "--t-end (the span)");
  list_addf(l, "%.17g to %.17g", p->P.T, p->P.eps);
  field(l, "--model (resolved)", p->P.model ? csde_model_name(p->P.model) : NULL);
  char solvers[1024] = "";
  for (size_t i = 0, o = 0; i < p->nsolvers && o < sizeof solvers; i++)
    o += (size_t)snprintf(solvers + o, sizeof solvers - o, "%s%s", i ? "," : "", p->solvers[i]);
  field(l, "--solvers", solvers);
  field(l, "--error", csde_conv_kind_name(p->kind));
  list_add(l, "--levels");
  list_addf(l, "%u:%u", p->k0, p->k1);
  list_add(l, "--paths");
  list_addf(l, "%zu", p->paths);
  list_add(l, "--reference");
  list_addf(l, "%d (level %u)", (int)p->ref, p->ref_level);
  list_add(l, "--seed");
  list_addf(l, "%" PRIu64, p->seed);
  field(l, "--grid", p->grid ? p->grid : "uniform");
  list_add(l, "--bootstrap");
  list_addf(l, "%zu (seed %" PRIu64 ", confidence %.17g)", p->boot, p->boot_seed, p->conf);
}

static int agree_settings(const char *cmd, const cli_settings *s)
{
  strlist l;
  memset(&l, 0, sizeof l);
  char buf[PATH_MAX + 64];
  field(&l, "the command", cmd);
  if (s->output) { /* a relative -o names another file in another directory */
    absolute(s->output, buf, sizeof buf);
    field(&l, "-o (its absolute path)", buf);
  }
  spec_files(&l, "--init", s->init);
  spec_files(&l, "--model", s->model);
  spec_files(&l, "--cov", s->cov);
  /* the tau x tau products: the fma chain of src/core/smallmm.c (every kernel of it the
   * same bits) or BLAS (other bits); CSDE_SMALLMM_KERNEL and the CPU choose */
  size_t tau = s->run ? csde_run_problem(s->run)->tau : s->conv ? s->conv->P.tau : 0;
  field(&l, "the frame products (CSDE_SMALLMM_KERNEL, the CPU)",
        csde_smallmm_use(tau) ? "the fma chain" : "BLAS");
  if (s->run) run_fields(&l, s);
  if (s->conv) conv_fields(&l, s->conv);
  char msg[AGREE_MSG];
  int first = agree(&l, describe_setting, msg);
  list_free(&l);
  if (first >= 0) cli_error(cmd, "rank %d's settings differ from rank 0's: %s", first, msg);
  return first < 0 ? CLI_OK : CLI_EFAIL;
}

int main(int argc, char **argv)
{
  int provided = 0, rank = 0, size = 1;
  /* wait by yielding the core (see above); "--mca mpi_yield_when_idle 0" restores the
   * busy poll. Other MPIs ignore the variable. */
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
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
  cli_agree = agree_settings;
#if CSDE_CLI_PARALLEL_HDF5
  world = MPI_COMM_WORLD;
  cli_mpi_comm = &world;
#endif
  int rc = args_agree(argc, argv);
  if (rc) {
    synced = 1; /* every rank knows, and rank 0 has told */
  } else if (provided < MPI_THREAD_FUNNELED) {
    cli_error(NULL, "MPI gives thread level %d, below MPI_THREAD_FUNNELED", provided);
    rc = CLI_EFAIL;
  } else if (size > 1 && argc >= 2 && argv[1][0] != '-' && strcmp(argv[1], "converge") &&
             strcmp(argv[1], "sample") && strcmp(argv[1], "likelihood") &&
             strcmp(argv[1], "help")) {
    /* the others would run once per rank, writing the same files */
    cli_error(NULL, "corrsde-mpi on %d ranks runs converge, sample and likelihood (got '%s'; run "
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
