"""Benchmark minigrad's derivatives against hand-written numpy and autograd
(and JAX / PyTorch when installed), with the spread of every number.

    python benchmarks/run.py                   # the table; JSON to _build/bench/
    python benchmarks/run.py --sweep           # also the growth sweeps (batch, width)
    python benchmarks/run.py --record          # write into benchmarks/results/ instead
    python benchmarks/run.py --sweep-only --record

Method. Every variant of every task is called once (warm-up; JAX compiles
here) and its result is checked against the reference (autograd, else the
hand-written numpy) to a relative 1e-8 before anything is timed. Cells are
timed in groups (the fast tasks together, then each full matrix on its own),
round-robin: in each round every cell of the group takes one sample, in an
order rotated from round to round. A sample is the mean of enough back-to-back
calls to last about 10 ms (one call for slower cells). Each cell reports the
median and the interquartile range (25th-75th percentile) of its samples. A
ratio of two cells of one group is taken round by round (both samples of a
round saw the same load), and its median and interquartile range are reported.

Verdicts. A target "ratio <= L" is *met* when the ratio's 75th percentile is
<= L, *MISSED* when its 25th percentile is > L, and *within noise* otherwise
(for ">= L" the other way round): the middle half of the rounds decides.

Cost against the floor. Each task's floating-point work F is counted
(``flops``); the rate F / median time is compared with this machine's rate for
a float64 square matrix product timed in the same run. The per-sample
Jacobian, whose work is one multiply per entry it writes, is also compared with
the time to allocate and fill an array of its size.
"""
import os

# One thread everywhere: numpy's BLAS, PyTorch (OpenMP) and XLA. On a shared
# two-core machine a second thread spins against other processes and makes
# small products erratic; one thread also makes the backends comparable.
# Set these variables yourself to measure otherwise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

# glibc's allocator keeps freed memory in the process: no fresh mmap per large
# array and no return of the heap to the system. On this kind of virtual machine
# a page fault is expensive, and without these settings a backend's time depends
# on what the backend timed before it freed (its large arrays change glibc's
# thresholds). glibc reads them at start-up, so the script restarts itself once.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 30), "MALLOC_TRIM_THRESHOLD_": str(2 ** 32)}
if __name__ == "__main__" and any(k not in os.environ for k in ALLOCATOR):
    import sys
    for _var, _value in ALLOCATOR.items():
        os.environ.setdefault(_var, _value)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from implementations import (ALL_BACKENDS, MATRIX_TASKS, OPTIONAL, TASKS,  # noqa: E402
                             Problem, available_backends)

REL_TOL = 1e-8          # every result agrees with the reference to this before timing
SAMPLE_S = 0.01         # one sample: this long, in back-to-back calls
MATMUL_N = 512          # the floor: a float64 (N, N) @ (N, N) product
FAST = ("gradient", "jacobian", "ggn_vp", "hvp")
MATRIX_MAX_N = 10_000           # full n x n matrices (minigrad) up to this n
BASELINE_MATRIX_MAX_N = 3_000   # generic routes to the full matrices in the table
SWEEP_BASELINE_MATRIX_MAX_N = 5_000   # ... and in the width sweep (n = 4810: seconds a call)

#: how long to time: per group a budget in seconds, and bounds on the rounds
RUN_CONFIG = {"fast": (20.0, 15, 51), "matrix": (45.0, 5, 21)}
SWEEP_CONFIG = {"fast": (5.0, 7, 21), "matrix": (12.0, 3, 7)}

#: the targets of the "One minigrad" issue, on 64-32-10 (the gradient also on
#: 64-128-10): (task, numerator cell, denominator cell, op, limit)
TARGETS_SMALL = [
    ("gradient", ("gradient", "minigrad"), ("gradient", "numpy"), "<=", 1.35),
    # issue 24: per-call cost against hand-written numpy
    ("jacobian", ("jacobian", "minigrad"), ("jacobian", "numpy"), "<=", 1.2),
    ("hvp", ("hvp", "minigrad"), ("hvp", "numpy"), "<=", 1.5),
    ("ggn_vp", ("ggn_vp", "minigrad"), ("ggn_vp", "numpy"), "<=", 1.5),
    ("jacobian", ("jacobian", "autograd"), ("jacobian", "minigrad"), ">=", 20.0),
    ("hessian", ("hessian", "autograd"), ("hessian", "minigrad"), ">=", 25.0),
    ("gauss_newton", ("gauss_newton", "minigrad"), ("gauss_newton", "numpy"), "<=", 1.0),
    ("ggn_vp", ("ggn_vp", "minigrad"), ("gradient", "minigrad"), "<=", 2.0),
    ("hvp", ("hvp", "minigrad"), ("gradient", "minigrad"), "<=", 2.0),
]
TARGETS_WIDE = [("gradient", ("gradient", "minigrad"), ("gradient", "numpy"), "<=", 1.15)]


