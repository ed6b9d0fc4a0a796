"""Check a module's or a loss's derivatives against central finite differences
and, given a reference function, autograd: every protocol method, each curvature
block included, with its largest error and where (as ``torch.autograd.gradcheck``):

    print(check_module(MyActivation(), X))   # a line per method: OK, FAILED, ...

A method the module does not give is checked as derived from those it gives; one
that cannot be derived is "not implemented yet", one that returns the wrong shape
"wrong shape", one that raises "raised"; none of these is OK.
"""
from dataclasses import dataclass, field

import numpy as np

from ._validate import ShapeError, as_batch, generator, returned
from .module import flatten, unflatten

__all__ = ["CheckReport", "Comparison", "check_module", "check_loss", "check_model",
           "compare", "FD_TOL", "FD2_TOL", "AUTOGRAD_TOL"]

#: tolerance against central differences of first derivatives (error ~ eps^2 and 1e-16/eps)
FD_TOL = 1e-5
#: tolerance against second differences (error ~ h^2 and 1e-16/h^2 with h = 1e-4)
FD2_TOL = 1e-3
#: tolerance against autograd (both exact up to rounding)
AUTOGRAD_TOL = 1e-10
EPS = 1e-5
EPS2 = 1e-4


@dataclass
class Comparison:
    """One derivative compared with a reference. The error of an entry is
    |got - want| / max(1, |want|); ``where`` is the index of the largest one."""
    name: str
    reference: str
    max_error: float
    where: tuple
    tol: float
    got: float = float("nan")
    want: float = float("nan")
    missing: str = ""
    problem: str = "not implemented yet"            # or "wrong shape", "raised"

    @property
    def ok(self):
        return not self.missing and self.max_error <= self.tol

    def __str__(self):
        if self.missing:
            return f"{self.name:<18} vs {self.reference:<9} {self.problem} ({self.missing})"
        line = (f"{self.name:<18} vs {self.reference:<9} {'OK    ' if self.ok else 'FAILED'} "
                f"largest error {self.max_error:.1e} at {self.name}{list(self.where)}")
        return line + ("" if self.ok else f": got {self.got:.6g}, expected {self.want:.6g}")


@dataclass
class CheckReport:
    """All comparisons of one check call; ``ok`` when every one passed."""
    subject: str
    comparisons: list = field(default_factory=list)

    @property
    def ok(self):
        return all(c.ok for c in self.comparisons)

    @property
    def max_error(self):
        return max((c.max_error for c in self.comparisons), default=0.0)

    def failed(self):
        """The names of the comparisons that did not pass."""
        return sorted({c.name for c in self.comparisons if not c.ok})

    def __str__(self):
        head = f"check of {self.subject}: {'all OK' if self.ok else 'FAILED'}"
        return "\n".join([head] + ["  " + str(c) for c in self.comparisons])

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def raise_if_failed(self):
        if not self.ok:
            raise AssertionError(str(self))
        return self


def compare(name, got, want, tol, reference):
    """Compare two arrays of the same shape; return a Comparison. None stands
    for a zero array (a module's zero block)."""
    want = np.asarray(want, dtype=float)
    got = np.zeros_like(want) if got is None else np.asarray(got, dtype=float)
    if got.shape != want.shape:
        return Comparison(name, reference, np.inf, (), tol, problem="wrong shape",
                          missing=f"shape {got.shape}, expected {want.shape}")
    if got.size == 0:
        return Comparison(name, reference, 0.0, (), tol)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    err = np.where(np.isnan(err), np.inf, err)
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    return Comparison(name, reference, float(err[where]), tuple(int(i) for i in where), tol,
                      float(got[where]), float(want[where]))


def _attempt(name, reference, tol, compute, want):
    """compare(name, compute(), want); a NotImplementedError becomes a 'not
    implemented yet' line, a ShapeError 'wrong shape' and any other exception
    'raised', each naming the cause."""
    try:
        got = compute()
        got = flatten(got) if isinstance(got, list) else got      # a list of arrays: one vector
    except NotImplementedError as exc:
        return Comparison(name, reference, np.inf, (), tol, missing=str(exc) or name)
    except Exception as exc:                          # noqa: BLE001 -- reported, not raised
        return Comparison(name, reference, np.inf, (), tol, missing=f"{type(exc).__name__}: {exc}",
                          problem="wrong shape" if isinstance(exc, ShapeError) else "raised")
    return compare(name, got, want, tol, reference)


