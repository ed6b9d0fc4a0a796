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


# ---------------------------------------------------------------- K-FAC
class KFAC(_Damped):
    """K-FAC (Martens and Grosse 2015): a Gauss-Newton step whose curvature is
    block-diagonal over the Linear layers, each block a Kronecker product inverted
    through its two small factors.

    Layer l (W (o, m) row-major, then b (o,): the slice start:stop of w) has the factors
    of ``minigrad.operators.kfac_factors`` on the curvature batch: A (m+1, m+1) of the
    inputs abar = [a; 1] and S (o, o) of the output side, with G_l ~ S (x) A in minigrad's
    order (``operators.kron_block``). Factored Tikhonov damping (their section 6.3)
    replaces G_l + lambda I by

        (S + gamma / pi I) (x) (A + pi gamma I),   gamma = sqrt(lambda),
        pi = sqrt( (tr A / (m+1)) / (tr S / o) )   (1 when a trace is 0),

    which contains lambda I and two cross terms, and whose inverse is the Kronecker
    product of the two inverses. With the layer's gradient as a matrix
    Gr = [grad W, grad b] (o, m+1), the step is two small solves per layer:

        D_l = -lr (S + gamma / pi I)^(-1) Gr (A + pi gamma I)^(-1)   (o, m+1),

    d (n,) the D_l flattened back (W row-major, the last column to b). Factors are
    exponential averages over steps, A_k = e A_(k-1) + (1 - e) A_new with
    e = min(1 - 1/k, ``factor_decay``) at the k-th step (0: fresh factors every step).

    The rest is the ``_Damped`` loop shared with ``HessianFree``: rho compares the
    decrease with the undamped Gauss-Newton model g^T d + d^T G d / 2 (G on the curvature
    batch, one product ``ggn_vp``, as Martens and Grosse use the exact curvature for rho);
    lambda follows ``lm_update`` when ``adapt``, else stays fixed; a step that does not
    lower the loss is rejected (or shortened, with ``line_search``).

    Work per step, in passes over the batch given (``COST``): the loss at w (0.5, reused
    when the batch and w are those of the last step) and at w + d (0.5), the gradient (1),
    and on the curvature batch (a share b / B of it) the factors, counted as one gradient
    per output of the network (o backward passes give S exactly; Martens and Grosse sample
    one target instead, with noise), and the product G d (2). Every parametrised module
    must be a Linear layer.
    """

    def __init__(self, model, loss, lr=1.0, damping=1e-2, adapt=True, line_search=False,
                 curvature_batch=None, factor_decay=0.0, seed=0):
        if not damping > 0:
            raise ValueError(f"KFAC: damping must be > 0 (the factor S of a softmax output is "
                             f"singular), got {damping}")
        if not lr > 0:
            raise ValueError(f"KFAC: lr must be > 0, got {lr}")
        if not 0 <= factor_decay < 1:
            raise ValueError(f"KFAC: factor_decay must be in [0, 1), got {factor_decay}")
        if curvature_batch is not None and (int(curvature_batch) != curvature_batch
                                            or curvature_batch < 1):
            raise ValueError(f"KFAC: curvature_batch must be a positive integer or None, "
                             f"got {curvature_batch}")
        super().__init__(model, loss, damping, adapt, line_search)
        self.lr, self.curvature_batch, self.factor_decay = float(lr), curvature_batch, \
            float(factor_decay)
        self.rng, self.factors, self.updates = np.random.default_rng(seed), None, 0
        self._check_layers()

    def _check_layers(self):
        from .layers import Linear                # the same test kfac_factors makes, at once
        from .losses import Loss
        from .module import Module
        if not isinstance(self.model, Module):
            raise ValueError(f"KFAC: model must be a minigrad Module, got "
                             f"{type(self.model).__name__}")
        if not isinstance(self.loss, Loss):
            raise ValueError(f"KFAC: loss must be a minigrad Loss, got {type(self.loss).__name__}")
        leaves = getattr(self.model, "modules", [self.model])
        for k, mod in enumerate(leaves):
            if mod.num_params and not isinstance(mod, Linear):
                raise ValueError(f"KFAC: module {k} ({type(mod).__name__}) has parameters but "
                                 f"is not a Linear layer; K-FAC's factors need Linear layers")

    def _update_factors(self, Xc, Tc, share):
        """Average in the factors of the curvature batch; returns [(start, stop, A, S)]."""
        from .operators import kfac_factors       # here: operators imports the package
        o = self.model(Xc[:1]).shape[-1]          # the network's outputs: o backward passes
        new = kfac_factors(self.model, self.loss, Xc, Tc)
        self.passes += COST["grad"] * o * share
        self.updates += 1
        e = min(1.0 - 1.0 / self.updates, self.factor_decay)
        if self.factors is None:
            self.factors = [(start, stop, A, S) for start, stop, A, S, _, _ in new]
        else:
            self.factors = [(start, stop, e * A0 + (1 - e) * A, e * S0 + (1 - e) * S)
                            for (start, stop, A0, S0), (_, _, A, S, _, _) in
                            zip(self.factors, new)]
        return self.factors

    def damped_factors(self, A, S):
        """The factored Tikhonov damping of one layer: (S + gamma/pi I, A + pi gamma I)
        with gamma = sqrt(lambda) and pi = sqrt((tr A / dim A) / (tr S / dim S))."""
        gamma = np.sqrt(self.damping)
        tA, tS = np.trace(A) / A.shape[0], np.trace(S) / S.shape[0]
        pi = np.sqrt(tA / tS) if tA > 0 and tS > 0 else 1.0
        return S + gamma / pi * np.eye(S.shape[0]), A + pi * gamma * np.eye(A.shape[0])

    def _direction(self, X, T, g):
        B = len(X)
        b = B if self.curvature_batch is None else min(int(self.curvature_batch), B)
        rows = self.rng.choice(B, b, replace=False) if b < B else slice(None)
        Xc, Tc, share = X[rows], T[rows], b / B
        d = np.zeros_like(g)
        for start, stop, A, S in self._update_factors(Xc, Tc, share):
            o, m1 = S.shape[0], A.shape[0]
            Gr = np.hstack([g[start:start + o * (m1 - 1)].reshape(o, m1 - 1),
                            g[start + o * (m1 - 1):stop, None]])           # [grad W, grad b]
            S_d, A_d = self.damped_factors(A, S)
            D = -self.lr * np.linalg.solve(A_d, np.linalg.solve(S_d, Gr).T).T  # A_d symmetric
            d[start:stop] = np.concatenate([D[:, :-1].ravel(), D[:, -1]])
        self.passes += COST["ggn_vp"] * share
        Gd = ggn_vp(self.model, self.loss, Xc, Tc, d)
        return d, float(d @ Gd), {"factor_updates": self.updates}


__all__ += ["KFAC"]                               # kept with its block at the end of the module
