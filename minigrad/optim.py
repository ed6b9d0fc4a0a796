"""Training a model: gradient descent with momentum and damped Gauss-Newton.

Every optimiser works on the flat parameter vector w: (n,) of a model (module
order, each array row-major) and the batch loss C(w) = (1/B) sum_b L(N(x_b; w), t_b).
With g = grad C (n,) and G = (1/B) sum_b J_b^T h_b J_b (n, n) the Gauss-Newton
matrix, the methods are

- ``SGD``: the heavy ball, v <- mu v + g, w <- w - lr v;
- ``GaussNewton``: Hessian-free. Solve (G + lambda I) d = -g by conjugate
  gradients (``cg``), touching G only through products G v (``ggn_vp``);
  adapt lambda from the ratio rho of the actual to the predicted reduction
  (Levenberg-Marquardt);
- ``Newton``: the same damped step with the full (n, n) Gauss-Newton matrix or
  Hessian and a dense solve: exact, and only for tiny models.

``train`` runs any of them for a number of iterations and records the loss and
the wall-clock time.
"""
import time

import numpy as np

from .derivatives import gauss_newton, ggn_vp, grad, hessian, parameters_to_vector, \
    vector_to_parameters
from ._validate import as_batch
from .losses import Loss
from .module import Module

__all__ = ["cg", "SGD", "GaussNewton", "Newton", "train",
           "CG_TOL", "RHO_LOW", "RHO_HIGH", "DAMPING_DOWN", "DAMPING_UP"]

#: default relative residual ||A x - b|| / ||b|| at which conjugate gradients stops
CG_TOL = 1e-10
#: Levenberg-Marquardt: below RHO_LOW the quadratic model was too optimistic
#: (raise the damping), above RHO_HIGH it was good (lower the damping)
RHO_LOW, RHO_HIGH = 0.25, 0.75
#: the factors applied to the damping (Martens' rule: 2/3 down, 3/2 up)
DAMPING_DOWN, DAMPING_UP = 2.0 / 3.0, 3.0 / 2.0


