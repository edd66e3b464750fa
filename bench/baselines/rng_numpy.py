#!/usr/bin/env python3
"""Baselines for `corrsde-bench rng`: float64 standard normals per second on one core.

    rng_numpy.py [--n N] [--repeats R]

Fills a preallocated array of N float64 normals R times (after one untimed warm-up)
and prints one tab-separated line per baseline, for corrsde-bench to parse:

    row <TAB> name <TAB> median_s <TAB> min_s <TAB> max_s <TAB> note
    skip <TAB> name <TAB> reason

Baselines: numpy.random.default_rng().standard_normal(out=...) (PCG64 + ziggurat) and
torch.randn(..., dtype=float64, out=...) with torch.set_num_threads(1). A missing
package gives a `skip` line, never an error. Timing: time.perf_counter().
"""
import argparse
import statistics
import sys
import time


def measure(fill, repeats):
    fill()  # warm-up: page-in the buffer, first-call costs
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fill()
        t.append(time.perf_counter() - t0)
    return statistics.median(t), min(t), max(t)


def emit_row(name, stats, note):
    print("row\t%s\t%.9g\t%.9g\t%.9g\t%s" % ((name,) + stats + (note,)), flush=True)


def emit_skip(name, reason):
    print("skip\t%s\t%s" % (name, reason.replace("\t", " ").replace("\n", " ")), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeats", type=int, default=9)
    a = ap.parse_args()

    try:
        import numpy as np
    except ImportError as e:
        emit_skip("numpy standard_normal", str(e))
    else:
        g = np.random.default_rng(12345)
        out = np.empty(a.n, dtype=np.float64)
        emit_row("numpy standard_normal", measure(lambda: g.standard_normal(out=out), a.repeats),
                 "numpy %s, default_rng (PCG64), 1 thread" % np.__version__)

    try:
        import torch
    except ImportError as e:
        emit_skip("torch.randn float64", str(e))
    else:
        torch.set_num_threads(1)
        torch.manual_seed(12345)
        out = torch.empty(a.n, dtype=torch.float64)
        emit_row("torch.randn float64",
                 measure(lambda: torch.randn(a.n, dtype=torch.float64, out=out), a.repeats),
                 "torch %s, 1 thread" % torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