# ------------------------------------------------------------ counting the work
def flops(task, m, h, o, B, B_jac, n):
    """Floating-point operations of a task on the MLP m -> h -> o, counting
    the matrix products (2 per multiply-add); elementwise work is left out.

    gradient: forward 2B(mh + ho), backward 2B(ho) for dL/dA, 2B(ho + mh) for
    the weight gradients: 2B(2mh + 3ho).
    ggn_vp: forward 2B(mh + ho), tangents 2B(mh + 2ho), backward of H_L J v
    2B(2ho + mh): 2B(3mh + 5ho).  hvp: the same plus the three products of
    the gradient's residual terms (E W2, E dW2, E^T dA), 2B(3ho): 2B(3mh + 8ho).
    jacobian: forward 2B_j(mh + ho) and one multiply per entry of the W1 block
    (a kron x): B_j(2mh + 2ho + ohm).
    hessian, gauss_newton: the n^2 entries are each a sum over the batch, 2Bn^2,
    the work of the dense sum (minigrad computes each distinct entry of a
    symmetric block once, less than that: the rate is dense-equivalent).
    """
    return {
        "gradient": 2 * B * (2 * m * h + 3 * h * o),
        "ggn_vp": 2 * B * (3 * m * h + 5 * h * o),
        "hvp": 2 * B * (3 * m * h + 8 * h * o),
        "jacobian": B_jac * (2 * m * h + 2 * h * o + o * h * m),
        "hessian": 2 * B * n * n,
        "gauss_newton": 2 * B * n * n,
    }[task]


def _tri(k):
    """Distinct pairs {i, j} of k indices: k (k + 1) / 2."""
    return k * (k + 1) // 2


def _kron_assembly(m, h, o, B):
    """minigrad's Hessian (or Gauss-Newton matrix) of the MLP, read off
    ``hessian_blocks`` and ``Linear.gram_params``: matrix products only.

    Output layer (in h, out o): the distinct W2-W2 entries, one (o(o+1)/2, B) @
    (B, h(h+1)/2) product; the W2-b2 block, (o o, B) @ (B, h); the loss Hessian
    pulled to the hidden layer, (B, o, o) @ (o, h) and (B, h, o) @ (o, h).
    Input layer (in m, out h): the distinct W1-W1 entries, (h(h+1)/2, B) @
    (B, m(m+1)/2); W1-b1, (h h, B) @ (B, m); the cross block with every later
    parameter (P = oh + o of them), one (P h, B) @ (B, m) product, mirrored, not
    recomputed. The elementwise work (tanh's diagonal, the broadcast a (x) x
    fills, under 1% here) is left out, as in ``flops``."""
    P = o * h + o
    return 2 * B * (_tri(o) * _tri(h) + o * o * h + o * o * h + h * h * o
                    + _tri(h) * _tri(m) + h * h * m + P * h * m)