def _check_model_and_loss(model, loss, who):
    if not isinstance(model, Module):
        raise ValueError(f"{who}: model must be a minigrad Module (a layer or a Sequential), "
                         f"got {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise ValueError(f"{who}: loss must be a minigrad Loss (for example "
                         f"minigrad.MSELoss()), got {type(loss).__name__}")
    if model.num_params == 0:
        raise ValueError(f"{who}: the model has no parameters to train")


def _number(value, who, name, low=None, strict=False, high=None):
    """A real float, checked against low (strict or not) and high (exclusive)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value):
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f"{who}: {name} must be {'>' if strict else '>='} {low:g}, got {value:g}")
    if high is not None and value >= high:
        raise ValueError(f"{who}: {name} must be < {high:g}, got {value:g}")
    return value


def _count(value, who, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def cg(matvec, b, x0=None, tol=CG_TOL, maxiter=None):
    """Solve A x = b by conjugate gradients, for a symmetric A given as a product.

    ``matvec(v)`` returns A v: (n,) for v: (n,); A is never formed. ``b``: (n,).
    Starting from x0 (zeros by default), each iteration makes the residual
    r = b - A x orthogonal to all earlier search directions p, which are
    A-conjugate (p_i^T A p_j = 0 for i != j):

        alpha = r^T r / p^T A p,  x += alpha p,  r -= alpha A p,
        beta = r_new^T r_new / r^T r,  p = r_new + beta p.

    For A symmetric positive definite the exact answer is reached in at most n
    steps, and x_k minimises the quadratic q(x) = x^T A x / 2 - b^T x over the
    first k directions. Stops when ||r|| <= tol ||b||, after ``maxiter`` steps
    (default n), or when p^T A p <= 0 (A not positive definite along p: the
    iterate so far is returned).

    Returns (x (n,), info) with info a dict: ``iterations``, ``residual``
    (the relative residual ||b - A x|| / ||b||, from the recurrence),
    ``converged`` (bool) and ``negative_curvature`` (bool).
    """
    who = "cg"
    if not callable(matvec):
        raise ValueError(f"{who}: matvec must be a function v -> A v, got {type(matvec).__name__}")
    b = np.asarray(b)
    if b.dtype.kind not in "fiu" or b.ndim != 1 or b.size == 0:
        raise ValueError(f"{who}: b must be a non-empty real vector (n,), got shape {b.shape} "
                         f"and dtype {b.dtype}")
    b = b.astype(np.float64)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{who}: b has a non-finite value")
    n = b.size
    tol = _number(tol, who, "tol", low=0.0)
    maxiter = n if maxiter is None else _count(maxiter, who, "maxiter")
    if x0 is None:
        x, r = np.zeros(n), b.copy()
    else:
        x = np.asarray(x0, dtype=np.float64).copy()
        if x.shape != (n,):
            raise ValueError(f"{who}: x0 must have the shape of b, ({n},), got {x.shape}")
        r = b - _apply(matvec, x, n)
    bnorm = np.linalg.norm(b)
    if bnorm == 0.0:                      # A x = 0 is solved by x = 0
        return np.zeros(n), {"iterations": 0, "residual": 0.0, "converged": True,
                             "negative_curvature": False}
    p, rr = r.copy(), r @ r
    k, negative = 0, False
    while k < maxiter and np.sqrt(rr) > tol * bnorm:
        Ap = _apply(matvec, p, n)
        pAp = p @ Ap
        if pAp <= 0.0:                    # not positive definite along p: stop here
            negative = True
            break
        alpha = rr / pAp
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        k += 1
    residual = float(np.sqrt(rr) / bnorm)
    return x, {"iterations": k, "residual": residual, "converged": residual <= tol,
               "negative_curvature": negative}


def _apply(matvec, v, n):
    Av = np.asarray(matvec(v), dtype=np.float64)
    if Av.shape != (n,):
        raise ValueError(f"cg: matvec must return a vector of shape ({n},), got {Av.shape}")
    return Av


class _Optimizer:
    """What every optimiser shares: the model, the loss and the flat w."""

    def __init__(self, model, loss):
        who = type(self).__name__
        _check_model_and_loss(model, loss, who)
        self.model, self.loss = model, loss

    def _batch(self, X, T):
        who = f"{type(self).__name__}.step"
        X = as_batch(X, who, self.model.in_features, name="X")
        return X, T

    def value(self, X, T):
        """The batch loss C(w) at the model's current parameters, a float."""
        X, T = self._batch(X, T)
        return self.loss(self.model(X), T)

    def value_and_grad(self, X, T):
        """(C(w), g): the batch loss and its gradient (n,), in one forward and
        one backward pass."""
        X, T = self._batch(X, T)
        g = grad(self.model, self.loss, X, T)       # the loss now caches Y and its targets
        value = float(np.mean(self.loss.value_per_sample(self.loss.Y, self.loss.T)))
        return value, g


class SGD(_Optimizer):
    """Gradient descent with (heavy-ball) momentum, on the batch it is given.

    With g = grad C(w): (n,), each step does

        v <- mu v + g,      w <- w - lr v,

    (the convention of ``torch.optim.SGD``); mu = 0 is plain gradient descent.
    Pass the whole training set for full-batch descent or a slice for a
    stochastic step.
    """

    def __init__(self, model, loss, lr, momentum=0.9):
        super().__init__(model, loss)
        self.lr = _number(lr, "SGD", "lr", low=0.0, strict=True)
        self.momentum = _number(momentum, "SGD", "momentum", low=0.0, high=1.0)
        self.v = np.zeros(model.num_params)

    def step(self, X, T):
        """One update. Returns a dict: ``loss`` (before the step) and
        ``grad_norm`` (||g||)."""
        value, g = self.value_and_grad(X, T)
        self.v = self.momentum * self.v + g
        w = parameters_to_vector(self.model)
        vector_to_parameters(w - self.lr * self.v, self.model)
        return {"loss": value, "grad_norm": float(np.linalg.norm(g))}


class _Damped(_Optimizer):
    """The Levenberg-Marquardt step both second-order methods share.

    Around w the loss is modelled by the quadratic

        C(w + d) ~ C(w) + g^T d + d^T A d / 2,      A = G (or H): (n, n),

    and the step solves (A + lambda I) d = -g. The damping lambda >= 0 keeps d
    where the model is trusted: large lambda gives a short gradient step
    d ~ -g / lambda, lambda = 0 the full (Gauss-)Newton step. After the step
    the ratio

        rho = (C(w) - C(w + d)) / (-(g^T d + d^T A d / 2))

    of the actual to the predicted reduction tells how good the model was:
    rho > RHO_HIGH lowers lambda (times DAMPING_DOWN), rho < RHO_LOW raises it
    (times DAMPING_UP) when ``adapt`` is on. A step that does not reduce the
    loss (rho <= 0) is rejected: w stays where it was.
    """

    def __init__(self, model, loss, damping, adapt):
        super().__init__(model, loss)
        who = type(self).__name__
        self.adapt = bool(adapt)
        self.damping = _number(damping, who, "damping", low=0.0, strict=self.adapt)

    def _curvature_product(self, X, T, v):
        raise NotImplementedError

    def _solve(self, X, T, g):
        raise NotImplementedError

    def step(self, X, T):
        """One damped step. Returns a dict: ``loss`` (before), ``new_loss``
        (after; the old value if the step was rejected), ``rho``, ``damping``
        (the lambda this step used), ``accepted`` and, for GaussNewton,
        ``cg_iterations``."""
        value, g = self.value_and_grad(X, T)
        w = parameters_to_vector(self.model)
        d, info = self._solve(X, T, g)
        predicted = -(g @ d + 0.5 * d @ self._curvature_product(X, T, d))
        vector_to_parameters(w + d, self.model)
        new_value = self.value(X, T)
        actual = value - new_value
        if predicted > 0.0:
            rho = actual / predicted
        else:       # the model promises no decrease (g = 0, or curvature not PSD)
            rho = 0.0 if actual == 0.0 else -np.inf
        accepted = bool(actual > 0.0)
        if not accepted:
            vector_to_parameters(w, self.model)
            new_value = value
        info.update({"loss": value, "new_loss": new_value, "rho": float(rho),
                     "damping": self.damping, "accepted": accepted})
        if self.adapt:
            if rho > RHO_HIGH:
                self.damping *= DAMPING_DOWN
            elif rho < RHO_LOW:
                self.damping *= DAMPING_UP
        return info


class GaussNewton(_Damped):
    """Hessian-free damped Gauss-Newton (Levenberg-Marquardt with CG).

    Each step solves (G + lambda I) d = -g: (n,) with ``cg``, where G v comes
    from ``ggn_vp`` (one forward pass of tangents and one backward pass; G is
    never formed), then updates lambda from rho (see ``_Damped``).
    ``cg_iters`` caps the CG iterations per step (truncated Newton): a few
    tens are enough far from the minimum. G is positive semi-definite whenever
    the loss Hessian h_L is (MSE, softmax cross-entropy), so with lambda > 0 the
    system is positive definite and CG is safe.

    ``damping=0`` with ``adapt=False`` is the undamped Gauss-Newton step.
    """

    def __init__(self, model, loss, damping=1.0, cg_iters=50, cg_tol=CG_TOL, adapt=True):
        super().__init__(model, loss, damping, adapt)
        self.cg_iters = _count(cg_iters, "GaussNewton", "cg_iters")
        self.cg_tol = _number(cg_tol, "GaussNewton", "cg_tol", low=0.0)

    def _curvature_product(self, X, T, v):
        return ggn_vp(self.model, self.loss, X, T, v)

    def _solve(self, X, T, g):
        lam = self.damping
        d, info = cg(lambda v: self._curvature_product(X, T, v) + lam * v, -g,
                     tol=self.cg_tol, maxiter=self.cg_iters)
        return d, {"cg_iterations": info["iterations"], "cg_residual": info["residual"]}


class Newton(_Damped):
    """Damped Newton or Gauss-Newton with the full (n, n) matrix, for tiny models.

    ``curvature="gauss_newton"`` uses G = ``gauss_newton(...)`` (PSD for MSE and
    softmax cross-entropy), ``"hessian"`` the exact Hessian H = ``hessian(...)``,
    which can be indefinite away from a minimum: then the step may point uphill,
    rho is negative and the damping grows until H + lambda I is positive
    definite enough. The step d solves (A + lambda I) d = -g with
    ``np.linalg.solve``: O(n^3) time and O(n^2) memory, so keep n in the hundreds.
    """

    CURVATURES = ("gauss_newton", "hessian")

    def __init__(self, model, loss, damping=0.0, curvature="gauss_newton", adapt=False):
        super().__init__(model, loss, damping, adapt)
        if curvature not in self.CURVATURES:
            raise ValueError(f"Newton: curvature must be one of {self.CURVATURES}, "
                             f"got {curvature!r}")
        self.curvature = curvature
        self._matrix = None

    def matrix(self, X, T):
        """The curvature matrix A (n, n) at the current parameters."""
        f = gauss_newton if self.curvature == "gauss_newton" else hessian
        return f(self.model, self.loss, X, T)

    def _curvature_product(self, X, T, v):
        return self._matrix @ v

    def _solve(self, X, T, g):
        self._matrix = self.matrix(X, T)
        A = self._matrix + self.damping * np.eye(g.size)
        try:
            d = np.linalg.solve(A, -g)
        except np.linalg.LinAlgError:
            raise ValueError(f"Newton: the {self.curvature} matrix plus damping "
                             f"{self.damping:g} is singular; use a positive damping") from None
        return d, {}


def train(optimizer, X, T, iterations, progress=False, desc=None):
    """Run ``optimizer.step(X, T)`` ``iterations`` times on the same batch.

    Returns a dict of arrays: ``loss`` (iterations + 1,), the loss before
    every step and after the last; ``time`` (iterations + 1,), the seconds of
    training spent when that loss was reached (time[0] = 0; the final loss
    evaluation is not counted); ``info``, the list of the steps' dicts.

    ``progress=True`` shows a tqdm progress bar (on stderr, in a terminal and
    in Jupyter); keep it off wherever the output is stored or compared.
    """
    if not isinstance(optimizer, _Optimizer):
        raise ValueError(f"train: optimizer must be SGD, GaussNewton or Newton, "
                         f"got {type(optimizer).__name__}")
    iterations = _count(iterations, "train", "iterations")
    steps = range(iterations)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc=desc or type(optimizer).__name__, leave=False)
    losses, times, infos = [], [0.0], []
    elapsed = 0.0
    for _ in steps:
        start = time.perf_counter()
        info = optimizer.step(X, T)
        elapsed += time.perf_counter() - start
        losses.append(info["loss"])
        times.append(elapsed)
        infos.append(info)
        if progress and len(infos) % 10 == 0:
            steps.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
    losses.append(optimizer.value(X, T))
    return {"loss": np.array(losses), "time": np.array(times), "info": infos}