# ------------------------------------------------------------------ modules
class _Perturbed:
    """y_b(x_b, theta) of a module at a perturbed input and parameter vector,
    restoring the parameters afterwards."""

    def __init__(self, module, X):
        self.module, self.X = module, X
        self.params = module.parameters()
        self.theta = flatten(self.params)

    def __call__(self, dX=0.0, dtheta=None):
        if dtheta is not None:
            for P, value in zip(self.params, unflatten(self.theta + dtheta, self.params)):
                P[...] = value
        try:
            return self.module(self.X + dX)
        finally:
            if dtheta is not None:
                for P, value in zip(self.params, unflatten(self.theta, self.params)):
                    P[...] = value


def _second(phi, a, b):
    """The mixed second difference of phi along the perturbations a and b, each
    (dX (B, m), dtheta (p,)): per sample, (B,)."""
    def at(sa, sb):
        return phi(sa * a[0] + sb * b[0], sa * a[1] + sb * b[1])
    return (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * EPS2 ** 2)


def _finite_differences(module, X, G):
    """References by central differences of the forward map alone (nothing the
    module derives): J_x (B, o, m), J_theta (B, o, p) and the curvature blocks
    C_xx (B, m, m), C_xp (B, m, p), C_pp (p, p) of phi = sum_k g_k y_k. Samples
    are independent, so one input column is perturbed for the whole batch.
    Costs about 4 (m + p)^2 forward calls: check small modules."""
    f = _Perturbed(module, X)
    (B, m), p = X.shape, f.theta.size

    def unit(j, q, h):                               # input column j or parameter q, by h
        E, e = np.zeros_like(X), np.zeros(p)
        if j is not None:
            E[:, j] = h
        else:
            e[q] = h
        return E, e

    def phi(dX, dtheta):                             # sum_k g_bk y_bk per sample: (B,)
        return np.sum(G * f(dX, dtheta), axis=1)

    def diff(j, q):
        return (f(*unit(j, q, EPS)) - f(*unit(j, q, -EPS))) / (2 * EPS)

    Jx = np.stack([diff(j, None) for j in range(m)], axis=2)
    Jt = np.stack([diff(None, q) for q in range(p)], axis=2) if p else np.zeros(Jx.shape[:2] + (0,))
    xs = [unit(j, None, EPS2) for j in range(m)]
    ts = [unit(None, q, EPS2) for q in range(p)]
    Cxx = np.stack([np.stack([_second(phi, a, b) for b in xs], axis=1) for a in xs], axis=1)
    Cxp = (np.stack([np.stack([_second(phi, a, b) for b in ts], axis=1) for a in xs], axis=1)
           if p else np.zeros((B, m, 0)))
    Cpp = np.array([[_second(phi, a, b).sum() for b in ts] for a in ts]).reshape(p, p)
    module(X)                                        # back to the input being checked
    return Jx, Jt, Cxx, Cxp, Cpp


def _autograd_references(reference, X, params, G):
    """The same five references, exact, from y = reference(X, *params) written
    with autograd.numpy."""
    import autograd
    import autograd.numpy as anp

    theta0 = flatten(params)

    def y(Z, theta):
        return reference(Z, *unflatten(theta, params))

    def Phi(Z, theta):                                # sum_b phi_b, a scalar
        return anp.sum(G * y(Z, theta))

    Jx = np.einsum("bobm->bom", autograd.jacobian(lambda Z: y(Z, theta0))(X))
    Cxx = np.einsum("bibj->bij", autograd.hessian(lambda Z: Phi(Z, theta0))(X))
    if not theta0.size:
        return Jx, np.zeros(Jx.shape[:2] + (0,)), Cxx, np.zeros(X.shape + (0,)), np.zeros((0, 0))
    Jt = autograd.jacobian(lambda th: y(X, th))(theta0)
    Cxp = autograd.jacobian(lambda th: autograd.grad(Phi)(X, th))(theta0)
    Cpp = autograd.hessian(lambda th: Phi(X, th))(theta0)
    return Jx, Jt, Cxx, Cxp, Cpp


