#!/usr/bin/python3
"""Hostile HDF5 files against `corrsde info` and `corrsde sample --init` (issue 23).

Makes, with a fixed seed, corrupt and malicious trajectory files in OUTDIR and runs on
each (a timeout per run) `corrsde info`, `corrsde sample --init F` and, for the reader of
the models' files (csde_h5_read), `corrsde cov --cov dense:file=F:/covariance/matrix` and
`dense:file=F:/trajectory/x`; then prints one summary line:

    hostile: F files, R runs: A ok, B clean errors, C messy, D hangs, E crashes
             (libhdf5 L, corrsde K), S sanitizer reports from corrsde code

The files:
  - byte mutations (bit flips, random bytes, truncations) of real files written by
    `corrsde sample`, at offsets outside the raw data (object headers, B-trees, heaps,
    attributes: the bytes a reader parses), 'flips' of them;
  - hand-made files (h5py): n_saved as an array, negative, huge, a string; datasets of the
    wrong rank, type or length, huge declared dims; external storage and virtual datasets
    whose file is a FIFO; external and soft links; an unknown filter; attributes of the
    wrong type; control characters in strings;
  - with --extra DIR, every *.h5 file of DIR as it is (e.g. tests/fuzz/libhdf5).

A run is: ok (exit 0), a clean error (exit 1 or 2, one line on stderr, nothing on stdout),
messy (another exit status, several lines, HDF5's error stack...), a hang (killed by the
timeout) or a crash (a signal, or a sanitizer report of an ASan/UBSan build: leaks are
not reported, a failed allocation returns NULL as malloc does). A bad access to memory
is blamed on whoever owns the memory (the stack frame or allocation ASan names), any
other report on its top frame: libhdf5 or corrsde. Exit status 0 when every run is ok
or a clean error.

    /usr/bin/python3 tests/hostile_files.py --corrsde build/corrsde [--flips 120]
        [--seed 23] [--timeout 10] [--out DIR] [--extra tests/fuzz/libhdf5] [--verbose]
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

# the states of the hand-made files: [B, tau, D] = [2, 4, 8]
SHAPE_ARGS = ["--batch", "2", "--frames", "4", "--frame-shape", "8"]

# the real files that are mutated: (name, sample arguments, the same shape for --init)
BASES = [
    ("f64", ["--batch", "2", "--frames", "4", "--frame-shape", "8", "--steps", "10",
             "--save", "every:2"]),
    ("f32gz", ["--batch", "1", "--frames", "3", "--frame-shape", "4x4", "--steps", "6",
               "--save", "every:1", "--dtype", "float32", "--compress"]),
    ("final", ["--batch", "3", "--frames", "2", "--frame-shape", "5", "--steps", "4",
               "--cov", "ar1:rho=0.5"]),
]


def shape_args(args):
    """The --batch/--frames/--frame-shape of a sample command line."""
    out = []
    for i, a in enumerate(args):
        if a in ("--batch", "--frames", "--frame-shape"):
            out += [a, args[i + 1]]
    return out


def raw_ranges(path):
    """Byte ranges of raw data (dataset values) in an HDF5 file: mutations avoid them."""
    ranges = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        dcpl = obj.id.get_create_plist()
        if dcpl.get_layout() == h5py.h5d.CHUNKED:
            for i in range(obj.id.get_num_chunks()):
                ci = obj.id.get_chunk_info(i)
                ranges.append((ci.byte_offset, ci.byte_offset + ci.size))
        else:
            off = obj.id.get_offset()
            if off is not None:
                ranges.append((off, off + obj.id.get_storage_size()))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return ranges


def mutate(src, dst, rng, ranges):
    data = bytearray(open(src, "rb").read())
    meta = [i for i in range(len(data)) if not any(a <= i < b for a, b in ranges)]
    kind = rng.random()
    if kind < 0.65:  # flip 1-3 bits
        what = []
        for _ in range(rng.randint(1, 3)):
            i = rng.choice(meta)
            bit = rng.randrange(8)
            data[i] ^= 1 << bit
            what.append("bit %d of byte %d" % (bit, i))
        desc = "flip " + ", ".join(what)
    elif kind < 0.93:  # 1-4 bytes set to a random, 0x00 or 0xff value
        what = []
        for _ in range(rng.randint(1, 4)):
            i = rng.choice(meta)
            data[i] = rng.choice([0, 0xFF, rng.randrange(256)])
            what.append("byte %d := %d" % (i, data[i]))
        desc = "set " + ", ".join(what)
    else:  # a truncation inside the metadata
        i = rng.choice(meta)
        del data[i:]
        desc = "truncated at %d" % i
    open(dst, "wb").write(data)
    return desc


# ---- hand-made files: each builder writes path (a copy of a real file, or new) ----


def traj(path, base, edit):
    shutil.copy(base, path)
    with h5py.File(path, "r+") as f:
        edit(f)


def new_traj(f, n=3, x_kwargs=None):
    """A small trajectory of h5py's making: x [n, 2, 4, 8]."""
    kw = x_kwargs or {}
    if not {"external", "data", "shape"} & set(kw):
        kw.setdefault("data", np.zeros((n, 2, 4, 8)))
    f.create_dataset("trajectory/x", **kw)
    f["trajectory/t"] = np.linspace(1, 0, n)
    f["trajectory/step"] = np.arange(n, dtype=np.int64)
    f["trajectory"].attrs["n_saved"] = np.int64(n)
    f.create_group("stats").attrs["status"] = "ok"


