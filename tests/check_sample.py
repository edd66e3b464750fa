#!/usr/bin/python3
"""TAP test: `corrsde sample` files read the way a user reads them, with h5py and NumPy.

Run by meson with $CORRSDE set to the program (python3-h5py and python3-numpy from
Debian). Checks:
  - the layout: shapes, types, chunking, compression, every /parameters and /stats
    attribute, the covariance matrix and its eigenvalues, defaults included;
  - forward-sde from an --init state reproduces MATH.md eq. 1: X_T - sqrt(abar_T) X_0 has
    mean 0 and covariance (1 - abar_T) C, to 5 standard errors of the sample size;
  - dopri5 takes the steps of scipy's solve_ivp(RK45): the same NFE and endpoint;
  - pf-ode with rk45 at rtol = 1e-9 from a given --init matches the exact Gaussian flow
    (S0 = s^2 I commutes with C: x(t2) = sqrt(abar2) m + Sigma2^1/2 Sigma1^-1/2 (x(t1) -
    sqrt(abar1) m)) to 1e-6;
  - the gmm data law (a component per sample, then its Gaussian): component frequencies
    and within-component covariances;
  - save times land where asked, the last saved state is the final one.
"""
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("1..0 # SKIP python3-h5py / python3-numpy not available (%s)" % e)
    sys.exit(0)

CORRSDE = os.environ.get("CORRSDE")
if not CORRSDE:
    print("Bail out! set CORRSDE to the corrsde binary")
    sys.exit(1)

n_tests = 0
n_failed = 0


def ok(cond, what, detail=""):
    global n_tests, n_failed
    n_tests += 1
    if cond:
        print("ok %d - %s" % (n_tests, what))
    else:
        n_failed += 1
        print("not ok %d - %s" % (n_tests, what))
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)


def sample(*args):
    """Run corrsde sample; returns (status, stdout, stderr)."""
    p = subprocess.run([CORRSDE, "sample"] + [str(a) for a in args], capture_output=True,
                       text=True)
    return p.returncode, p.stdout, p.stderr


def abar_vp(t, bmin=0.1, bmax=20.0):
    """abar(t) of vp-linear: exp(-(bmin t + (bmax - bmin) t^2 / 2))."""
    return np.exp(-(bmin * t + (bmax - bmin) * t * t / 2))


def ar1(tau, rho):
    k = np.abs(np.subtract.outer(np.arange(tau), np.arange(tau)))
    return rho ** k


tmp = tempfile.mkdtemp(prefix="corrsde-check-")


def path(name):
    return os.path.join(tmp, name)


def s(v):
    """An attribute as text (h5py gives str for variable-length strings)."""
    return v.decode() if isinstance(v, bytes) else str(v)