def check_module(module, X, reference=None, *, rng=0, fd_tol=FD_TOL, fd2_tol=FD2_TOL,
                 autograd_tol=AUTOGRAD_TOL):
    """Check every protocol method of a module at the batch X (B, m) against central
    differences of ``forward`` (``fd_tol``; ``fd2_tol`` for second derivatives) and, given
    ``reference(X, *params) -> Y`` in ``autograd.numpy``, autograd (``autograd_tol``):
    Jacobians, VJPs, JVP, batched products, Gram block, the curvature blocks and their
    product, ``backward_second``, at random G, tangents and matrices. A CheckReport."""
    rng = generator(rng, "check_module")
    X = as_batch(X, f"check_module({module!r})", module.in_features, name="X")
    Y = module(X)
    (B, m), o, p = X.shape, Y.shape[1], module.num_params
    params = module.parameters()
    G = rng.standard_normal((B, o))
    A = rng.standard_normal((B, 2, o))
    H = rng.standard_normal((B, o, o))
    H = H + H.transpose(0, 2, 1)
    dX, dt = rng.standard_normal((B, m)), rng.standard_normal(p)
    dparams = unflatten(dt, params)

    refs = [("finite-d", fd_tol, fd2_tol, _finite_differences(module, X, G))]
    if reference is not None:
        refs.append(("autograd", autograd_tol, autograd_tol,
                     _autograd_references(reference, X, params, G)))
    report = CheckReport(repr(module))
    for name, tol, tol2, (Jx, Jt, Cxx, Cxp, Cpp) in refs:
        first = [
            ("input_jacobian", module.input_jacobian, Jx),
            ("param_jacobian", module.param_jacobian, Jt),
            ("vjp_input", lambda: module.vjp_input(G), np.einsum("bom,bo->bm", Jx, G)),
            ("vjp_params", lambda: flatten(returned(module, "vjp_params", "params", G)),
             np.einsum("bop,bo->p", Jt, G)),
            ("jvp", lambda: [module.jvp(dX, dparams), module.jvp(dX, None), module.jvp(None, dparams)],
             [np.einsum("bom,bm->bo", Jx, dX) + Jt @ dt, np.einsum("bom,bm->bo", Jx, dX), Jt @ dt]),
            ("vjp_input_many", lambda: module.vjp_input_many(A), A @ Jx),
            ("vjp_params_many", lambda: module.vjp_params_many(A), A @ Jt),
            ("vjp_params_sum", lambda: module.vjp_params_sum(A), np.sum(A @ Jt, axis=0)),
            ("gram_params", lambda: module.gram_params(H), np.einsum("bop,boq,bqr->pr", Jt, H, Jt)),
        ]
        Cx = np.einsum("bij,bj->bi", Cxx, dX) + Cxp @ dt
        Ct = np.einsum("bjq,bj->q", Cxp, dX) + Cpp @ dt
        second = [
            ("curvature_xx", lambda: module.curvature_xx(G), Cxx),
            ("curvature_xp", lambda: module.curvature_xp(G), Cxp),
            ("curvature_pp", lambda: module.curvature_pp(G), Cpp),
            ("curvature_vp", lambda: _curvature_products(module, G, dX, dparams),
             np.concatenate([Cx.ravel(), Ct, np.einsum("bij,bj->bi", Cxx, dX).ravel(),
                             np.einsum("bjq,bj->q", Cxp, dX), (Cxp @ dt).ravel(), Cpp @ dt])),
            ("backward_second", lambda: flatten(module.backward_second(G, H)),
             flatten([np.einsum("bom,bo->bm", Jx, G),
                      np.einsum("bom,boq,bqr->bmr", Jx, H, Jx) + Cxx])),
        ]
        for method, compute, want in first:
            if p or method in ("input_jacobian", "vjp_input", "jvp", "vjp_input_many"):
                report.comparisons.append(_attempt(method, name, tol, compute,
                                                   flatten(want) if isinstance(want, list) else want))
        for method, compute, want in second:
            if p or method in ("curvature_xx", "curvature_vp", "backward_second"):
                report.comparisons.append(_attempt(method, name, tol2, compute, want))
    return report


def _curvature_products(module, G, dX, dparams):
    """curvature_vp at (dx, dtheta), (dx, 0) and (0, dtheta), flattened in that
    order, each as (input part, parameter part)."""
    out = []
    for a, b in ((dX, dparams), (dX, None), (None, dparams)):
        sx, st = module._cvp(G, a, b)                 # checked: a list per parameter
        out += [np.ravel(sx), flatten(st)]
    return np.concatenate(out)