def route_flops(task, backend, variant, m, h, o, B, B_jac, n):
    """The operations of one route as its algorithm does them (matrix products,
    2 per multiply-add; elementwise work left out), where ``flops`` charges
    every route the same count. None where not counted: the Jacobian, whose
    cost is compared with the time to fill an array of its size instead.

    Per call, with d1 = 2B(mh + ho) the forward pass and
      fg = 2B(2mh + 3ho)  the gradient (forward and backward),
      tg = 2B(2mh + 6ho)  the tangent (or second reverse) of the gradient in
                          one direction: each product C = A B of the gradient
                          whose two factors depend on w needs two products
                          (dA B + A dB), one that has X as a factor one; five
                          products, of which Z1 = X W1^T and gW1 = D^T X have X,
      tj = 2B(2mh + 4ho)  the Gauss-Newton part alone: J v (mh + 2ho) and
                          J^T of it (mh + 2ho).
    R-operator (minigrad, numpy): the products of ``flops``. Reverse over
    reverse (autograd's hessian_vector_product, PyTorch's double backward): fg +
    tg. Eager forward over reverse (torch.func jvp(grad)): the same, plus 2 *
    2Bmh: PyTorch's forward mode also multiplies the zero tangent of X in the two
    products that have X as a factor (its own flop counter shows it). Under jit XLA
    drops the primal gradient that jvp(grad) computes and nobody reads (gW1,
    gW2): 2B(mh + 2ho) + tg. The Gauss-Newton product through the
    double-backward trick (autograd's make_ggnvp, PyTorch's double backward):
    the forward, J^T u with u = 0 recorded, its VJP in direction v (= J v), and
    J^T of H_L J v: d1 + 3 * 2B(mh + 2ho). jvp, jvp(grad), vjp: two forward
    passes (jvp's and vjp's) and tj, plus 2Bmh for X's zero tangent in PyTorch;
    one forward under jit (XLA merges them).
    n directions: the numpy route runs the R-operator on 256 directions at a time
    (the forward and E W2 once per block of 256), JAX's and PyTorch's hessian
    vmap the tangent over the n unit vectors (the primal once), autograd's
    hessian is n VJPs of one recorded gradient: about n tg each. The
    Gauss-Newton matrix from n G-v products: n tj. From per-sample Jacobians:
    J (B, o, n), then h_L J, 2Bo^2 n, then J^T (h_L J), 2Bo n^2 (o times the
    dense-equivalent 2Bn^2); J itself costs the forward and one multiply per
    written entry of its W1 block, B o h m (JAX and PyTorch: o reverse passes
    per sample, o(3oh + hm) per sample), autograd's B o VJPs of the whole batch,
    Bo * 2B(mh + 2ho).
    minigrad's two matrices: ``_kron_assembly``.
    """
    d1 = 2 * B * (m * h + h * o)
    fg = 2 * B * (2 * m * h + 3 * h * o)
    tg = 2 * B * (2 * m * h + 6 * h * o)
    tj = 2 * B * (2 * m * h + 4 * h * o)
    rev = 2 * B * (m * h + 2 * h * o)          # one VJP of the network (no input gradient)
    dense_jtj = 2 * B * o * o * n + 2 * B * o * n * n
    if task == "gradient":
        return fg
    if task == "jacobian":
        return None
    if task in ("ggn_vp", "hvp"):
        key = {
            ("ggn_vp", "minigrad"): "rop", ("hvp", "minigrad"): "rop",
            ("ggn_vp", "numpy"): "rop", ("hvp", "numpy"): "rop",
            ("hvp", "autograd"): "rr", ("hvp", "torch"): "rr" if variant == "double backward"
            else "fr_eager",
            ("hvp", "jax"): "fr_jit",
            ("ggn_vp", "autograd"): "trick",
            ("ggn_vp", "torch"): "trick" if variant == "double backward" else "jvp_vjp_eager",
            ("ggn_vp", "jax"): "jvp_vjp_jit",
        }[task, backend]
        return {"rop": flops(task, m, h, o, B, B_jac, n), "rr": fg + tg,
                "fr_eager": fg + tg + 4 * B * m * h,
                "fr_jit": 2 * B * (m * h + 2 * h * o) + tg, "trick": d1 + 3 * rev,
                "jvp_vjp_eager": 2 * d1 + tj + 2 * B * m * h, "jvp_vjp_jit": d1 + tj}[key]
    if backend == "minigrad":
        return _kron_assembly(m, h, o, B)
    if task == "hessian":
        return {"numpy": n * tg + -(-n // 256) * 2 * B * (m * h + 2 * h * o),
                "autograd": fg + n * tg,
                "jax": 2 * B * (m * h + 2 * h * o) + n * tg,
                "torch": fg + n * tg}[backend]
    # gauss_newton
    if variant == "vmap(ggn_vp)":
        return (d1 if backend == "jax" else 2 * d1) + n * tj
    if backend == "numpy":
        return 2 * d1 + B * o * h * m + dense_jtj
    if backend == "autograd":
        return 2 * d1 + B * o * rev + dense_jtj
    return 2 * d1 + B * o * (3 * o * h + h * m) + dense_jtj      # per-sample vmap(jacrev)


# -------------------------------------------------------------------- statistics
def spread(samples):
    """median, 25th and 75th percentile of a list of numbers."""
    q25, med, q75 = np.percentile(np.asarray(samples, float), [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


def paired_ratio(num, den):
    """Round-by-round ratios num[i] / den[i] and their spread."""
    k = min(len(num), len(den))
    r = np.asarray(num[:k], float) / np.asarray(den[:k], float)
    return {**spread(r), "rounds": int(k)}


def verdict(stats, op, limit):
    """'met', 'MISSED' or 'within noise' for a ratio with spread `stats`
    (median, q25, q75) against `ratio op limit`: the whole interquartile range
    must lie on one side of the limit for a met or a missed."""
    if op == "<=":
        if stats["q75"] <= limit:
            return "met"
        if stats["q25"] > limit:
            return "MISSED"
    elif op == ">=":
        if stats["q25"] >= limit:
            return "met"
        if stats["q75"] < limit:
            return "MISSED"
    else:
        raise ValueError(f"op must be '<=' or '>=', got {op!r}")
    return "within noise"


def fit_exponent(x, y, last=4):
    """Least-squares slope of log y against log x over the `last` largest x
    (where fixed costs matter least): time ~ x^slope."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)[-last:]
    if len(order) < 2:
        return None
    return float(np.polyfit(np.log(x[order]), np.log(y[order]), 1)[0])


#: the exponents tried by ``fit_growth``
GROWTH_P = np.round(np.arange(0.1, 4.0 + 1e-9, 0.001), 3)


def fit_growth(x, y, grid=GROWTH_P):
    """Fit t = t0 + c x^p (t0 >= 0, c > 0) to every point of a curve, and the
    local slope between its two largest x, as a check.

    A pure power law over the largest sizes is bent by a fixed cost per call
    (t0): a fixed cost lowers the slope. Here t0 is fitted with c and p: for
    each p of ``grid`` the best t0 >= 0 and c follow by least squares on the
    relative residuals (t0 + c x^p) / t - 1 (every point counts alike whatever
    its size), and p is the one of least squares. Returns {"p", "t0", "c",
    "rms" (of the relative residuals), "t0_share" (t0 / t at the largest x),
    "local" (slope of log t between the two largest x), "x_pair", "points"}.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) < 3:
        return None
    best = None
    for p in grid:
        a, b = 1 / y, x ** p / y                     # model / t = t0 a + c b
        aa, ab, bb, a1, b1 = a @ a, a @ b, b @ b, a.sum(), b.sum()
        det = aa * bb - ab * ab
        t0, c = (a1 * bb - b1 * ab) / det, (aa * b1 - ab * a1) / det
        if t0 < 0:                                   # the bound t0 >= 0 is active
            t0, c = 0.0, b1 / bb
        if c <= 0:
            continue
        r = t0 * a + c * b - 1
        sse = float(r @ r)
        if best is None or sse < best[0]:
            best = (sse, float(p), float(t0), float(c))
    sse, p, t0, c = best
    return {"p": p, "t0": t0, "c": c, "rms": float(np.sqrt(sse / len(x))),
            "t0_share": t0 / float(y[-1]),
            "local": float(np.log(y[-1] / y[-2]) / np.log(x[-1] / x[-2])),
            "x_pair": [float(x[-2]), float(x[-1])], "points": int(len(x))}


# ------------------------------------------------------------------------ timing
def rel_error(a, b):
    """max |a - b| / max |b|: one number for arrays of any shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return np.inf
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


#: the clock of a sample: the process's CPU time (user + system, all its
#: threads). On a machine shared with other work, wall time measures the share
#: of a core the scheduler gave; CPU time measures the work. Wall time is kept
#: beside it: on a quiet machine the two agree, and their ratio shows the load.
CLOCK = time.process_time


def time_group(cells, budget_s, min_rounds, max_rounds, progress=None, wall=None):
    """Time zero-argument callables round-robin. cells: key -> callable.

    Every cell gets the same number of rounds (so ratios pair round by round);
    the number is budget_s / (time of one round), within the bounds.
    Returns key -> list of CPU seconds per call (CLOCK), one per round; if
    `wall` is a dict, it receives key -> wall seconds per call, the same way.
    """
    keys = list(cells)
    calls, one = {}, {}
    for k in keys:                                  # size the samples on a warm call: a first
        for _ in range(2):                          # call runs on cold caches, often 2-3x slower,
            t0 = time.perf_counter()                # and would leave a sample of a few calls
            cells[k]()
            one[k] = time.perf_counter() - t0
            if one[k] >= SAMPLE_S:                  # a sample of one call anyway: no second
                break
        calls[k] = int(np.clip(SAMPLE_S / max(one[k], 1e-9), 1, 1000))
    round_s = sum(one[k] * calls[k] for k in keys)
    rounds = int(np.clip(budget_s / max(round_s, 1e-9), min_rounds, max_rounds))
    samples = {k: [] for k in keys}
    for r in range(rounds):
        s = r % len(keys)
        for k in keys[s:] + keys[:s]:               # rotated: every position in turn (same neighbours)
            f, c = cells[k], calls[k]
            w0, t0 = time.perf_counter(), CLOCK()
            for _ in range(c):
                f()
            samples[k].append((CLOCK() - t0) / c)
            if wall is not None:
                wall.setdefault(k, []).append((time.perf_counter() - w0) / c)
        if progress:
            progress(r + 1, rounds)
    return samples


def floor_cells(pb):
    """The two floors, timed beside the fast tasks: a float64 square matrix
    product, and allocating and filling an array the size of the Jacobian."""
    rng = np.random.default_rng(1)
    A, Bm = rng.standard_normal((2, MATMUL_N, MATMUL_N))
    size = pb.B_jac * pb.o * pb.n
    return {("floor", "matmul"): lambda: A @ Bm,
            ("floor", "fill"): lambda: np.ones(size)}


def skip(backend, task, pb, sweep=False):
    """Cells not run: full matrices too large (every backend) or too slow
    (the generic routes; autograd's always in a sweep)."""
    if task in MATRIX_TASKS:
        if pb.n > MATRIX_MAX_N:
            return True
        if backend != "minigrad" and pb.n > (SWEEP_BASELINE_MATRIX_MAX_N if sweep
                                             else BASELINE_MATRIX_MAX_N):
            return True
        if sweep and backend == "autograd":
            return True
        if sweep and backend != "minigrad" and pb.B > 256:
            return True
    if sweep and task == "jacobian" and backend == "autograd" and pb.n > 40_000:
        return True
    return False


def peak_memory(fn):
    """Peak bytes traced by tracemalloc during one call (numpy's arrays are
    traced; JAX's and PyTorch's allocators are not, so they are not measured)."""
    fn()
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak), int(np.asarray(out).nbytes)


#: glibc settings of the memory child: every block of 4 KiB or more is its own
#: mmap, returned to the system when freed, so the resident set follows what is
#: alive (the timing runs keep freed memory instead: ALLOCATOR)
RSS_ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 12), "MALLOC_TRIM_THRESHOLD_": "0"}


