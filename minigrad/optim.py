"""Training a model: momentum, Adam, Hessian-free Gauss-Newton and dense Newton.

Every optimiser works on the flat parameter vector w: (n,) of a model (module
order, each array row-major) and the batch loss C(w) = (1/B) sum_b L(N(x_b; w), t_b)
of the batch given to ``step``. With g = grad C (n,) and G the Gauss-Newton
matrix (n, n):

- ``SGD``: heavy-ball momentum, v <- mu v + g, w <- w - lr v;
- ``Adam``: ``adam_update``, steps scaled by running moments of g;
- ``HessianFree``: Martens' damped Gauss-Newton with preconditioned conjugate
  gradients (``cg``) on products G v, never forming G;
- ``Newton``: the damped step with the dense Hessian H or G, for small models.

Each optimiser counts its work in ``passes``: gradient-equivalent passes over
the batch it is given, with the costs of ``COST`` scaled by the fraction of the
batch used. ``run`` trains for a budget of passes and records the curves.

The pieces are small functions, each tested on its own: ``cg``,
``progress_stalled`` (when to stop CG), ``diagonal_preconditioner``,
``lm_update`` (Levenberg-Marquardt damping), ``backtrack`` (Armijo line search)
and ``adam_update``.
"""
import os
import time

import numpy as np

from ._validate import finite_result, generator, number
from .derivatives import (gauss_newton, ggn_vp, grad, hessian, parameters_to_vector,
                          per_sample_grads, vector_to_parameters)

__all__ = ["COST", "CG_TOL", "PROGRESS_EPS", "cg", "progress_stalled", "diagonal_preconditioner",
           "lm_update", "backtrack", "adam_update", "SGD", "Adam", "HessianFree", "Newton", "run",
           "progress_default"]

#: cost of one call per sample, in gradients (a forward and a backward pass = 1): a value
#: is a forward pass; a Gauss-Newton-vector product adds tangents forward and a backward
#: pass (Martens: about two); the preconditioner's squared per-sample gradients come out
#: of one backward pass in a framework that keeps them (minigrad's are slower).
COST = {"value": 0.5, "grad": 1.0, "ggn_vp": 2.0, "diagonal": 1.0}
#: relative residual ||b - A x|| / ||b|| at which ``cg`` stops at the latest
CG_TOL = 1e-10
#: Martens' epsilon of the relative-progress test in ``progress_stalled``
PROGRESS_EPS = 5e-4


def progress_stalled(phi, eps=PROGRESS_EPS):
    """Martens' CG stopping test on the values phi[0..i] of the quadratic
    q(x) = x^T A x / 2 - b^T x at the iterates x_0..x_i (a sequence of floats).

    With k = max(10, i / 10), stop when i > k, phi[i] < 0 and the relative
    progress over the last k iterations, (phi[i - k] - phi[i]) / |phi[i]|, is
    below k * eps. Returns a bool.
    """
    i = len(phi) - 1
    k = max(10, int(0.1 * i))
    return i > k and phi[i] < 0 and (phi[i - k] - phi[i]) / -phi[i] < k * eps


