#!/usr/bin/env python3
"""SIGKILL a run of `corrsde sample` right after each of its writes (tests/kill_shim.c,
LD_PRELOAD), and check what every kill leaves: the file the user named is absent (killed
before it was whole), the old file unchanged (--force, killed before the new run was
viable), or a file h5py opens whose /stats opens with every attribute readable, and whose
n_saved states equal an undisturbed run's, bit for bit. TAP output.

usage: kill_every_write.py CORRSDE SHIM.so [--every K]   (K: kill at every K-th write)
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

STATS = ("nfe", "steps", "accepted", "rejected", "wall_seconds", "n_saved", "status")
SMALL = ["--frames", "4", "--frame-shape", "8x8", "--batch", "2", "--seed", "3", "-q"]
# name, arguments, overwrite an existing file, strict. A run of unknown length (adaptive
# with every:K) doubles its datasets when they are full (64, 128, ... states); its
# chunk-index nodes hold 2048 entries, so up to 2048 states a doubling rewrites a node in
# place and allocates only chunks past the saved ones (h5traj.c, GROW_K). Past that, the
# flush of a node split can be torn by a kill (HDF5 writes the superblock's end of file
# last); no variant here reaches it, so every one is strict.
VARIANTS = [
    ("fixed length, float64", ["--steps", "20", "--save", "every:1"], False, True),
    ("compressed float32", ["--steps", "20", "--save", "every:1", "--compress",
                            "--dtype", "float32"], False, True),
    ("unknown length, no growth (every:8)", ["--process", "reverse-sde", "--noise", "path",
                                            "--rtol", "1e-2", "--save", "every:8"], False, True),
    ("--force over an old file", ["--steps", "20", "--save", "every:1", "--force"], True, True),
    ("unknown length, grows once (every:1)", ["--process", "reverse-sde", "--noise", "path",
                                              "--rtol", "1e-2", "--save", "every:1"], False,
     True),
]


def states(path):
    with h5py.File(path, "r") as f:
        st = {k: f["stats"].attrs[k] for k in STATS}  # every one must read
        tr = f["trajectory"]
        n = int(tr.attrs["n_saved"])
        return tr["x"][:n], tr["t"][:n], tr["step"][:n], n, st


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(cmd, env):
    return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(argv):
    corrsde, shim = argv[1], argv[2]
    every = int(argv[argv.index("--every") + 1]) if "--every" in argv else 1
    tmp = tempfile.mkdtemp(prefix="csde_kills_")
    base_env = dict(os.environ)
    tap, failures, total = [], 0, {"kills": 0, "absent": 0, "old": 0, "stats bad": 0,
                                   "torn": 0, "unopenable": 0}
    for name, args, force, strict in VARIANTS:
        ref = os.path.join(tmp, "ref.h5")
        out = os.path.join(tmp, "out.h5")
        for p in (ref, out):
            if os.path.exists(p):
                os.remove(p)
        cnt = os.path.join(tmp, "count")
        env = dict(base_env, LD_PRELOAD=shim, CSDE_WRITE_COUNT=cnt)
        old = None
        if force:  # the old file: another seed
            subprocess.run([corrsde, "sample"] + SMALL + ["--steps", "5", "--seed", "9", "-o",
                                                         out], check=True)
            old = sha(out)
        r = run([corrsde, "sample"] + SMALL + args + ["-o", ref], env)
        if r.returncode != 0:
            tap.append((False, "%s: the undisturbed run: %s" % (name, r.stderr.decode())))
            continue
        nwrites = int(open(cnt).read())
        rx, rt, rs, rn, rst = states(ref)
        bad = {"stats bad": 0, "torn": 0, "unopenable": 0}
        kinds = {"absent": 0, "old": 0, "new": 0}
        for k in range(1, nwrites + 1, every):
            if force:
                if sha(out) != old:  # the last kill's run replaced it: put the old one back
                    subprocess.run([corrsde, "sample"] + SMALL + ["--steps", "5", "--seed", "9",
                                                                 "--force", "-o", out],
                                   check=True)
            elif os.path.exists(out):
                os.remove(out)
            for f in os.listdir(tmp):  # leftovers of the last kill (not this run's files)
                if ".partial." in f or f.endswith(".lock"):
                    os.remove(os.path.join(tmp, f))
            env = dict(base_env, LD_PRELOAD=shim, CSDE_KILL_AT_WRITE=str(k))
            run([corrsde, "sample"] + SMALL + args + ["-o", out], env)
            total["kills"] += 1
            if not os.path.exists(out):
                kinds["absent"] += 1
                continue
            if force and sha(out) == old:
                kinds["old"] += 1
                continue
            kinds["new"] += 1
            try:
                x, t, s, n, st = states(out)
            except Exception as e:  # pylint: disable=broad-except
                what = "unopenable"
                try:
                    with h5py.File(out, "r") as f:
                        {a: f["stats"].attrs[a] for a in STATS}
                except Exception:  # pylint: disable=broad-except
                    what = "stats bad"
                bad[what] += 1
                print("# kill at write %d of %d: %s: %s" % (k, nwrites, what, e))
                continue
            if not (n <= rn and np.array_equal(x, rx[:n]) and np.array_equal(t, rt[:n])
                    and np.array_equal(s, rs[:n]) and st["status"] in ("running", "ok")
                    and int(st["n_saved"]) in (0, n)):
                bad["torn"] += 1
                print("# kill at write %d of %d: torn (n %d, status %r)" % (k, nwrites, n,
                                                                            st["status"]))
        for key in bad:
            total[key] += bad[key]
        total["absent"] += kinds["absent"]
        total["old"] += kinds["old"]
        ok = sum(bad.values()) == 0 if strict else bad["stats bad"] == 0
        tap.append((ok, "%s: SIGKILL after each of %d writes (every %d): %d absent, %d old "
                        "file kept, %d new files whole; %d with /stats unreadable, %d "
                        "unopenable, %d torn" % (name, nwrites, every, kinds["absent"],
                                                 kinds["old"], kinds["new"], bad["stats bad"],
                                                 bad["unopenable"], bad["torn"])))
    print("1..%d" % len(tap))
    for i, (ok, text) in enumerate(tap, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, text))
        failures += not ok
    print("# %d kills in all: %d left no file, %d the old file, %d /stats unreadable, "
          "%d unopenable, %d torn" % (total["kills"], total["absent"], total["old"],
                                      total["stats bad"], total["unopenable"], total["torn"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