def _status_bytes(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def rss_peaks(backend, problem, tasks):
    """Peak resident memory of one call of every route of `backend`, in this
    process: call once (JAX compiles), free, reset the kernel's high-water mark
    (write 5 to /proc/self/clear_refs), call again; peak = VmHWM after the call
    - VmRSS before it. This sees every allocator (numpy's, PyTorch's, XLA's),
    where tracemalloc sees numpy's only. Run it in a fresh process with
    RSS_ALLOCATOR (``rss_peaks_all`` does)."""
    import gc
    pb = Problem(**problem)
    impl = ALL_BACKENDS[backend](pb)
    out = {}
    for task in tasks:
        if skip(backend, task, pb):
            continue
        for variant, f in impl[task].items():
            r = f()
            del r
            gc.collect()
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            before = _status_bytes("VmRSS")
            r = f()
            peak = _status_bytes("VmHWM") - before
            out.setdefault(task, {})[variant] = {"peak_bytes": int(peak),
                                                 "result_bytes": int(np.asarray(r).nbytes)}
            del r
            gc.collect()
    return out


def rss_peaks_all(pb, tasks=TASKS, backends=None, verbose=True):
    """``rss_peaks`` for every backend, each in its own fresh process.
    Returns task -> backend -> variant -> {peak_bytes, result_bytes}; {} where
    /proc/self/clear_refs is not available (not Linux)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return {}
    problem = {k: v for k, v in pb.sizes().items() if k != "n"}
    out = {}
    for b in backends or available_backends():
        env = {**os.environ, **RSS_ALLOCATOR}
        arg = json.dumps({"backend": b, "problem": problem, "tasks": list(tasks)})
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", arg],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"memory of {b} failed:\n{proc.stderr[-2000:]}")
        for task, row in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            out.setdefault(task, {})[b] = row
        if verbose:
            print(f"  {pb.label()}: resident memory of {b} measured", flush=True)
    return out


def bench_problem(pb, config, tasks=TASKS, backends=None, sweep=False, verbose=True,
                  memory_backends=("minigrad", "numpy", "autograd"), floors=True):
    """Check, then time every task of one problem.

    Returns {"cells": task -> backend -> {"variant", "median", "q25", "q75",
    "samples", "variants": name -> {... "rel_error"}}, "floor": ...,
    "rounds": group -> count, "memory": task -> backend -> bytes}.
    Raises AssertionError when a result differs from the reference.
    """
    factories = backends or available_backends()
    t_start = time.perf_counter()
    impls = {name: make(pb) for name, make in factories.items()}
    cells, errors = {}, {}
    for task in tasks:                               # check first, time after
        run = [b for b in impls if not skip(b, task, pb, sweep)]
        ref = next((b for b in ("autograd", "numpy") if b in run), None)
        ref_value = next(iter(impls[ref][task].values()))() if ref else None
        for b in run:                                # one result alive at a time, beside the reference
            for v, f in impls[b][task].items():
                errors[task, (b, v)] = rel_error(f(), ref_value) if ref else None
        bad = {f"{b} {v}": e for (t, (b, v)), e in errors.items()
               if t == task and e is not None and not e <= REL_TOL}
        if bad:
            raise AssertionError(f"{pb.label()} {task}: results differ from {ref}: {bad}")
        del ref_value
        cells[task] = run

    groups = [("fast", [t for t in tasks if t in FAST], config["fast"])] + \
        [(t, [t], config["matrix"]) for t in tasks if t in MATRIX_TASKS]
    out = {"cells": {}, "rounds": {}, "memory": {}}
    for name, group_tasks, (budget, lo, hi) in groups:
        todo = {(t, b, v): f for t in group_tasks for b in cells[t]
                for v, f in impls[b][t].items()}
        if name == "fast" and floors:
            todo.update({(k[0], k[1], ""): f for k, f in floor_cells(pb).items()})
        if not todo:
            continue

        def progress(r, total, name=name):
            # a live line on a terminal, one line per group in a log
            if verbose and (sys.stdout.isatty() or r == total):
                print(f"\r  {pb.label()}: {name:12s} round {r}/{total}"
                      f"  ({time.perf_counter() - t_start:5.0f} s)",
                      end="" if r < total else "\n", flush=True)
        wall = {}
        samples = time_group(todo, budget, lo, hi, progress, wall=wall)
        out["rounds"][name] = len(next(iter(samples.values())))
        for (t, b, v), s in samples.items():
            # wall / CPU time per round: 1 on a quiet machine, more under load
            load = {"wall_over_cpu": spread(np.asarray(wall[t, b, v]) / np.asarray(s))}
            if t == "floor":
                out.setdefault("floor", {})[b] = {**spread(s), "samples": s, **load,
                                                  "wall": spread(wall[t, b, v])}
                continue
            cell = out["cells"].setdefault(t, {}).setdefault(b, {"variants": {}})
            cell["variants"][v] = {**spread(s), "samples": s, "rel_error": errors[t, (b, v)],
                                   "wall": spread(wall[t, b, v]), **load}
        for t in group_tasks:
            for b, cell in out["cells"].get(t, {}).items():
                best = min(cell["variants"], key=lambda v: cell["variants"][v]["median"])
                cell.update({"variant": best, **{k: cell["variants"][best][k] for k in
                                                 ("median", "q25", "q75", "samples", "wall",
                                                  "wall_over_cpu")}})
    for t in tasks:                                   # memory, after the timing
        for b in cells[t]:
            if b in memory_backends:
                f = impls[b][t][out["cells"][t][b]["variant"]]
                peak, size = peak_memory(f)
                out["memory"].setdefault(t, {})[b] = {"peak_bytes": peak, "result_bytes": size}
    if floors:
        out["floor"]["matmul"]["N"] = MATMUL_N
        out["floor"]["matmul"]["flops"] = 2 * MATMUL_N ** 3
        out["floor"]["fill"]["bytes"] = 8 * pb.B_jac * pb.o * pb.n
    out["seconds"] = time.perf_counter() - t_start
    return out


def cost(entry):
    """Each cell's rate F / median time and its fraction of the matmul rate
    (F the same dense-equivalent count for every route); and the route's own
    count (``route_flops``) / time as a fraction of it."""
    s = entry["sizes"]
    peak = entry["floor"]["matmul"]["flops"] / entry["floor"]["matmul"]["median"]
    res = {"matmul_gflops": peak / 1e9, "tasks": {}}
    for task, row in entry["cells"].items():
        F = flops(task, **s)
        res["tasks"][task] = {"flops": F, "rate": {}}
        for b, cell in row.items():
            rate = F / cell["median"]
            res["tasks"][task]["rate"][b] = {"gflops": rate / 1e9, "fraction": rate / peak}
            # the route's own count (route_flops): how well it uses the processor
            own = {v: route_flops(task, b, v, **s) for v in cell["variants"]}
            res["tasks"][task]["rate"][b].update(
                own_flops=own[cell["variant"]],
                own_fraction=None if own[cell["variant"]] is None else
                own[cell["variant"]] / cell["median"] / peak,
                variants={v: {"own_flops": own[v], "own_fraction": None if own[v] is None else
                              own[v] / cell["variants"][v]["median"] / peak}
                          for v in cell["variants"]})
        if task == "jacobian":
            fill = entry["floor"]["fill"]["median"]
            res["tasks"][task]["fill_multiple"] = {b: c["median"] / fill for b, c in row.items()}
    return res


def library_flops(pb, backends=None):
    """The libraries' own operation counts of their routes, where they have a
    counter (XLA's cost analysis, PyTorch's FlopCounterMode): task -> backend
    -> variant -> flops. A check of ``route_flops``, which is derived by hand."""
    out = {}
    for b, make in (backends or available_backends()).items():
        impl = make(pb)
        for task, variants in impl.items():
            if skip(b, task, pb):
                continue
            for v, f in variants.items():
                if hasattr(f, "count_flops"):
                    out.setdefault(task, {}).setdefault(b, {})[v] = f.count_flops()
    return out


def targets(entry, spec):
    """The issue's targets as paired ratios with verdicts."""
    out = []
    for task, (ta, ba), (tb, bb), op, limit in spec:
        row = {"task": task, "num": f"{ba} {ta}", "den": f"{bb} {tb}", "op": op, "limit": limit}
        ca, cb = entry["cells"].get(ta, {}).get(ba), entry["cells"].get(tb, {}).get(bb)
        if ca is None or cb is None:
            row.update(median=None, q25=None, q75=None, verdict="not run")
        else:
            st = paired_ratio(ca["samples"], cb["samples"])
            row.update(st, verdict=verdict(st, op, limit))
        out.append(row)
    return out


# -------------------------------------------------------------- what was measured
def minigrad_hash(root=ROOT):
    """sha256 over the sorted relative paths and contents of minigrad/**/*.py."""
    h = hashlib.sha256()
    base = os.path.join(root, "minigrad")
    files = sorted(os.path.relpath(os.path.join(d, f), base).replace(os.sep, "/")
                   for d, _, fs in os.walk(base) for f in fs if f.endswith(".py"))
    for rel in files:
        h.update(rel.encode() + b"\0")
        with open(os.path.join(base, rel), "rb") as fh:
            h.update(fh.read() + b"\0")
    return h.hexdigest()


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def _version(dist):
    """The installed version of a distribution, None when absent."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine():
    """What the numbers were measured on, and which code was measured."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git("rev-parse", "HEAD"),
        "minigrad_dirty": bool(_git("status", "--porcelain", "--", "minigrad")),
        "minigrad_sha256": minigrad_hash(),
        "versions": {m: _version(m) for m in ("numpy", "autograd", "jax", "jaxlib", "torch")},
        "threads": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                   "XLA_FLAGS")},
        "allocator": {k: os.environ.get(k) for k in ALLOCATOR},
        "backends": list(available_backends()),
        "clock": "process_time (CPU seconds of the process, all threads)",
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "absent": [b for b in ALL_BACKENDS if b not in available_backends()],
    }