try:
    # ---- the defaults: `corrsde sample -o out.h5` alone ----
    rc, out, err = sample("-o", path("default.h5"), "--quiet")
    ok(rc == 0 and out == "" and err == "", "defaults: sample -o out.h5 --quiet runs silently",
       err)
    with h5py.File(path("default.h5"), "r") as f:
        x = f["trajectory/x"]
        ok(x.shape == (1, 4, 16, 32, 32) and x.dtype == np.float64,
           "defaults: /trajectory/x is [1, 4, 16, 32, 32] float64", (x.shape, x.dtype))
        P = f["parameters"].attrs
        want = {"process": "reverse-sde", "solver": "em", "grid": "uniform",
                "schedule": "vp-linear:bmin=0.1,bmax=20", "covariance": "ar1:rho=0.9",
                "cov_method": "auto", "model": "gaussian:mean=0,std=0.5,rho=0.95",
                "dtype": "float64", "noise": "stream", "save": "final"}
        bad = {k: s(P.get(k)) for k in want if s(P.get(k)) != want[k]}
        ok(not bad, "defaults: /parameters holds the documented defaults", bad)
        ok(int(P["steps"]) == 100 and int(P["batch"]) == 4 and int(P["frames"]) == 16
           and list(P["frame_shape"]) == [32, 32] and int(P["seed"]) == 0
           and int(P["threads"]) == 1,
           "defaults: steps 100, batch 4, frames 16, frame_shape [32, 32], seed 0, threads 1",
           dict(P))
        ok(float(f["trajectory/t"][-1]) == 1e-3 and int(f["trajectory/step"][-1]) == 100,
           "defaults: the saved state is the final one (t = eps, step 100)",
           (f["trajectory/t"][:], f["trajectory/step"][:]))
        ok(np.all(np.isfinite(x[...])), "defaults: the final state is finite")

    # ---- layout, attributes, chunking, compression ----
    rc, out, err = sample("--frames", 8, "--frame-shape", "3x4x5", "--batch", 3, "--steps", 40,
                          "--save", "every:10", "--dtype", "float32", "--compress",
                          "--seed", 7, "--threads", 2, "-o", path("layout.h5"))
    ok(rc == 0 and "wrote" in out, "layout: a float32 compressed run succeeds", err)
    with h5py.File(path("layout.h5"), "r") as f:
        x, t, st = f["trajectory/x"], f["trajectory/t"], f["trajectory/step"]
        ok(x.shape == (5, 3, 8, 3, 4, 5) and x.dtype == np.float32,
           "layout: /trajectory/x is [n_saved, B, tau, C, H, W] float32", (x.shape, x.dtype))
        ok(x.chunks is not None and x.maxshape[0] is None
           and tuple(x.maxshape[1:]) == x.shape[1:],
           "layout: /trajectory/x is chunked and extendable along axis 0 only",
           (x.chunks, x.maxshape))
        ok(x.compression == "gzip" and x.shuffle, "layout: --compress gives gzip + shuffle",
           (x.compression, x.shuffle))
        ok(t.shape == (5,) and t.dtype == np.float64 and st.shape == (5,)
           and st.dtype == np.int64, "layout: /trajectory/t float64 and /step int64, [n_saved]",
           (t.shape, t.dtype, st.shape, st.dtype))
        ok(list(st[:]) == [0, 10, 20, 30, 40] and t[0] == 1.0 and t[-1] == 1e-3
           and np.all(np.diff(t[:]) < 0),
           "layout: every:10 saves the start, every 10th step and the end", (t[:], st[:]))
        P = f["parameters"].attrs
        need = ["process", "solver", "steps", "rtol", "atol", "grid", "schedule",
                "covariance", "cov_method", "model", "seed", "dtype", "threads",
                "command_line", "corrsde_version", "rng", "noise", "batch", "frames",
                "frame_shape", "t_start", "t_end", "init", "save"]
        missing = [k for k in need if k not in P]
        ok(not missing, "layout: /parameters has every setting", missing)
        ok(int(P["seed"]) == 7 and int(P["threads"]) == 2 and s(P["dtype"]) == "float32"
           and list(P["frame_shape"]) == [3, 4, 5],
           "layout: /parameters records the given settings", dict(P))
        cl = s(P["command_line"])
        ok(cl.startswith("corrsde sample ") and "--frame-shape 3x4x5" in cl,
           "layout: /parameters/command_line is the full command line", cl)
        ok(s(P["rng"]).startswith("philox"), "layout: the noise generator is named",
           s(P["rng"]))
        Cm = f["covariance/matrix"][...]
        ev = f["covariance/eigenvalues"][...]
        ok(Cm.shape == (8, 8) and np.allclose(Cm, ar1(8, 0.9), rtol=0, atol=1e-14),
           "layout: /covariance/matrix is the ar1 C used", Cm)
        ok(ev.shape == (8,) and np.allclose(np.sort(ev), np.linalg.eigvalsh(Cm), atol=1e-12),
           "layout: /covariance/eigenvalues are C's", ev)
        S = f["stats"].attrs
        need = ["nfe", "steps", "accepted", "rejected", "wall_seconds", "status"]
        ok(all(k in S for k in need) and s(S["status"]) == "ok" and int(S["nfe"]) == 40
           and int(S["steps"]) == 40 and int(S["accepted"]) == 40
           and int(S["rejected"]) == 0 and float(S["wall_seconds"]) >= 0,
           "layout: /stats nfe, steps, accepted, rejected, wall_seconds, status ok", dict(S))

    # ---- a circulant approximation: the matrix stored is the circulant ----
    rc, out, err = sample("--frames", 8, "--frame-shape", 4, "--batch", 2, "--steps", 10,
                          "--cov-method", "circulant", "-q", "-o", path("circ.h5"))
    with h5py.File(path("circ.h5"), "r") as f:
        Cm = f["covariance/matrix"][...]
        circ = all(np.allclose(np.roll(Cm[0], i), Cm[i], atol=1e-14) for i in range(8))
        ok(rc == 0 and circ and not np.allclose(Cm, ar1(8, 0.9), atol=1e-3),
           "circulant: /covariance/matrix is the circulant actually used", Cm)
        ok(s(f["parameters"].attrs["cov_method_used"]) == "circulant-tchan",
           "circulant: cov_method_used names it", dict(f["parameters"].attrs))

    # ---- forward-sde from --init: MATH.md eq. 1 ----
    tau, D, B, T = 8, 2048, 16, 0.5
    rng = np.random.default_rng(2024)
    x0 = 1.5 + rng.standard_normal((B, tau, D))
    with h5py.File(path("x0.h5"), "w") as f:
        f["x"] = x0
    rc, out, err = sample("--process", "forward-sde", "--init", path("x0.h5"), "--t-end", T,
                          "--steps", 2000, "--cov", "ar1:rho=0.8", "--seed", 3, "-q",
                          "-o", path("fwd.h5"))
    ok(rc == 0, "forward-sde: runs from --init (sizes taken from the file)", err)
    with h5py.File(path("fwd.h5"), "r") as f:
        xT = f["trajectory/x"][-1]
        ok(f["trajectory/x"].shape == (1, B, tau, D) and f["trajectory/t"][-1] == T,
           "forward-sde: one final state at t = T", f["trajectory/x"].shape)
    a = abar_vp(T)
    r = xT - np.sqrt(a) * x0                     # ~ N(0, (1 - abar) C), iid over (b, pixel)
    v = np.transpose(r, (0, 2, 1)).reshape(-1, tau)  # one row per (sample, pixel)
    n = v.shape[0]
    target = (1 - a) * ar1(tau, 0.8)
    mean = v.mean(axis=0)
    z_mean = np.abs(mean) / np.sqrt(np.diag(target) / n)
    ok(z_mean.max() < 5, "forward-sde: mean of X_T - sqrt(abar) X_0 is 0 (max %.2f se)"
       % z_mean.max(), mean)
    Shat = v.T @ v / n
    d = np.diag(target)
    se = np.sqrt((np.outer(d, d) + target ** 2) / n)  # sd of a Gaussian sample covariance
    z = np.abs(Shat - target) / se
    ok(z.max() < 5, "forward-sde: covariance is (1 - abar_T) C to %d samples (max %.2f se)"
       % (n, z.max()), "max |Shat - target| = %.3g" % np.abs(Shat - target).max())

    # ---- pf-ode with rk45 at rtol 1e-9 against the exact Gaussian flow ----
    tau, D, B, m, sd = 8, 16, 4, 0.3, 0.5
    x1 = np.random.default_rng(5).standard_normal((B, tau, D))
    with h5py.File(path("xT.h5"), "w") as f:
        f["x"] = x1
    rc, out, err = sample("--process", "pf-ode", "--solver", "rk45", "--rtol", "1e-9",
                          "--atol", "1e-9", "--model", "gaussian:mean=%g,std=%g,rho=0" % (m, sd),
                          "--cov", "ar1:rho=0.9", "--init", path("xT.h5"), "--save",
                          "times:0.5,0.1", "-q", "-o", path("ode.h5"))
    ok(rc == 0, "pf-ode: rk45 adaptive run from --init", err)
    with h5py.File(path("ode.h5"), "r") as f:
        xs, ts = f["trajectory/x"][...], f["trajectory/t"][...]
        stepping = s(f["parameters"].attrs["stepping"])
    ok(list(ts) == [0.5, 0.1, 1e-3] and stepping == "adaptive",
       "pf-ode: adaptive steps land exactly on the save times, then the end", ts)
    lam, V = np.linalg.eigh(ar1(tau, 0.9))
    a1 = abar_vp(1.0)
    worst = 0.0
    for k, t2 in enumerate(ts):
        a2 = abar_vp(t2)
        s1 = sd * sd * a1 + (1 - a1) * lam       # Sigma_t = abar s^2 I + (1 - abar) C
        s2 = sd * sd * a2 + (1 - a2) * lam
        Phi = V @ np.diag(np.sqrt(s2 / s1)) @ V.T
        exact = np.sqrt(a2) * m + np.einsum("ij,bjd->bid", Phi, x1 - np.sqrt(a1) * m)
        worst = max(worst, np.abs(exact - xs[k]).max())
    ok(worst < 1e-6, "pf-ode: rk45 rtol 1e-9 matches the exact flow (max error %.2g < 1e-6)"
       % worst)

    # ---- dopri5 takes SciPy's steps: solve_ivp(RK45) on the same drift ----
    # From t = 0.3 the drift is O(x), so the initial step is not cut to the interval and
    # SciPy 1.10's rule and dopri5's (the bounded one of SciPy >= 1.11) agree: the same
    # steps, hence the same NFE and the same endpoint up to rounding.
    try:
        from scipy.integrate import solve_ivp
    except ImportError:
        solve_ivp = None
    if solve_ivp is None:
        n_tests += 1
        print("ok %d - dopri5 = scipy solve_ivp(RK45) # SKIP python3-scipy missing" % n_tests)
    else:
        tau, D, B, m, sd, t0, t1 = 8, 16, 2, 0.3, 0.5, 0.3, 1e-3
        x1 = 2.0 * np.random.default_rng(11).standard_normal((B, tau, D))
        with h5py.File(path("x03.h5"), "w") as f:
            f["x"] = x1
        rc, out, err = sample("--process", "pf-ode", "--solver", "dopri5", "--rtol", "1e-6",
                              "--atol", "1e-6", "--t-start", t0,
                              "--model", "gaussian:mean=%g,std=%g,rho=0" % (m, sd),
                              "--cov", "ar1:rho=0.9", "--init", path("x03.h5"), "-q",
                              "-o", path("dp5.h5"))
        with h5py.File(path("dp5.h5"), "r") as f:
            xd, nfe = f["trajectory/x"][-1], int(f["stats"].attrs["nfe"])
        C = ar1(tau, 0.9)

        def drift(t, y):  # -1/2 beta (x + s), s = -C Sigma_t^-1 (x - sqrt(abar) m)
            x = y.reshape(B, tau, D)
            a, beta = abar_vp(t), 0.1 + t * 19.9
            Sig = a * sd * sd * np.eye(tau) + (1 - a) * C
            M = np.linalg.solve(Sig, C).T
            return (-0.5 * beta * (x - M @ (x - np.sqrt(a) * m))).ravel()

        sol = solve_ivp(drift, (t0, t1), x1.ravel(), method="RK45", rtol=1e-6, atol=1e-6)
        xs = sol.y[:, -1].reshape(B, tau, D)
        diff = np.abs(xs - xd).max()
        ok(rc == 0 and nfe == sol.nfev and diff < 1e-9,
           "dopri5 = scipy solve_ivp(RK45): NFE %d = %d, endpoints differ by %.2g < 1e-9"
           % (nfe, sol.nfev, diff), err)

    # ---- fixed steps with save times: the nearest grid nodes ----
    rc, out, err = sample("--steps", 10, "--frame-shape", 4, "--frames", 4, "--batch", 1,
                          "--save", "times:0.52,0.1", "-q", "-o", path("times.h5"))
    with h5py.File(path("times.h5"), "r") as f:
        ts, st = f["trajectory/t"][...], f["trajectory/step"][...]
    ok(rc == 0 and list(st) == [5, 9, 10] and abs(ts[0] - 0.5005) < 1e-12,
       "fixed steps: save times go to the nearest grid nodes, then the end", (ts, st))

    # ---- gmm: the data law the forward processes start from ----
    tau, D, B = 4, 256, 400
    w = np.array([0.3, 0.7])
    means = np.array([[-3.0] * tau, [3.0] * tau])            # [K, tau]
    covs = np.stack([0.25 * ar1(tau, 0.5), 0.5 * np.eye(tau)])
    with h5py.File(path("gmm.h5"), "w") as f:
        f["weights"], f["means"], f["frame_covs"] = w, means, covs
    rc, out, err = sample("--model", "gmm:file=" + path("gmm.h5"), "--process", "forward-sde",
                          "--frames", tau, "--frame-shape", D, "--batch", B, "--steps", 1,
                          "--save", "every:1", "--seed", 11, "-q", "-o", path("gmmfwd.h5"))
    ok(rc == 0, "gmm: forward-sde from the gmm's data law", err)
    with h5py.File(path("gmmfwd.h5"), "r") as f:
        x0 = f["trajectory/x"][0]                              # [B, tau, D], step 0
        ok(int(f["trajectory/step"][0]) == 0, "gmm: step 0 is the starting state")
    comp = (x0.mean(axis=(1, 2)) > 0).astype(int)             # the means are +-3 apart
    frac = comp.mean()
    ok(abs(frac - 0.7) < 5 * np.sqrt(0.21 / B),
       "gmm: components drawn with their weights (%.3f vs 0.7)" % frac)
    worst = 0.0
    for k in range(2):
        v = np.transpose(x0[comp == k] - means[k][None, :, None], (0, 2, 1)).reshape(-1, tau)
        n = v.shape[0]
        Shat = v.T @ v / n
        d = np.diag(covs[k])
        se = np.sqrt((np.outer(d, d) + covs[k] ** 2) / n)
        worst = max(worst, (np.abs(Shat - covs[k]) / se).max())
    ok(worst < 5, "gmm: within-component covariances are S_k (max %.2f se)" % worst)

    # ---- a plugin model runs (its data law does not exist: reverse from the prior) ----
    plugin = os.environ.get("CSDE_PLUGIN_MLP")
    if plugin and os.path.exists(plugin):
        rc, out, err = sample("--model", "plugin:%s:hidden=8,seed=3" % plugin, "--frames", 4,
                              "--frame-shape", 8, "--batch", 2, "--steps", 20, "-q",
                              "-o", path("plugin.h5"))
        with h5py.File(path("plugin.h5"), "r") as f:
            good = np.all(np.isfinite(f["trajectory/x"][...]))
            name = s(f["parameters"].attrs["model"])
        ok(rc == 0 and good and name.startswith("plugin:"), "plugin: reverse-sde runs", err)
    else:
        n_tests += 1
        print("ok %d - plugin: reverse-sde runs # SKIP CSDE_PLUGIN_MLP not set" % n_tests)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("1..%d" % n_tests)
sys.exit(1 if n_failed else 0)