def hand_made(out, base):
    """(name, builder(path), uses the FIFO): the builders of the hand-made files."""
    fifo = os.path.join(out, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    regular = os.path.join(out, "regular.bin")
    open(regular, "wb").write(b"\0" * (3 * 2 * 4 * 8 * 8))

    def attr(obj, name, value):
        return lambda p: traj(p, base, lambda f: f[obj].attrs.__setitem__(name, value))

    def replace(name, **kw):
        def edit(f):
            del f[name]
            f.create_dataset(name, **kw)
        return lambda p: traj(p, base, edit)

    def external_x(target):
        def b(p):
            with h5py.File(p, "w") as f:
                new_traj(f, x_kwargs=dict(shape=(3, 2, 4, 8), dtype="f8",
                                          external=[(target, 0, h5py.h5f.UNLIMITED)]))
                f.create_dataset("x", shape=(2, 4, 8), dtype="f8",
                                 external=[(target, 0, h5py.h5f.UNLIMITED)])
        return b

    def external_t(p):
        def edit(f):
            del f["trajectory/t"]
            f.create_dataset("trajectory/t", shape=(6,), dtype="f8",
                             external=[(fifo, 0, h5py.h5f.UNLIMITED)])
        traj(p, base, edit)

    def elink(obj, target_file, target_obj):
        def edit(f):
            del f[obj]
            f[obj] = h5py.ExternalLink(target_file, target_obj)
        return lambda p: traj(p, base, edit)

    def softlink(p):
        def edit(f):
            f["keep_x"] = f["trajectory/x"]  # a second hard link, so x survives
            del f["trajectory/x"]
            f["trajectory/x"] = h5py.SoftLink("/keep_x")
            f["x"] = h5py.SoftLink("/keep_x")
        traj(p, base, edit)

    def vds(p):
        layout = h5py.VirtualLayout(shape=(3, 2, 4, 8), dtype="f8")
        layout[:] = h5py.VirtualSource(fifo, "x", shape=(3, 2, 4, 8))
        with h5py.File(p, "w") as f:
            f.create_virtual_dataset("trajectory/x", layout, fillvalue=0)
            layout1 = h5py.VirtualLayout(shape=(2, 4, 8), dtype="f8")
            layout1[:] = h5py.VirtualSource(fifo, "x", shape=(2, 4, 8))
            f.create_virtual_dataset("x", layout1, fillvalue=0)
            f["trajectory/t"] = np.linspace(1, 0, 3)
            f.create_group("stats").attrs["status"] = "ok"

    def unknown_filter(p):
        with h5py.File(p, "w") as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((1, 2, 4, 8))
            dcpl.set_filter(40000, h5py.h5z.FLAG_OPTIONAL, (1, 2))
            sp = h5py.h5s.create_simple((3, 2, 4, 8))
            f.create_group("trajectory")
            h5py.h5d.create(f.id, b"trajectory/x", h5py.h5t.IEEE_F64LE, sp, dcpl=dcpl)
            dcpl1 = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl1.set_chunk((2, 4, 8))
            dcpl1.set_filter(40000, h5py.h5z.FLAG_OPTIONAL, (1, 2))
            h5py.h5d.create(f.id, b"x", h5py.h5t.IEEE_F64LE,
                            h5py.h5s.create_simple((2, 4, 8)), dcpl=dcpl1)
            f["trajectory/t"] = np.linspace(1, 0, 3)
            f["trajectory"].attrs["n_saved"] = np.int64(3)

    def huge_x(p):
        with h5py.File(p, "w") as f:
            new_traj(f, x_kwargs=dict(shape=(2 ** 40, 2, 4, 8), maxshape=(None, 2, 4, 8),
                                      chunks=(1, 2, 4, 8), dtype="f8"))
            del f["trajectory"].attrs["n_saved"]
            f.create_dataset("x", shape=(2 ** 20, 2 ** 20, 2 ** 20, 8), dtype="f4",
                             chunks=(1, 1, 1, 8))

    def overflow_x(p):
        with h5py.File(p, "w") as f:
            new_traj(f, x_kwargs=dict(shape=(2 ** 62, 2 ** 62, 4, 8),
                                      maxshape=(None, None, 4, 8), chunks=(1, 1, 4, 8),
                                      dtype="f8"))

    def rank9(p):
        with h5py.File(p, "w") as f:
            new_traj(f, x_kwargs=dict(data=np.zeros((1,) * 9)))
            f["x"] = np.zeros((1,) * 9)

    def x_type(dtype, data):
        def b(p):
            with h5py.File(p, "w") as f:
                new_traj(f, x_kwargs=dict(data=data, dtype=dtype))
                f.create_dataset("x", data=data[0], dtype=dtype)
        return b

    def empty_x(p):
        with h5py.File(p, "w") as f:
            new_traj(f, x_kwargs=dict(data=h5py.Empty("f8")))
            f["x"] = h5py.Empty("f8")

    def scalar_x(p):
        with h5py.File(p, "w") as f:
            new_traj(f, x_kwargs=dict(data=np.float64(1)))
            f["x"] = np.float64(1)

    def many_attrs(p):
        def edit(f):
            for i in range(200):
                f["parameters"].attrs["extra%03d" % i] = "v\x1b[2J%d" % i
        traj(p, base, edit)

    def escapes(p):
        def edit(f):
            f["parameters"].attrs["solver"] = "euler\x1b[31mRED\x07"
            f["parameters"].attrs["model"] = np.bytes_(b"m\x9b\xc2\x9b\xe2\x80\xae\xffz")
            f["stats"].attrs["status"] = "ok\x1b]0;title\x07\r\n"
            f["covariance"].attrs["spec"] = "\u009b31m"
        traj(p, base, edit)

    def wrong_types(p):
        def edit(f):
            a = f["stats"].attrs
            a["status"] = np.int64(5)
            a["nfe"] = "ten"
            a["wall_seconds"] = "slow"
            a["steps"] = np.arange(3)
            pa = f["parameters"].attrs
            pa["frame_shape"] = np.ones((2, 3), np.int64)
            pa["seed"] = np.int64(-1)
            pa["solver"] = np.array(["a", "b"], dtype=h5py.string_dtype())
            pa["batch"] = np.array((1, 2), dtype=[("a", "i4"), ("b", "i4")])
            pa["frames"] = h5py.Empty("i8")
            pa["T"] = np.float16(0.5)
            pa["eps"] = True  # an enum
            pa["command_line"] = "c" * 100000  # dense attribute storage
        traj(p, base, edit)

    def group_swaps(p):
        with h5py.File(p, "w") as f:
            new_traj(f)
            f["parameters"] = np.zeros(3)  # a dataset where a group belongs
            f.create_group("covariance/matrix")  # a group where a dataset belongs
            f["covariance/eigenvalues"] = np.zeros((2, 2))

    def missing(p):
        with h5py.File(p, "w") as f:
            f.create_dataset("trajectory/x", data=np.zeros((3, 2, 4, 8)))

    def x_is_group(p):
        with h5py.File(p, "w") as f:
            f.create_group("trajectory/x")
            f.create_group("x")

    fixed = [
        # issue 23 item 11: n_saved of every wrong form
        ("nsaved-array", attr("trajectory", "n_saved", np.arange(5))),
        ("nsaved-2d", attr("trajectory", "n_saved", np.ones((2, 3), np.int64))),
        ("nsaved-one-element", attr("trajectory", "n_saved", np.array([4], np.int32))),
        ("nsaved-negative", attr("trajectory", "n_saved", np.int64(-3))),
        ("nsaved-huge", attr("trajectory", "n_saved", np.int64(2 ** 62))),
        ("nsaved-uint64-max", attr("trajectory", "n_saved", np.uint64(2 ** 64 - 1))),
        ("nsaved-too-large", attr("trajectory", "n_saved", np.int64(50))),
        ("nsaved-zero", attr("trajectory", "n_saved", np.int8(0))),
        ("nsaved-float", attr("trajectory", "n_saved", 2.5)),
        ("nsaved-string", attr("trajectory", "n_saved", "five")),
        ("nsaved-string-array", attr("trajectory", "n_saved",
                                     np.array(["a", "b"], dtype=h5py.string_dtype()))),
        ("nsaved-empty", attr("trajectory", "n_saved", h5py.Empty("i8"))),
        ("nsaved-compound", attr("trajectory", "n_saved",
                                 np.array((1, 2), dtype=[("a", "i4"), ("b", "i4")]))),
        # the datasets info reads
        ("t-2d", replace("trajectory/t", data=np.zeros((3, 3)))),
        ("t-strings", replace("trajectory/t", data=np.array([b"a", b"b"]))),
        ("t-long", replace("trajectory/t", data=np.linspace(1, 0, 1000))),
        ("t-short", replace("trajectory/t", data=np.array([1.0]))),
        ("t-empty", replace("trajectory/t", shape=(0,), dtype="f8")),
        ("t-huge", replace("trajectory/t", shape=(2 ** 40,), maxshape=(None,),
                           chunks=(1024,), dtype="f8")),
        ("step-float", replace("trajectory/step", data=np.array([0.5, 1e300]))),
        ("step-uint64", replace("trajectory/step",
                                data=np.array([0, 2 ** 64 - 1], np.uint64))),
        ("eig-2d", replace("covariance/eigenvalues", data=np.ones((4, 4)))),
        ("eig-huge", replace("covariance/eigenvalues", shape=(2 ** 40,), maxshape=(None,),
                             chunks=(4096,), dtype="f8")),
        ("eig-compound", replace("covariance/eigenvalues",
                                 data=np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]))),
        # item 14: storage that is not in the file, links out of it, filters
        ("external-fifo", external_x(fifo)),
        ("external-regular", external_x(regular)),
        ("external-t-fifo", external_t),
        ("elink-trajectory-fifo", elink("trajectory", fifo, "/")),
        ("elink-x", elink("trajectory/x", os.path.abspath(base), "/trajectory/x")),
        ("elink-parameters-fifo", elink("parameters", fifo, "/")),
        ("softlink-x", softlink),
        ("vds-fifo", vds),
        ("unknown-filter", unknown_filter),
        # sizes
        ("huge-dims", huge_x),
        ("overflow-dims", overflow_x),
        ("rank-9", rank9),
        ("x-strings", x_type(h5py.string_dtype(), np.array([[["a"] * 8] * 4] * 2 * 3,
                                                           dtype=object).reshape(3, 2, 4, 8))),
        ("x-compound", x_type(np.dtype([("a", "f8"), ("b", "i4")]),
                              np.zeros((3, 2, 4, 8), dtype=[("a", "f8"), ("b", "i4")]))),
        ("x-int8", x_type(np.int8, np.ones((3, 2, 4, 8), np.int8))),
        ("x-empty", empty_x),
        ("x-scalar", scalar_x),
        ("x-is-group", x_is_group),
        # attributes
        ("many-attrs", many_attrs),
        ("escapes", escapes),
        ("wrong-types", wrong_types),
        ("group-swaps", group_swaps),
        ("missing-parts", missing),
    ]
    return fixed