# ---------------------------------------------------------------------- printing
def num(x, digits=3):
    """`digits` significant figures, never in exponent notation."""
    if x == 0 or not np.isfinite(x):
        return f"{x:g}"
    decimals = max(digits - 1 - int(np.floor(np.log10(abs(x)))), 0)
    return f"{round(x, decimals):.{decimals}f}"


def fmt(st, scale=1e3, digits=3):
    """'median [q25, q75]' with `digits` significant figures."""
    return (f"{num(scale * st['median'], digits)} [{num(scale * st['q25'], digits)}, "
            f"{num(scale * st['q75'], digits)}]")


def table(res):
    """The results as plain text: times (ms) and ratios to minigrad, each as
    median [25th, 75th percentile]; the targets with verdicts; cost."""
    backends = res["machine"]["backends"]
    lines = []
    for entry in res["problems"]:
        lines += [f"== {entry['label']}   (rounds: " +
                  ", ".join(f"{k} {v}" for k, v in entry["rounds"].items()) + ")",
                  "time per call, ms: median [25th, 75th percentile]"]
        lines.append(f"{'task':13s}" + "".join(f"{b:>26s}" for b in backends))
        for task, row in entry["cells"].items():
            lines.append(f"{task:13s}" + "".join(
                f"{fmt(row[b]) if b in row else '-':>26s}" for b in backends))
        lines.append("time / minigrad's time, paired by round: median [25th, 75th]")
        for task, row in entry["cells"].items():
            parts = []
            for b in backends[1:]:
                if b in row and "minigrad" in row:
                    parts.append(f"{b} {fmt(paired_ratio(row[b]['samples'], row['minigrad']['samples']), 1, 3)}")
            if parts:
                lines.append(f"  {task:13s}" + "; ".join(parts))
        variants = [f"{t} {b}: {c['variant']}" for t, row in entry["cells"].items()
                    for b, c in row.items() if len(c["variants"]) > 1]
        if variants:
            lines.append("fastest variant where there are several: " + "; ".join(variants))
        if entry.get("targets"):
            lines.append("targets (ratio median [25th, 75th]; met / MISSED only when the "
                         "interquartile range is on one side):")
            for tg in entry["targets"]:
                val = "-" if tg["median"] is None else fmt(tg, 1, 3)
                lines.append(f"  {tg['num']:>19s} / {tg['den']:19s} {tg['op']} {tg['limit']:<5g}"
                             f" {val:>22s}  {tg['verdict']}")
        c = entry["cost"]
        lines.append(f"cost: matmul {MATMUL_N}^2 runs at {c['matmul_gflops']:.2f} GFLOP/s; "
                     "each task's counted work / time, as a fraction of it:")
        for task, row in c["tasks"].items():
            lines.append(f"  {task:13s} F = {row['flops']:.3g}   " + "  ".join(
                f"{b} {r['fraction']:.3f}" for b, r in row["rate"].items()))
        lines.append("each route's own count (route_flops) / time, as a fraction of it:")
        for task, row in c["tasks"].items():
            own = [(b, r) for b, r in row["rate"].items() if r.get("own_flops")]
            if own:
                lines.append(f"  {task:13s} " + "  ".join(
                    f"{b} {r['own_flops']:.3g} {r['own_fraction']:.3f}" for b, r in own))
        lines.append("")
    if res["machine"]["absent"]:
        lines.append("absent: " + ", ".join(res["machine"]["absent"]) +
                     " (not installed; pip install -r benchmarks/requirements-bench.txt)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the runs
def main_run(config=RUN_CONFIG, verbose=True):
    out = {"machine": machine(), "config": config, "rel_tol": REL_TOL, "problems": []}
    for pb, spec in ((Problem(64, 32, 10, B=256), TARGETS_SMALL),
                     (Problem(64, 128, 10, B=256), TARGETS_WIDE)):
        entry = {"label": pb.label(), "sizes": pb.sizes(), **bench_problem(pb, config, verbose=verbose)}
        entry["targets"] = targets(entry, spec)
        entry["cost"] = cost(entry)
        entry["library_flops"] = library_flops(pb)
        entry["rss"] = rss_peaks_all(pb, verbose=verbose)
        out["problems"].append(entry)
    return out


#: the sweeps: the hidden width h at B = 256 (n up to ~1e5; full matrices to
#: n <= 1e4, the generic routes to 4810), and the batch B at h = 32 (n = 2410;
#: the generic routes to the full matrices up to B = 256)
SWEEP_WIDTHS = (8, 16, 32, 64, 128, 384, 1536)
SWEEP_BATCHES = (32, 64, 128, 256, 512, 1024, 2048)


def main_sweep(config=SWEEP_CONFIG, verbose=True):
    sweep = {"machine": machine(), "config": config, "width": [], "batch": []}
    for key, values in (("width", SWEEP_WIDTHS), ("batch", SWEEP_BATCHES)):
        for x in values:
            pb = Problem(64, x, 10, B=256) if key == "width" else Problem(64, 32, 10, B=x)
            tasks = TASKS if key == "width" else [t for t in TASKS if t != "jacobian"]
            r = bench_problem(pb, config, tasks=tasks, sweep=True, verbose=verbose,
                              memory_backends=("minigrad",), floors=False)
            r.pop("floor", None)
            for row in r["cells"].values():          # keep the spread, not every sample
                for cell in row.values():
                    cell.pop("samples")
                    for v in cell["variants"].values():
                        v.pop("samples")
            sweep[key].append({"label": pb.label(), "sizes": pb.sizes(), **r})
    sweep["fits"] = fits(sweep)
    return sweep


#: the exponent each curve should have: time ~ n^p at fixed B, ~ B^p at fixed n
THEORY = {"width": {"gradient": 1, "jacobian": 1, "ggn_vp": 1, "hvp": 1, "hessian": 2,
                    "gauss_newton": 2},
          "batch": {"gradient": 1, "ggn_vp": 1, "hvp": 1, "hessian": 1, "gauss_newton": 1}}


def fits(sweep):
    """Per (sweep, task, backend): the fit t = t0 + c x^p and the local slope
    (``fit_growth``), the pure power law over the four largest x that they
    replace (``fit_exponent``), and the theoretical exponent."""
    out = {}
    for key, xname in (("width", "n"), ("batch", "B")):
        for task in THEORY[key]:
            for b in ALL_BACKENDS:
                pts = [(e["sizes"][xname], e["cells"][task][b]["median"]) for e in sweep[key]
                       if b in e["cells"].get(task, {})]
                if len(pts) >= 3:
                    x, y = zip(*pts)
                    out.setdefault(key, {}).setdefault(task, {})[b] = {
                        **fit_growth(x, y), "power_law": fit_exponent(x, y),
                        "theory": THEORY[key][task], "x_range": [min(x), max(x)]}
    return out


def plot_sweep(sweep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 6, figsize=(20, 7))
    for row, (key, xname) in enumerate((("width", "n"), ("batch", "B"))):
        for ax, task in zip(axes[row], TASKS):
            for k, b in enumerate(ALL_BACKENDS):        # one colour per backend in every panel
                pts = [(e["sizes"][xname], e["cells"][task][b]["median"]) for e in sweep[key]
                       if b in e["cells"].get(task, {})]
                if pts:
                    x, y = zip(*pts)
                    ax.loglog(x, 1e3 * np.array(y), "o-", color=f"C{k}", label=b, ms=3)
            ax.set_title(f"{task}: ms against {xname}", fontsize=9)
            ax.set_visible(bool(ax.lines))
    handles = {ln.get_label(): ln for ax in axes.ravel() for ln in ax.lines}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def write(obj, path):
    with open(path, "w") as fh:
        json.dump(_jsonable(obj), fh, indent=1)
        fh.write("\n")
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true", help="also the batch and width sweeps")
    ap.add_argument("--sweep-only", action="store_true", help="only the sweeps (no table)")
    ap.add_argument("--record", action="store_true",
                    help="write into benchmarks/results/ (what the book reads)")
    ap.add_argument("--out", default=None, help="output folder (default _build/bench)")
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:                        # one backend's resident memory, as JSON
        job = json.loads(args.rss_child)
        print(json.dumps(rss_peaks(job["backend"], job["problem"], job["tasks"])))
        return
    out = args.out or (os.path.join(HERE, "results") if args.record
                       else os.path.join(ROOT, "_build", "bench"))
    os.makedirs(out, exist_ok=True)
    m = machine()
    print(f"minigrad {m['minigrad_sha256'][:12]} at commit {m['commit'][:10]}"
          f"{' (minigrad/ has uncommitted changes)' if m['minigrad_dirty'] else ''}; "
          f"backends: {', '.join(m['backends'])}"
          + (f"; absent: {', '.join(m['absent'])}" if m["absent"] else ""), flush=True)
    t0 = time.perf_counter()
    if not args.sweep_only:
        res = main_run()
        res["seconds"] = time.perf_counter() - t0
        res["machine"]["loadavg_end"] = list(os.getloadavg())
        print()
        print(table(res))
        write(res, os.path.join(out, "results.json"))
    if args.sweep or args.sweep_only:
        t1 = time.perf_counter()
        sweep = main_sweep()
        sweep["seconds"] = time.perf_counter() - t1
        sweep["machine"]["loadavg_end"] = list(os.getloadavg())
        write(sweep, os.path.join(out, "sweep.json"))
        for key, tasks in sweep["fits"].items():
            for task, row in tasks.items():
                print(f"  {key:6s} {task:13s} t0 + c x^p, p (local slope) [theory "
                      f"{THEORY[key][task]}]: " +
                      ", ".join(f"{b} {f['p']:.2f} ({f['local']:.2f})" for b, f in row.items()))
        plot_sweep(sweep, os.path.join(out, "sweep.png"))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