def cg(matvec, b, x0=None, precond=None, maxiter=None, tol=CG_TOL, eps=None):
    """Solve A x = b (b (n,)) by preconditioned conjugate gradients; A symmetric, seen
    only through ``matvec(v)`` = A v (n,), which must be finite. ``x0`` warm-starts it
    (default zeros); ``precond``, a diagonal M (n,) > 0, makes CG work on M^(-1/2) A
    M^(-1/2). It stops at ||b - A x|| <= tol ||b||, after ``maxiter`` products (default
    n), at p^T A p <= 0 (negative curvature: the iterate so far is returned), or, with
    ``eps``, at ``progress_stalled(phi, eps)`` on phi, q(x) = x^T A x / 2 - b^T x.
    Returns (x (n,), info): ``iterations``, ``residual`` (relative), ``converged``,
    ``negative_curvature``, ``Ax`` (A x, kept without an extra product), ``phi``.
    """
    b = np.asarray(b, dtype=np.float64)
    if b.ndim != 1 or b.size == 0 or not np.all(np.isfinite(b)):
        raise ValueError(f"cg: b must be a non-empty finite vector (n,), got shape {b.shape}")
    n = b.size
    maxiter = n if maxiter is None else number(maxiter, "cg", "maxiter", integer=True, low_in=True)
    number(tol, "cg", "tol", low_in=True)
    M = np.ones(n) if precond is None else np.asarray(precond, dtype=np.float64)
    if M.shape != (n,) or not np.all(M > 0):
        raise ValueError(f"cg: precond must be a positive vector of shape ({n},)")

    def product(v):
        Av = np.asarray(matvec(v), dtype=np.float64)
        if Av.shape != (n,):
            raise ValueError(f"cg: matvec must return shape ({n},), got {Av.shape}")
        return finite_result(Av, "cg", "matvec(v)")

    x = np.zeros(n) if x0 is None else np.array(x0, dtype=np.float64)
    if x.shape != (n,):
        raise ValueError(f"cg: x0 must have shape ({n},), got {x.shape}")
    Ax = np.zeros(n) if x0 is None else product(x)
    r = b - Ax
    bnorm = np.linalg.norm(b)
    phi = [0.5 * x @ Ax - x @ b]
    z = r / M
    p, rz = z.copy(), r @ z
    k, negative = 0, False
    while k < maxiter and np.linalg.norm(r) > tol * bnorm:
        Ap = product(p)
        pAp = p @ Ap
        if pAp <= 0.0:
            negative = True
            break
        alpha = rz / pAp
        x, Ax, r = x + alpha * p, Ax + alpha * Ap, r - alpha * Ap
        k += 1
        phi.append(0.5 * x @ Ax - x @ b)
        if eps is not None and progress_stalled(phi, eps):
            break
        z = r / M
        rz, rz_old = r @ z, rz
        p = z + (rz / rz_old) * p
    residual = float(np.linalg.norm(r) / bnorm) if bnorm > 0 else 0.0
    return x, {"iterations": k, "residual": residual, "converged": residual <= tol,
               "negative_curvature": negative, "Ax": Ax, "phi": phi}


def diagonal_preconditioner(sample_grads, damping, exponent=0.75):
    """Martens' diagonal M = (mean_b g_b^2 + damping)^exponent: (n,), from the
    per-sample gradients ``sample_grads``: (B, n). The mean of the squared
    gradients is the diagonal of the empirical Fisher, a cheap stand-in for
    the scale of the curvature; the exponent below 1 tempers it."""
    s = np.asarray(sample_grads, dtype=np.float64)
    if s.ndim != 2 or damping < 0:
        raise ValueError(f"diagonal_preconditioner: sample_grads must be (B, n) and damping "
                         f">= 0, got shape {s.shape} and damping {damping}")
    return (np.mean(finite_result(s, "diagonal_preconditioner", "sample_grads") ** 2, axis=0)
            + damping) ** exponent


def lm_update(damping, rho, down=2.0 / 3.0, up=1.5, low=0.25, high=0.75):
    """Levenberg-Marquardt: the damping times ``down`` if rho > high (the
    quadratic model predicted the decrease well), times ``up`` if rho < low,
    else unchanged. rho = actual / predicted decrease."""
    return damping * down if rho > high else damping * up if rho < low else damping


def backtrack(f, C0, slope, alpha=1.0, shrink=0.8, c=1e-2, tries=20, f1=None):
    """Armijo backtracking along a direction d with slope = g^T d < 0.

    ``f(alpha)`` is the loss at w + alpha d, C0 = f(0). Tries alpha, alpha *
    shrink, ... until f(alpha) <= C0 + c alpha slope (a sufficient decrease),
    at most ``tries`` values (``f1`` = f(alpha) if already known). Returns
    (alpha, f(alpha), evaluations); alpha = 0 and C0 when none was enough.
    """
    evaluations = 0
    for k in range(tries):
        value = f1 if (k == 0 and f1 is not None) else f(alpha)
        evaluations += not (k == 0 and f1 is not None)
        if value <= C0 + c * alpha * slope:
            return alpha, value, evaluations
        alpha *= shrink
    return 0.0, C0, evaluations