def make_files(corrsde, out, flips, seed, extra):
    """[(path, description, shape arguments for --init)]."""
    rng = random.Random(seed)
    files = []
    bases = []
    for name, args in BASES:
        p = os.path.join(out, "base-%s.h5" % name)
        subprocess.run([corrsde, "sample"] + args + ["--seed", "1", "-q", "--force", "-o", p],
                       check=True)
        bases.append((p, shape_args(args)))
        files.append((p, "a real file (corrsde sample %s)" % " ".join(args), shape_args(args)))
    for name, build in hand_made(out, bases[0][0]):
        p = os.path.join(out, "hand-%s.h5" % name)
        try:
            build(p)
        except Exception as e:  # noqa: BLE001 (an h5py that cannot make it: say so)
            print("hostile: cannot make %s: %s" % (name, e), file=sys.stderr)
            continue
        files.append((p, name, SHAPE_ARGS))
    ranges = {b: raw_ranges(b) for b, _ in bases}
    for k in range(flips):
        b, sargs = bases[k % len(bases)]
        p = os.path.join(out, "mut-%03d-%s" % (k, os.path.basename(b)))
        files.append((p, mutate(b, p, rng, ranges[b]), sargs))
    for d in extra:
        for n in sorted(os.listdir(d)):
            if n.endswith(".h5"):
                p = os.path.join(out, "extra-" + n)
                shutil.copy(os.path.join(d, n), p)
                files.append((p, "from " + d, SHAPE_ARGS))
    return files


FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ +(?:in (\S+))?(.*)$")
SANITIZER_OWN = ("__asan", "__interceptor", "__sanitizer", "__ubsan")


def frames_after(lines, start, limit=8):
    """The stack frames (function, where) that follow lines[start]."""
    out = []
    for line in lines[start:]:
        fm = FRAME.match(line)
        if fm:
            out.append((fm.group(2) or "?", fm.group(3).strip()))
            if len(out) >= limit:
                break
        elif out:
            break
    return out


def first_own(frames):
    """The first frame that is not the sanitizer's own (interceptors)."""
    for fn, where in frames:
        if not fn.startswith(SANITIZER_OWN) and "libsanitizer" not in where:
            return fn, where
    return None


def sanitizer_report(err):
    """(kind, top frames, blamed on) of an ASan/UBSan report in stderr, or None. A bad
    access to memory is blamed on whoever owns that memory (the stack frame or the
    allocation ASan names), anything else on the top frame."""
    m = re.search(r"ERROR: AddressSanitizer: (\S+)|(\S+:\d+:\d+): runtime error: ([^\n]*)", err)
    if not m:
        return None
    lines = err[m.start():].splitlines()
    frames = frames_after(lines, 1)
    if m.group(2):
        kind = "UBSan " + m.group(3)
        blame = "libhdf5" if "libhdf5" in m.group(2) else "corrsde"
        return kind, ["%s %s" % f for f in frames[:6]], blame
    kind = "ASan " + m.group(1).rstrip(":")
    owner = None
    for i, line in enumerate(lines):
        if re.search(r"is located in stack of thread|allocated by thread", line):
            owner = first_own(frames_after(lines, i + 1))
            break
    top = owner or first_own(frames)
    blame = "libhdf5" if top and "libhdf5" in top[1] else "corrsde" if top else "unknown"
    shown = ["%s %s" % f for f in frames[:6]]
    if owner:
        shown.append("(memory of %s %s)" % owner)
    return kind, shown, blame


