/* Internal: the symmetric eigensolver shared by the modules.
 * LAPACK's dsyevd (divide and conquer, from OpenBLAS) when the build found it, else GSL's
 * gsl_eigen_symmv: at tau = 1024 dsyevd is some 50x faster. */
#ifndef CSDE_CORE_LINALG_H
#define CSDE_CORE_LINALG_H

#include <stddef.h>
#include "corrsde/status.h"

/* Eigenvalues of the symmetric n x n row-major A in ascending order into eval; if evec is
 * not NULL, the eigenvectors as its columns (row-major: evec[i*n + j] is component i of
 * eigenvector j). A is not modified. Allocates (setup only, never in a loop). */
int csde_symeig(const double *A, size_t n, double *eval, double *evec, csde_err *err);

/* The implementation in use: "lapack-dsyevd" or "gsl-symmv". */
const char *csde_symeig_name(void);

/* GSL's error handler off around a GSL call whose failure is a status (a singular
 * system, a failed eigensolve), and the caller's handler back after: a process global,
 * so the calls of every thread share one count under a lock; the first begin saves the
 * caller's handler and turns it off, the last end puts it back. Nests. Between them
 * the library's GSL calls of any thread never reach the caller's handler (which may
 * abort), and once no call is in flight the handler is as the caller set it. */
void csde_gsl_quiet_begin(void);
void csde_gsl_quiet_end(void);

#endif