# ------------------------------------------------------------------- losses
def check_loss(loss, Y, T, reference=None, *, eps=EPS, fd_tol=FD_TOL, fd2_tol=FD2_TOL,
               autograd_tol=AUTOGRAD_TOL, rng=0):
    """Check a loss's gradient (B, o), per-sample Hessians (B, o, o) and Hessian-vector
    product at (Y, T) against finite differences of its value and, given ``reference(Y,
    T) -> batch loss`` (autograd.numpy, T as float rows), autograd."""
    value = loss(Y, T)
    Y, Trows = loss.Y, loss.T
    (B, o) = Y.shape
    dY = generator(rng, "check_loss").standard_normal((B, o))

    def values(Z):
        return loss.value_per_sample(Z, Trows) / B

    def unit(i, h):
        E = np.zeros_like(Y)
        E[:, i] = h
        return E
    # samples are independent, so column i of every row is perturbed at once
    g_fd = np.stack([(values(Y + unit(i, eps)) - values(Y - unit(i, eps))) / (2 * eps)
                     for i in range(o)], axis=1)
    H_fd = np.stack([np.stack([
        (values(Y + unit(i, EPS2) + unit(j, EPS2)) - values(Y + unit(i, EPS2) - unit(j, EPS2))
         - values(Y - unit(i, EPS2) + unit(j, EPS2)) + values(Y - unit(i, EPS2) - unit(j, EPS2)))
        / (4 * EPS2 ** 2) for j in range(o)], axis=1) for i in range(o)], axis=1)
    loss(Y, T)                                        # back to the point being checked
    refs = [("finite-d", fd_tol, fd2_tol, None, g_fd, H_fd)]
    if reference is not None:
        import autograd
        H_full = autograd.hessian(lambda Z: reference(Z, Trows))(Y)        # (B, o, B, o)
        refs.append(("autograd", autograd_tol, autograd_tol, float(reference(Y, Trows)),
                     autograd.grad(lambda Z: reference(Z, Trows))(Y),
                     np.einsum("bibj->bij", H_full)))
    report = CheckReport(repr(loss))
    for name, tol, tol2, val, g, H in refs:
        add = report.comparisons.append
        if val is not None:
            add(compare("value", value, val, tol, name))
        add(_attempt("gradient", name, tol, loss.backward, g))
        add(_attempt("hessian", name, tol2, loss.hessian, H))
        add(_attempt("hvp", name, tol2, lambda: loss.hvp(dY), np.einsum("bij,bj->bi", H, dY)))
    return report


# -------------------------------------------------------------------- models
def check_model(model, loss, X, T, *, rng=0, eps=EPS, fd_tol=FD_TOL):
    """Check ``grad``, ``hvp`` and ``ggn_vp`` of a whole model against central
    differences of the loss (and of ``grad``) and against J^T H J v built from
    ``jacobian``, in one random direction."""
    from .derivatives import (ggn_vp, grad, hvp, jacobian, parameters_to_vector,
                              vector_to_parameters)

    w = parameters_to_vector(model)
    v = generator(rng, "check_model").standard_normal(w.shape)

    def L(wv):
        vector_to_parameters(wv, model)
        return loss(model(X), T)

    def grad_at(wv):
        vector_to_parameters(wv, model)
        return grad(model, loss, X, T)
    g_fd = np.array([(L(w + eps * e) - L(w - eps * e)) / (2 * eps) for e in np.eye(w.size)])
    Hv_fd = (grad_at(w + eps * v) - grad_at(w - eps * v)) / (2 * eps)
    vector_to_parameters(w, model)
    J = jacobian(model, X)
    loss(model(X), T)
    Gv_ref = np.einsum("bon,bop,bp->n", J, loss.hessian(), J @ v)
    report = CheckReport(f"{model!r} with {loss!r}")
    report.comparisons += [
        compare("grad", grad(model, loss, X, T), g_fd, fd_tol, "finite-d"),
        compare("hvp", hvp(model, loss, X, T, v), Hv_fd, fd_tol, "finite-d"),
        compare("ggn_vp", ggn_vp(model, loss, X, T, v), Gv_ref, AUTOGRAD_TOL, "J^T H J v"),
    ]
    return report