HUGE_ALLOCS = []  # runs in which ASan refused an allocation (larger than it can give)


def run_one(cmd, timeout, env):
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "hang", None, "killed after %g s" % timeout
    err = p.stderr.decode("utf-8", "replace")
    out = p.stdout
    # ASan's note of an allocation it refused (allocator_may_return_null=1: malloc
    # returned NULL, as it would without ASan): counted, not a line of the program's
    huge = re.findall(r"^==\d+==WARNING: AddressSanitizer failed to allocate.*\n?", err, re.M)
    if huge:
        err = re.sub(r"^==\d+==WARNING: AddressSanitizer failed to allocate.*\n?", "", err,
                     flags=re.M)
        HUGE_ALLOCS.append(len(huge))
    rep = sanitizer_report(err)
    if rep:
        return "crash", rep, err
    if p.returncode < 0:
        return "crash", ("signal %d" % -p.returncode, [], "unknown"), err
    if p.returncode == 0:
        return ("ok" if not err else "messy"), None, err
    lines = err.splitlines()
    if p.returncode in (1, 2) and len(lines) == 1 and not out:
        return "clean", None, err
    return "messy", None, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corrsde", required=True)
    ap.add_argument("--flips", type=int, default=120)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--out")
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    corrsde = os.path.abspath(a.corrsde)
    out = a.out or tempfile.mkdtemp(prefix="csde-hostile-")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ)
    # ASan: no leak report (HDF5 leaks on corrupt files); a failed allocation returns NULL
    # as malloc does (as in tests/fuzz/run.sh); an exit status of its own
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:allocator_may_return_null=1:exitcode=86")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
    env.pop("HDF5_PLUGIN_PATH", None)
    try:
        files = make_files(corrsde, out, a.flips, a.seed, a.extra)
        counts = {"ok": 0, "clean": 0, "messy": 0, "hang": 0, "crash": 0}
        blame = {"libhdf5": 0, "corrsde": 0, "unknown": 0}
        sanitizer_corrsde = 0
        bad = []
        dst = os.path.join(out, "init-out.h5")
        huge_seen = 0
        per_cmd = {}
        for path, desc, sargs in files:
            frames = sargs[sargs.index("--frames") + 1]
            cmds = [("info", [corrsde, "info", path]),
                    ("init", [corrsde, "sample", "--init", path] + sargs +
                     ["--steps", "2", "-q", "--force", "-o", dst]),
                    # csde_h5_read (dense:file=, the models' files): a matrix, and the
                    # whole of x (read, then refused for its shape)
                    ("dense", [corrsde, "cov", "--cov", "dense:file=%s:/covariance/matrix"
                               % path, "--frames", frames]),
                    ("dense-x", [corrsde, "cov", "--cov", "dense:file=%s:/trajectory/x" % path,
                                 "--frames", frames])]
            for what, cmd in cmds:
                kind, rep, err = run_one(cmd, a.timeout, env)
                counts[kind] += 1
                per_cmd.setdefault(what, dict.fromkeys(counts, 0))[kind] += 1
                if kind == "crash":
                    blame[rep[2]] += 1
                    if rep[2] == "corrsde" and not rep[0].startswith("signal"):
                        sanitizer_corrsde += 1
                if kind not in ("ok", "clean") or a.verbose:
                    bad.append((os.path.basename(path), desc, what, kind, rep, err))
                elif len(HUGE_ALLOCS) > huge_seen:
                    print("# %s %s (%s): %s, and ASan refused an allocation" %
                          (what, os.path.basename(path), desc, kind))
                huge_seen = len(HUGE_ALLOCS)
        for name, desc, what, kind, rep, err in bad:
            print("# %s %s (%s): %s" % (what, name, desc, kind))
            if rep:
                print("#   %s, blamed on %s" % (rep[0], rep[2]))
                for fr in rep[1]:
                    print("#     " + fr)
            elif err:
                for line in err.splitlines()[:3]:
                    print("#   " + line[:200])
        for what, c in per_cmd.items():
            print("# %-7s %s" % (what, ", ".join("%d %s" % (v, k) for k, v in c.items())))
        runs = sum(counts.values())
        print("hostile: %d files, %d runs: %d ok, %d clean errors, %d messy, %d hangs, "
              "%d crashes (libhdf5 %d, corrsde %d, unknown %d), %d sanitizer reports from "
              "corrsde code, %d runs with a huge allocation refused"
              % (len(files), runs, counts["ok"], counts["clean"], counts["messy"],
                 counts["hang"], counts["crash"], blame["libhdf5"], blame["corrsde"],
                 blame["unknown"], sanitizer_corrsde, len(HUGE_ALLOCS)))
        return 0 if counts["ok"] + counts["clean"] == runs else 1
    finally:
        if not a.out:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
