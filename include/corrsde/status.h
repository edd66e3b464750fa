/* corrsde/status.h: status codes and the error record.
 *
 * Every fallible call returns an int: 0 (CSDE_SUCCESS) or one of the codes below.
 * Codes that mean the same as GSL's reuse GSL's number; corrsde's own start at 1025.
 * A call that can fail with a detailed reason takes a `csde_err *err` as its last
 * argument (NULL is allowed): on failure it receives the code and a one-line message
 * such as "covariance not PSD: eigenvalue -0.031 (tolerance 3.6e-15)". There is no
 * global error state and the library never aborts or exits.
 */
#ifndef CORRSDE_STATUS_H
#define CORRSDE_STATUS_H

#include <stddef.h>

#include "corrsde/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, number, message): one list generates the enum and the message table. */
#define CSDE_STATUS_LIST(X)                                                        \
  X(CSDE_SUCCESS,   0,    "success")                                               \
  X(CSDE_EDOM,      1,    "input domain error")                                    \
  X(CSDE_ERANGE,    2,    "output range error")                                    \
  X(CSDE_EINVAL,    4,    "invalid argument")                                      \
  X(CSDE_EFAILED,   5,    "generic failure")                                       \
  X(CSDE_ENOMEM,    8,    "out of memory")                                         \
  X(CSDE_EBADFUNC,  9,    "user function returned an invalid value")               \
  X(CSDE_EMAXITER,  11,   "maximum number of iterations exceeded")                 \
  X(CSDE_EBADLEN,   19,   "sizes do not match")                                    \
  X(CSDE_ENOTSQR,   20,   "matrix is not square")                                  \
  X(CSDE_ESING,     21,   "matrix is singular")                                    \
  X(CSDE_ENOTPSD,   1025, "matrix is not positive semi-definite")                  \
  X(CSDE_ENOTSYM,   1026, "matrix is not symmetric")                               \
  X(CSDE_ESPEC,     1027, "malformed specification string")                        \
  X(CSDE_EIO,       1028, "file cannot be read or written")                        \
  X(CSDE_ENOTSUP,   1029, "operation not supported by this method")                \
  X(CSDE_ENAN,      1030, "NaN or Inf encountered")                                 \
  X(CSDE_ERETRY,    1031, "model asked for a smaller step")                          \
  X(CSDE_EUNSTABLE, 1032, "the state grew far beyond the process's scale (unstable steps)")

enum {
#define CSDE_X_ENUM(name, num, msg) name = num,
  CSDE_STATUS_LIST(CSDE_X_ENUM)
#undef CSDE_X_ENUM
  CSDE_STATUS_END_
};

#define CSDE_MSG_MAX 512

/* The error record a caller owns. `status` is the code; `msg` the detailed reason;
 * `param` the setting at fault, so that a front end can name its own option without
 * reading the message: one of CSDE_PARAM_*, or NULL when no single setting is. */
typedef struct {
  int status;
  char msg[CSDE_MSG_MAX];
  const char *param;
} csde_err;

#define CSDE_PARAM_SOLVER "solver"         /* the solver's name or its mode */
#define CSDE_PARAM_STEPS "steps"           /* the number of fixed steps */
#define CSDE_PARAM_GRID "grid"             /* the grid spec */
#define CSDE_PARAM_TOLERANCES "tolerances" /* rtol, atol */
#define CSDE_PARAM_NOISE "noise"           /* the noise kind and its path level */
#define CSDE_PARAM_MODEL "model"
#define CSDE_PARAM_SPAN "span"             /* the times T and eps */
#define CSDE_PARAM_SIZE "size"             /* batch x tau x D: the state's size */
#define CSDE_PARAM_PROCESS "process"       /* the process or sampler (and ddim's eta) */
#define CSDE_PARAM_SAVE "save"             /* which states a run saves */
#define CSDE_PARAM_SCHEDULE "schedule"     /* the schedule (e.g. ddpm needs a discrete one) */
#define CSDE_PARAM_X0_CLIP "x0_clip"       /* the clip of the model's x0 */
#define CSDE_PARAM_X0_THRESHOLD "x0_threshold" /* the dynamic thresholding of its x0 */
#define CSDE_PARAM_GUIDANCE "guidance"     /* classifier-free guidance: its scale(s), split */
#define CSDE_PARAM_COND "cond"             /* the conditioning: cond, uncond */
#define CSDE_PARAM_CORRECTOR "corrector"   /* the predictor-corrector's Langevin corrector */

/* The fixed message of a status code ("unknown status" for codes not in the list). */
CSDE_API const char *csde_strerror(int status);

/* Record `status` and a printf-style message in err (if err is not NULL); returns status.
 * Used by the library; callers may use it for their own errors too. */
CSDE_API int csde_err_set(csde_err *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Name the setting at fault (one of CSDE_PARAM_*) unless a deeper call already did;
 * returns status. err may be NULL. */
CSDE_API int csde_err_blame(csde_err *err, const char *param, int status);

/* Reset err to CSDE_SUCCESS with an empty message (NULL is allowed). */
CSDE_API void csde_err_clear(csde_err *err);

/* Turn GSL's abort-on-error handler off for the whole process, and (with OpenBLAS) run
 * BLAS single-threaded and end OpenBLAS's thread pool (its idle threads spin for ~0.1 s
 * after each use, taking the cores from corrsde's own threads): corrsde parallelises over
 * tiles itself. Process-wide, so the library never calls it: every corrsde program and
 * test calls this first; library routines check their inputs before GSL sees them. */
CSDE_API void csde_init(void);

/* The library version, "MAJOR.MINOR.PATCH". */
CSDE_API const char *csde_version(void);

#ifdef __cplusplus
}
#endif
#endif
