/* Internal: the outputs of a convergence experiment (converge.h): the table for people,
 * the CSV rows, and the HDF5 file.
 *
 * HDF5 layout (a contract, issue 5; written by `corrsde converge -o`):
 *   /parameters                 attributes: every setting of the run (as `corrsde sample`)
 *   /covariance/matrix [tau, tau], /covariance/eigenvalues [tau]
 *   /convergence                attributes status ("running" while a run writes it,
 *                               "ok", "failed: reason"), error, estimator, reference,
 *                               paths, levels, bootstrap, confidence, solvers; with a
 *                               shared reference reference_solver, reference_rtol,
 *                               reference_atol, reference_nfe, reference_check_error
 *                               (its estimated error: mean ||X(rtol) - X(rtol/10)||
 *                               over the reference_check_paths first paths)
 *   /convergence/<solver>/steps        [L] int64, 2^k
 *                        /nfe          [L] int64, model evaluations of one solve
 *                        /level        [L] int64, k
 *                        /h            [L] step size |t_end - t_start| / 2^k
 *                        /error        [L]
 *                        /error_ci     [L, 2] bootstrap percentile interval
 *                        /halfwidth    [L]
 *                        /local_slope  [L-1] log(e_k / e_k+1) / log(h_k / h_k+1)
 *                        /local_slope_ci [L-1, 2]
 *                        /used         [L] int64 (1: in the fit)
 *                        /decision     [L] strings: why each level is used or dropped
 *                        /error_rms, /error_rms_ci  (strong, ode) the RMS variant
 *                        /mc_noise     [L] (weak) the norm's Monte Carlo noise level
 *                        /per_path     [N, L] (strong, ode) or [N, L, Q] (weak): the
 *                                      per-path contributions, to re-bootstrap
 *                        /ref_check_per_path [N] or [N, Q]: level R-1 against R
 *                        attributes levels_done (levels finished), analysed (0: a
 *                        run in progress or stopped: the datasets above hold only the
 *                        levels_done levels of steps, nfe, level, h, per_path, error and
 *                        error_rms, without intervals; no attributes below), reference,
 *                        reference_level, theory_order; analysed: order, order_ci [2], theory_order, levels_used,
 *                        levels_dropped, order_bootstrap_ci [2], order_plain, fit,
 *                        systematic_extrapolation, systematic_misfit,
 *                        systematic_reference, curvature, curvature2, corrections (0-2),
 *                        reference, reference_level, reference_error, reference_ratio,
 *                        reference_ok, floor, floor_name (+ exact_deviation,
 *                        exact_deviation_halfwidth for weak errors on gaussian)
 */
#ifndef CSDE_EXPERIMENT_REPORT_H
#define CSDE_EXPERIMENT_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "experiment/converge.h"
#include "io/h5meta.h"
#include "io/h5out.h"

/* ---- the experiment's outputs ---- */

/* The table (csde_conv_print) and the CSV (csde_conv_write_csv): corrsde/converge.h. */
/* /convergence and its groups; status: the attribute status ("running", "ok", "failed:
 * ..."). A solver not analysed (a run in progress, stopped or failed) gets only what
 * finished: levels_done levels of steps, nfe, level, h, per_path and the plain estimate
 * error (error_rms beside it for strong and ode), without intervals, decisions or
 * order. */
int csde_conv_write_h5(csde_h5out *w, const csde_conv_result *r, csde_conv_kind kind,
                       const csde_conv_params *p, const char *status, csde_err *err);

#endif