def adam_update(w, m, v, g, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step (Kingma and Ba), all arrays (n,), t = 1, 2, ... the step:

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
        w <- w - lr m_hat / (sqrt(v_hat) + eps),
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)  (bias correction).

    Returns the new (w, m, v)."""
    number(t, "adam_update", "t (the step, counted from 1)", 1, low_in=True)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


class _Optimizer:
    """The model, the loss, and the work done so far in gradient passes."""

    def __init__(self, model, loss):
        self.model, self.loss, self.passes = model, loss, 0.0

    def _value(self, X, T, kind="value"):
        self.passes += COST[kind]
        return float(self.loss(self.model(X), T))

    def _grad(self, X, T):
        self.passes += COST["grad"]
        return grad(self.model, self.loss, X, T)

    def _at(self, w, X, T):
        """C(w) for a parameter vector w (one forward pass); the model keeps w."""
        vector_to_parameters(w, self.model)
        return self._value(X, T)


class SGD(_Optimizer):
    """Gradient descent with heavy-ball momentum (``torch.optim.SGD``'s form):
    v <- mu v + g, w <- w - lr v. mu = 0 is plain gradient descent."""

    def __init__(self, model, loss, lr, momentum=0.9):
        super().__init__(model, loss)
        number(lr, "SGD", "lr")
        number(momentum, "SGD", "momentum", 0, 1, low_in=True)
        self.lr, self.momentum, self.v = lr, momentum, 0.0

    def step(self, X, T):
        self.v = self.momentum * self.v + self._grad(X, T)
        vector_to_parameters(parameters_to_vector(self.model) - self.lr * self.v, self.model)
        return {}


class Adam(_Optimizer):
    """Adam with the defaults of its paper but the learning rate (``adam_update``)."""

    def __init__(self, model, loss, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(model, loss)
        number(lr, "Adam", "lr")
        number(beta1, "Adam", "beta1", 0, 1, low_in=True)
        number(beta2, "Adam", "beta2", 0, 1, low_in=True)
        number(eps, "Adam", "eps")
        self.lr, self.betas, self.eps = lr, (beta1, beta2), eps
        self.m, self.v = np.zeros(model.num_params), np.zeros(model.num_params)
        self.t = 0

    def step(self, X, T):
        g = self._grad(X, T)
        self.t += 1
        w, self.m, self.v = adam_update(parameters_to_vector(self.model), self.m, self.v, g,
                                        self.t, self.lr, *self.betas, self.eps)
        vector_to_parameters(w, self.model)
        return {}


class _Damped(_Optimizer):
    """The Levenberg-Marquardt loop both second-order methods share: d minimises
    g^T d + d^T (A + lambda I) d / 2 (A = G or H); with q(d) = g^T d + d^T A d / 2 < 0
    and rho = (C(w + d) - C(w)) / q(d), ``lm_update`` adapts lambda (if ``adapt``),
    ``backtrack`` shortens d to a sufficient decrease (if ``line_search``, else d is
    kept only if the loss fell). No decrease, or g^T d >= 0: rejected, w stays.
    C(w) of the last step is reused only for the same w, X and T (values compared).
    """

    def __init__(self, model, loss, damping, adapt, line_search):
        super().__init__(model, loss)
        number(damping, type(self).__name__, "damping", low_in=True)
        self.damping, self.adapt, self.line_search = float(damping), adapt, line_search
        self._last = (None, None)         # ((w, X, T) copied, C(w)) after a step: C0 of the next

    def step(self, X, T):
        w, X, T = parameters_to_vector(self.model), np.asarray(X), np.asarray(T)
        key = self._last[0]              # reused only for equal w, X and T (values, not objects)
        same = key is not None and all(a.shape == b.shape and np.array_equal(a, b)
                                       for a, b in zip(key, (w, X, T)))
        C0 = self._last[1] if same else self._value(X, T)
        g = self._grad(X, T)
        d, dAd, info = self._direction(X, T, g)
        predicted = g @ d + 0.5 * dAd
        C1 = self._at(w + d, X, T)
        rho = (C1 - C0) / predicted if predicted < 0 else -np.inf
        if g @ d >= 0:                    # not a descent direction: no step
            alpha, C_new = 0.0, C0
        elif self.line_search:
            alpha, C_new, _ = backtrack(lambda a: self._at(w + a * d, X, T), C0, g @ d, f1=C1)
        else:
            alpha, C_new = (1.0, C1) if C1 < C0 else (0.0, C0)
        vector_to_parameters(w + alpha * d, self.model)
        self._last = ((w + alpha * d, X.copy(), T.copy()), C_new)
        info.update(loss=C0, new_loss=C_new, rho=float(rho), damping=self.damping,
                    alpha=alpha, accepted=alpha > 0)
        if self.adapt:
            self.damping = lm_update(self.damping, rho)
        return info


class HessianFree(_Damped):
    """Martens' Hessian-free optimisation (2010) with the Gauss-Newton matrix. Each
    step: g on the whole batch, G on a random mini-batch of ``curvature_batch``
    samples (None: all), (G + lambda I) d = -g by ``cg`` with, each switchable, a warm
    start from ``decay`` times the last d, the ``diagonal_preconditioner`` and the
    ``progress_stalled`` stop (else ``cg_max`` products or CG_TOL); then ``_Damped``.
    """

    def __init__(self, model, loss, damping=1.0, cg_max=50, curvature_batch=None, warm_start=True,
                 precondition=True, progress_stop=True, adapt=True, line_search=True, decay=0.95,
                 seed=0):
        super().__init__(model, loss, damping, adapt, line_search)
        if curvature_batch is not None:
            number(curvature_batch, "HessianFree", "curvature_batch", 1, integer=True, low_in=True)
        self.cg_max, self.curvature_batch, self.decay = cg_max, curvature_batch, decay
        self.warm_start, self.precondition, self.progress_stop = warm_start, precondition, \
            progress_stop
        self.rng, self.d = generator(seed, "HessianFree", "seed"), None

    def _direction(self, X, T, g):
        B, lam = len(X), self.damping
        b = B if self.curvature_batch is None else min(self.curvature_batch, B)
        rows = self.rng.choice(B, b, replace=False) if b < B else slice(None)
        Xc, Tc, share = X[rows], T[rows], b / B

        def matvec(v):
            self.passes += COST["ggn_vp"] * share
            return ggn_vp(self.model, self.loss, Xc, Tc, v) + lam * v

        M = None
        if self.precondition:
            self.passes += COST["diagonal"] * share
            M = diagonal_preconditioner(per_sample_grads(self.model, self.loss, Xc, Tc), lam)
        x0 = self.decay * self.d if self.warm_start and self.d is not None else None
        d, info = cg(matvec, -g, x0=x0, precond=M, maxiter=self.cg_max,
                     eps=PROGRESS_EPS if self.progress_stop else None)
        self.d = d
        return d, d @ info["Ax"] - lam * d @ d, {"cg_iterations": info["iterations"]}


class Newton(_Damped):
    """The damped step with the dense Hessian (``curvature="hessian"``) or Gauss-Newton
    matrix (``"gauss_newton"``) by ``np.linalg.solve``: O(n^2) memory, O(n^3) time.
    Forming it counts as n Gauss-Newton-vector products. H can be indefinite: a
    step into negative curvature is kept if the loss falls."""

    def __init__(self, model, loss, damping=1.0, curvature="hessian", adapt=True,
                 line_search=True):
        super().__init__(model, loss, damping, adapt, line_search)
        if curvature not in ("hessian", "gauss_newton"):
            raise ValueError(f"Newton: curvature must be 'hessian' or 'gauss_newton', "
                             f"got {curvature!r}")
        self.curvature = curvature

    def _direction(self, X, T, g):
        A = (hessian if self.curvature == "hessian" else gauss_newton)(self.model, self.loss, X, T)
        self.passes += COST["ggn_vp"] * g.size
        d = np.linalg.solve(A + self.damping * np.eye(g.size), -g)
        return d, d @ A @ d, {}


def progress_default():
    """Whether ``run`` shows a progress bar by default: not under pytest (nbval) or with
    MINIGRAD_PROGRESS=0, where stored outputs would change on every run."""
    return os.environ.get("MINIGRAD_PROGRESS", "1") != "0" and "PYTEST_VERSION" not in os.environ


def run(optimizer, X, T, budget, record=None, points=50, progress=None, desc=None):
    """Train with ``optimizer.step(X, T)`` for ``budget`` gradient passes; returns a dict
    of arrays, one entry per record point (the start, every budget / ``points`` passes,
    the end): ``passes``, ``seconds`` (training only), ``loss`` and whatever
    ``record(model)`` returns (floats), plus ``info``, the list of every step's dict."""
    number(budget, "run", "budget")
    number(points, "run", "points", 1, integer=True, low_in=True)
    if progress is None:
        progress = progress_default()
    bar = None
    if progress:
        from tqdm import tqdm       # a text bar on stderr, in a terminal and in Jupyter
        bar = tqdm(total=budget, desc=desc or type(optimizer).__name__, leave=False, unit="pass")
    out, infos, seconds, next_point = {}, [], 0.0, budget / points

    def write():
        row = {"passes": optimizer.passes, "seconds": seconds,
               "loss": float(optimizer.loss(optimizer.model(X), T))}
        row.update(record(optimizer.model) if record else {})
        for key, value in row.items():
            out.setdefault(key, []).append(value)

    write()
    while optimizer.passes < budget:
        start = time.perf_counter()
        infos.append(optimizer.step(X, T))
        seconds += time.perf_counter() - start
        if optimizer.passes >= next_point or optimizer.passes >= budget:
            write()
            while next_point <= optimizer.passes:
                next_point += budget / points
        if bar is not None:
            bar.update(int(min(optimizer.passes, budget)) - bar.n)
    if bar is not None:
        bar.close()
    out = {key: np.array(value) for key, value in out.items()}
    out["info"] = infos
    return out
