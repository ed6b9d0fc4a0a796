"""Benchmark minigrad's derivatives against hand-written numpy and autograd
(and JAX / PyTorch when installed).

    python benchmarks/run.py            # the table, written to _build/bench/results.json
    python benchmarks/run.py --sweep    # also time against width and batch size, plot PNGs

Method: every implementation of a task is run once (warm-up, and JAX's
compilation) and its result is checked equal to the reference (autograd, else
numpy) to a relative 1e-8 before anything is timed. Then the implementations are
timed interleaved, round-robin in one process, and the median of the samples is
reported; the ratios come from the same run, so load from other processes
affects all columns alike. A sample is the mean of enough back-to-back calls to
last about 10 ms (one call for slow tasks), so sub-millisecond tasks are not
measured at the timer's and the scheduler's resolution. Slow implementations
get fewer samples (a time budget per cell).
"""
import os

# Single-threaded BLAS by default: on a shared machine a second BLAS thread
# spins against other processes and makes small products erratic. Set
# OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) yourself to measure otherwise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import minigrad as mg  # noqa: E402
from implementations import TASKS, Problem, available_backends  # noqa: E402

REL_TOL = 1e-8          # results must agree to this relative error before timing
BUDGET_S = 3.0          # time budget per (backend, task) cell, repeats are cut to fit
SAMPLE_S = 0.01         # one timed sample: this long, in back-to-back calls
MATRIX_MAX_N = 10_000   # skip full n x n matrices beyond this (memory)
AUTOGRAD_HESSIAN_MAX_N = 3_000   # generic full matrices (n passes, dense J^T H J): minutes beyond

def _gradient_target(limit):
    return ("gradient", f"minigrad / numpy <= {limit}",
            lambda t: _ratio(t, "gradient", "minigrad", "numpy", lambda r: r <= limit))


#: the targets of the "One minigrad" issue; the gradient's limit depends on the model
COMMON_TARGETS = [
    # (task, description, function of the medians dict -> (value, passed))
    ("jacobian", "autograd / minigrad >= 20",
     lambda t: _ratio(t, "jacobian", "autograd", "minigrad", lambda r: r >= 20)),
    ("hessian", "autograd / minigrad >= 25",
     lambda t: _ratio(t, "hessian", "autograd", "minigrad", lambda r: r >= 25)),
    ("gauss_newton", "minigrad / numpy (dense J^T H J) < 1",
     lambda t: _ratio(t, "gauss_newton", "minigrad", "numpy", lambda r: r < 1)),
    ("ggn_vp", "minigrad ggn_vp / minigrad gradient <= 2",
     lambda t: _cross(t, "ggn_vp", "gradient", lambda r: r <= 2)),
    ("hvp", "minigrad hvp / minigrad gradient <= 2",
     lambda t: _cross(t, "hvp", "gradient", lambda r: r <= 2)),
    # against JAX: only when it is installed (benchmarks/requirements-bench.txt)
    ("jacobian", "minigrad / jax <= 1 (no slower)",
     lambda t: _ratio(t, "jacobian", "minigrad", "jax", lambda r: r <= 1)),
    ("hessian", "minigrad / jax < 1 (faster)",
     lambda t: _ratio(t, "hessian", "minigrad", "jax", lambda r: r < 1)),
]
#: the gradient's limit per model: 1.35 on the small one, 1.15 on the wide one
GRADIENT_LIMITS = [1.35, 1.15]


def _ratio(t, task, a, b, ok):
    if a not in t.get(task, {}) or b not in t.get(task, {}):
        return None, None
    r = t[task][a] / t[task][b]
    return r, bool(ok(r))


def _cross(t, task_a, task_b, ok):
    if "minigrad" not in t.get(task_a, {}) or "minigrad" not in t.get(task_b, {}):
        return None, None
    r = t[task_a]["minigrad"] / t[task_b]["minigrad"]
    return r, bool(ok(r))


def rel_error(a, b):
    """max |a - b| / max |b|: one number for arrays of any shape."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return np.inf
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def skip(backend, task, pb, sweep=False):
    """Cells not run: full matrices too large, autograd's Hessian too slow;
    in a sweep, also the slow baselines of the two full matrices."""
    if task in ("hessian", "gauss_newton") and pb.n > MATRIX_MAX_N:
        return True
    if task in ("hessian", "gauss_newton") and backend != "minigrad" \
            and (pb.n > AUTOGRAD_HESSIAN_MAX_N or (sweep and backend == "autograd")):
        return True
    return False


def bench_problem(pb, repeats, tasks=TASKS, backends=None, verbose=True, sweep=False):
    """Check and time every task on one problem.

    Returns {"medians": task -> backend -> seconds, "times": ... lists,
    "errors": task -> backend -> relative error to the reference}.
    """
    factories = backends or available_backends()
    impls = {name: make(pb) for name, make in factories.items()}
    medians, times, errors = {}, {}, {}
    for task in tasks:
        cells = [b for b in impls if not skip(b, task, pb, sweep)]
        results, first = {}, {}
        for b in cells:                               # warm-up (and compile) and result
            results[b] = impls[b][task]()
            t0 = time.perf_counter()                  # one more call, to size the samples
            impls[b][task]()
            first[b] = time.perf_counter() - t0
        ref = next((b for b in ("autograd", "numpy") if b in results), None)
        # a cell with no independent reference is recorded as unchecked (None)
        errors[task] = {b: (rel_error(results[b], results[ref]) if ref else None) for b in cells}
        bad = {b: e for b, e in errors[task].items() if e is not None and not e <= REL_TOL}
        if bad:
            raise AssertionError(f"{pb.label()} {task}: results differ from {ref}: {bad}")
        del results
        calls = {b: int(np.clip(SAMPLE_S / max(first[b], 1e-9), 1, 1000)) for b in cells}
        reps = {b: int(np.clip(BUDGET_S / max(first[b] * calls[b], 1e-9), 1, repeats))
                for b in cells}
        times[task] = {b: [] for b in cells}
        for r in range(max(reps.values())):
            # interleaved, round-robin, rotated each round so that every
            # implementation follows every other equally often (threads that
            # spin after a JAX or torch call slow down whatever runs next)
            for b in cells[r % len(cells):] + cells[:r % len(cells)]:
                if r < reps[b]:
                    f, k = impls[b][task], calls[b]
                    t0 = time.perf_counter()
                    for _ in range(k):
                        f()
                    times[task][b].append((time.perf_counter() - t0) / k)
        medians[task] = {b: float(np.median(ts)) for b, ts in times[task].items()}
        if verbose:
            print(f"  {task:13s}" + "".join(f"  {b} {1e3 * s:9.2f} ms" for b, s in medians[task].items()),
                  flush=True)
    return {"medians": medians, "times": times, "errors": errors}


def hessian_peak_memory(pb):
    """Peak memory traced while minigrad builds the full Hessian, in bytes,
    and the size of the Hessian itself (n^2 float64)."""
    mg.hessian(pb.model, pb.loss, pb.X, pb.t)          # warm caches outside the trace
    tracemalloc.start()
    H = mg.hessian(pb.model, pb.loss, pb.X, pb.t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, H.nbytes


def machine():
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(), "commit": commit,
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "backends": list(available_backends())}


def fmt_ms(s):
    return "-" if s is None else f"{1e3 * s:.2f}"


def table(res):
    """The results as a plain-text table of medians (ms) and ratios."""
    lines = []
    for k, prob in enumerate(res["problems"]):
        med = prob["medians"]
        backends = [b for b in res["machine"]["backends"]]
        others = [b for b in backends if b != "minigrad"]
        head = f"{'task':13s}" + "".join(f"{b + ' ms':>12s}" for b in backends) + \
            "".join(f"{b + '/mg':>12s}" for b in others)
        lines += [f"{prob['label']}", head, "-" * len(head)]
        for task, cell in med.items():
            row = f"{task:13s}" + "".join(f"{fmt_ms(cell.get(b)):>12s}" for b in backends)
            mgt = cell.get("minigrad")
            for b in others:
                row += f"{cell[b] / mgt:>12.2f}" if b in cell and mgt else f"{'-':>12s}"
            lines.append(row)
        if prob.get("targets"):
            lines.append("targets:")
            for tg in prob["targets"]:
                val = "-" if tg["value"] is None else f"{tg['value']:.2f}"
                mark = {True: "met", False: "MISSED", None: "not run"}[tg["passed"]]
                lines.append(f"  {tg['task']:13s} {tg['target']:45s} {val:>8s}  {mark}")
        if "hessian_peak_bytes" in prob:
            lines.append(f"  full Hessian peak memory / matrix size: "
                         f"{prob['hessian_peak_bytes'] / prob['hessian_bytes']:.2f} (target < 4)")
        lines.append("")
    return "\n".join(lines)


def main_run(args):
    problems = [Problem(64, 32, 10, B=256), Problem(64, 128, 10, B=256)]
    out = {"machine": machine(), "repeats": args.repeats, "rel_tol": REL_TOL, "problems": []}
    for pb in problems:
        print(pb.label(), flush=True)
        r = bench_problem(pb, args.repeats)
        entry = {"label": pb.label(), "sizes": {"m": pb.m, "h": pb.h, "o": pb.o, "B": pb.B,
                                                "B_jac": pb.B_jac, "n": pb.n}, **r}
        entry["targets"] = []
        limit = GRADIENT_LIMITS[len(out["problems"])]
        for task, desc, fn in [_gradient_target(limit)] + COMMON_TARGETS:
            value, passed = fn(r["medians"])
            entry["targets"].append({"task": task, "target": desc, "value": value, "passed": passed})
        if pb.n <= MATRIX_MAX_N:
            peak, size = hessian_peak_memory(pb)
            entry["hessian_peak_bytes"], entry["hessian_bytes"] = peak, size
            entry["targets"].append({"task": "hessian", "target": "peak memory / matrix size < 4",
                                     "value": peak / size, "passed": bool(peak / size < 4)})
        out["problems"].append(entry)
    return out


def main_sweep(args):
    """Time against the hidden width h (B = 256) and the batch B (h = 32)."""
    sweep = {"width": [], "batch": []}
    for h in (8, 16, 32, 64):
        pb = Problem(64, h, 10, B=256)
        print(pb.label(), flush=True)
        sweep["width"].append({"h": h, "B": 256, "n": pb.n,
                               **bench_problem(pb, args.repeats, sweep=True)})
    for B in (32, 128, 512):
        pb = Problem(64, 32, 10, B=B)
        print(pb.label(), flush=True)
        sweep["batch"].append({"h": 32, "B": B, "n": pb.n,
                               **bench_problem(pb, args.repeats, sweep=True)})
    return sweep


def plot_sweep(sweep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(TASKS), figsize=(3.2 * len(TASKS), 6.4))
    for row, (key, xname, xlabel) in enumerate((("width", "n", "parameters n (width h varies, B = 256)"),
                                                 ("batch", "B", "batch size B (n = 2410)"))):
        for col, task in enumerate(TASKS):
            ax = axes[row, col]
            backends = sorted({b for e in sweep[key] for b in e["medians"].get(task, {})})
            for b in backends:
                pts = [(e[xname], e["medians"][task][b]) for e in sweep[key]
                       if b in e["medians"].get(task, {})]
                if pts:
                    x, y = zip(*pts)
                    ax.loglog(x, 1e3 * np.array(y), "o-", label=b, ms=3)
            ax.set_title(task, fontsize=9)
            ax.set_xlabel(xlabel if col == 0 else xname, fontsize=8)
            ax.set_ylabel("median time (ms)", fontsize=8)
            ax.tick_params(labelsize=7)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true", help="also sweep width and batch size, plot")
    ap.add_argument("--sweep-only", action="store_true", help="only the sweep (no table)")
    ap.add_argument("--repeats", type=int, default=101, help="most timed samples per cell (default 101)")
    ap.add_argument("--out", default=os.path.join("_build", "bench"), help="output folder")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.sweep_only:
        args.sweep = True
    else:
        res = main_run(args)
        text = table(res)
        print()
        print(text)
        path = os.path.join(args.out, "results.json")
        with open(path, "w") as fh:
            json.dump(_jsonable(res), fh, indent=1)
        print(f"wrote {path}")
    if args.sweep:
        sweep = main_sweep(args)
        path = os.path.join(args.out, "sweep.json")
        with open(path, "w") as fh:
            json.dump(_jsonable({"machine": machine(), **sweep}), fh, indent=1)
        print(f"wrote {path}")
        plot_sweep(sweep, os.path.join(args.out, "sweep.png"))


if __name__ == "__main__":
    main()
