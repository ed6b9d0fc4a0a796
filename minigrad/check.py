"""Check a module's or a loss's derivatives against central finite differences
and, when a reference function is given, against autograd.

Each comparison reports its largest error and where it is, as
``torch.autograd.gradcheck`` does; a learner checks a new module in one call::

    report = check_module(MyActivation(), X)
    print(report)            # one line per derivative, OK or FAILED
    assert report.ok
"""
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_batch

__all__ = ["CheckReport", "Comparison", "check_module", "check_loss", "check_model",
           "compare", "FD_TOL", "AUTOGRAD_TOL"]

#: tolerance against central differences (their own error is about eps^2 and 1e-16/eps)
FD_TOL = 1e-5
#: tolerance against autograd (both exact up to rounding)
AUTOGRAD_TOL = 1e-10
EPS = 1e-5


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

    @property
    def ok(self):
        return not self.missing and self.max_error <= self.tol

    def __str__(self):
        if self.missing:
            return f"{self.name:<22} vs {self.reference:<9} not implemented yet ({self.missing})"
        status = "OK    " if self.ok else "FAILED"
        line = (f"{self.name:<22} vs {self.reference:<9} {status} largest error "
                f"{self.max_error:.1e} at {self.name}{list(self.where)}")
        if not self.ok:
            line += f": got {self.got:.6g}, expected {self.want:.6g}"
        return line


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

    @property
    def worst(self):
        """The comparison with the largest error relative to its tolerance."""
        return max(self.comparisons, key=lambda c: np.inf if c.missing else c.max_error / c.tol)

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
    """Compare two arrays of the same shape; return a Comparison."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return Comparison(name, reference, np.inf, (), tol,
                          missing=f"shape {got.shape}, expected {want.shape}")
    if got.size == 0:
        return Comparison(name, reference, 0.0, (), tol)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    err = np.where(np.isnan(err), np.inf, err)
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    return Comparison(name, reference, float(err[where]), tuple(int(i) for i in where), tol,
                      float(got[where]), float(want[where]))


def _attempt(name, reference, fn, tol):
    """Run fn(); a NotImplementedError becomes a 'not implemented yet' line."""
    try:
        return fn()
    except NotImplementedError as exc:
        return Comparison(name, reference, np.inf, (), tol, missing=str(exc) or name)


# ------------------------------------------------------------------ modules
def _fd_jacobians(module, X, eps):
    """Central-difference J_x (B, o, m) and J_theta (B, o, p) of a module at X.
    Samples are independent, so one input column is perturbed for all at once."""
    B, m = X.shape
    cols = []
    for j in range(m):
        E = np.zeros_like(X)
        E[:, j] = eps
        cols.append((module(X + E) - module(X - E)) / (2 * eps))
    Jx = np.stack(cols, axis=2)
    pcols = []
    for P in module.params.values():
        flat = P.reshape(-1)
        for q in range(flat.size):
            old = flat[q]
            flat[q] = old + eps
            up = module(X)
            flat[q] = old - eps
            down = module(X)
            flat[q] = old
            pcols.append((up - down) / (2 * eps))
    Jt = np.stack(pcols, axis=2) if pcols else np.zeros(Jx.shape[:2] + (0,))
    module(X)                                   # restore the cached input
    return Jx, Jt


def _fd_curvature(module, X, G, eps):
    """sum_k G_k hess_x(y_k) per sample by central differences of the exact
    Jacobian-free forward map: (B, m, m)."""
    def phi(Z):
        return np.sum(G * module(Z), axis=1)
    B, m = X.shape
    C = np.zeros((B, m, m))
    for i in range(m):
        for j in range(m):
            Ei, Ej = np.zeros_like(X), np.zeros_like(X)
            Ei[:, i], Ej[:, j] = eps, eps
            C[:, i, j] = (phi(X + Ei + Ej) - phi(X + Ei - Ej) - phi(X - Ei + Ej)
                          + phi(X - Ei - Ej)) / (4 * eps * eps)
    module(X)
    return C


def _autograd_jacobians(reference, X, params):
    """Exact J_x (B, o, m), J_theta (B, o, p) and the x-curvature function
    from a reference y = reference(X, *params) written with autograd.numpy."""
    import autograd
    import autograd.numpy as anp

    B, m = X.shape
    shapes = [P.shape for P in params]
    sizes = [P.size for P in params]

    def unflat(theta):
        out, k = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(anp.reshape(theta[k:k + size], shape))
            k += size
        return out

    theta0 = np.concatenate([P.ravel() for P in params]) if params else np.zeros(0)
    Jx_full = autograd.jacobian(lambda Z: reference(Z, *params))(X)          # (B, o, B, m)
    Jx = np.einsum("bobm->bom", Jx_full)
    if params:
        Jt = autograd.jacobian(lambda th: reference(X, *unflat(th)))(theta0)  # (B, o, p)
    else:
        Jt = np.zeros(Jx.shape[:2] + (0,))

    def curvature(G):
        H = autograd.hessian(lambda Z: anp.sum(G * reference(Z, *params)))(X)  # (B, m, B, m)
        return np.einsum("bibj->bij", H)
    return Jx, Jt, curvature


def check_module(module, X, reference=None, *, rng=0, eps=EPS, fd_tol=FD_TOL,
                 autograd_tol=AUTOGRAD_TOL):
    """Check every derivative a module provides, at the batch X (B, m).

    Compared with central finite differences (tolerance ``fd_tol``) and, if
    ``reference(X, *params) -> Y`` is given (written with ``autograd.numpy``),
    with autograd (tolerance ``autograd_tol``): the input and parameter
    Jacobians, the VJP and the parameter gradients, the JVP, the identity
    <u, J v> = <J^T u, v>, and the curvature sum_k g_k hess_x(y_k) used by
    ``backward_second``. Returns a CheckReport; missing methods are reported as
    not implemented yet.
    """
    rng = np.random.default_rng(rng)
    X = as_batch(X, f"check_module({module!r})", module.in_features, name="X")
    Y = module(X)
    B, m = X.shape
    o, p = Y.shape[1], module.num_params
    G = rng.standard_normal((B, o))
    dX = rng.standard_normal((B, m))
    dth = [rng.standard_normal(P.shape) for P in module.params.values()]
    dth_flat = np.concatenate([d.ravel() for d in dth]) if dth else np.zeros(0)

    refs = [("finite-d", fd_tol, *_fd_jacobians(module, X, eps),
             lambda Gw: _fd_curvature(module, X, Gw, 1e-4))]
    if reference is not None:
        refs.append(("autograd", autograd_tol,
                     *_autograd_jacobians(reference, X, list(module.params.values()))))
    report = CheckReport(repr(module))
    for ref_name, tol, Jx, Jt, curv in refs:
        fd_scale = 100 if ref_name == "finite-d" else 1   # second differences lose digits
        add = report.comparisons.append
        add(_attempt("input_jacobian", ref_name,
                     lambda: compare("input_jacobian", module.input_jacobian(), Jx, tol, ref_name), tol))
        if p:
            add(_attempt("param_jacobian", ref_name,
                         lambda: compare("param_jacobian", module.param_jacobian(), Jt, tol, ref_name), tol))

        def vjp_x():
            return compare("vjp (input)", module.vjp(G)[0], np.einsum("bom,bo->bm", Jx, G), tol, ref_name)
        add(_attempt("vjp (input)", ref_name, vjp_x, tol))
        if p:
            def vjp_t():
                got = np.concatenate([g.ravel() for g in module.vjp(G)[1]])
                return compare("vjp (params)", got, np.einsum("bop,bo->p", Jt, G), tol, ref_name)
            add(_attempt("vjp (params)", ref_name, vjp_t, tol))

        def jvp():
            want = np.einsum("bom,bm->bo", Jx, dX) + Jt @ dth_flat
            return compare("jvp", module.jvp(dX, dth if p else None), want, tol, ref_name)
        add(_attempt("jvp", ref_name, jvp, tol))

        def curvature():
            got = module.backward_second(G, np.zeros((B, o, o)))[1]
            return compare("curvature (x, x)", got, curv(G), tol * fd_scale, ref_name)
        add(_attempt("curvature (x, x)", ref_name, curvature, tol * fd_scale))

    def duality():
        # <G, J v> = <J^T G, v>: VJP and JVP describe the same Jacobian
        left = np.sum(G * module.jvp(dX, dth if p else None))
        GX, gt = module.vjp(G)
        right = np.sum(GX * dX) + sum(np.sum(g * d) for g, d in zip(gt, dth))
        return compare("<u, J v> = <J^T u, v>", left, right, autograd_tol * 100, "itself")
    report.comparisons.append(_attempt("<u, J v> = <J^T u, v>", "itself", duality, 1e-8))
    return report


# ------------------------------------------------------------------- losses
def check_loss(loss, Y, T, reference=None, *, eps=EPS, fd_tol=FD_TOL, autograd_tol=AUTOGRAD_TOL):
    """Check a loss's gradient (B, o) and per-sample Hessians (B, o, o) at (Y, T)
    against finite differences and, if ``reference(Y, T) -> scalar batch loss``
    is given (autograd.numpy, T as one-hot rows), against autograd."""
    value = loss(Y, T)
    Y, Trows = loss.Y, loss.T
    B, o = Y.shape
    report = CheckReport(repr(loss))

    def f(Z):
        return float(np.mean(loss.value_per_sample(Z, Trows)))
    g_fd = np.zeros_like(Y)
    H_fd = np.zeros((B, o, o))
    for i in range(o):
        E = np.zeros_like(Y)
        E[:, i] = eps
        # per-sample values are independent, so perturb column i of every row
        up, down = loss.value_per_sample(Y + E, Trows), loss.value_per_sample(Y - E, Trows)
        g_fd[:, i] = (up - down) / (2 * eps) / B
        # second differences of the value alone, so a wrong gradient cannot hide here
        h = 1e-4
        for j in range(o):
            Ei, Ej = np.zeros_like(Y), np.zeros_like(Y)
            Ei[:, i], Ej[:, j] = h, h
            v = [loss.value_per_sample(Y + si * Ei + sj * Ej, Trows)
                 for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
            H_fd[:, i, j] = (v[0] - v[1] - v[2] + v[3]) / (4 * h * h) / B
    loss(Y, T)
    refs = [("finite-d", fd_tol, value, g_fd, H_fd)]
    if reference is not None:
        import autograd
        val = float(reference(Y, Trows))
        g_ag = autograd.grad(lambda Z: reference(Z, Trows))(Y)
        H_full = autograd.hessian(lambda Z: reference(Z, Trows))(Y)        # (B, o, B, o)
        refs.append(("autograd", autograd_tol, val, g_ag, np.einsum("bibj->bij", H_full)))
    for ref_name, tol, val, g, H in refs:
        add = report.comparisons.append
        if ref_name == "autograd":
            add(compare("value", value, val, tol, ref_name))
        add(_attempt("gradient", ref_name, lambda: compare("gradient", loss.backward(), g, tol, ref_name), tol))
        htol = tol * (100 if ref_name == "finite-d" else 1)      # second differences lose digits
        add(_attempt("hessian", ref_name, lambda: compare("hessian", loss.hessian(), H, htol, ref_name), htol))
    return report


# -------------------------------------------------------------------- models
def check_model(model, loss, X, T, *, rng=0, eps=EPS, fd_tol=FD_TOL):
    """Check ``grad``, ``hvp`` and ``ggn_vp`` of a whole model against central
    differences of the loss (and of ``grad``), in one random direction."""
    from .derivatives import ggn_vp, grad, hvp, parameters_to_vector, vector_to_parameters
    from .derivatives import jacobian

    rng = np.random.default_rng(rng)
    w = parameters_to_vector(model)
    v = rng.standard_normal(w.shape)

    def L(wv):
        vector_to_parameters(wv, model)
        return loss(model(X), T)
    g_fd = np.array([(L(w + eps * e) - L(w - eps * e)) / (2 * eps) for e in np.eye(w.size)])
    vector_to_parameters(w + eps * v, model)
    gp = grad(model, loss, X, T)
    vector_to_parameters(w - eps * v, model)
    gm = grad(model, loss, X, T)
    vector_to_parameters(w, model)
    Hv_fd = (gp - gm) / (2 * eps)
    J = jacobian(model, X)
    loss(model(X), T)
    Gv_ref = np.einsum("bon,bop,bp->n", J, loss.hessian(), np.einsum("bpn,n->bp", J, v))
    report = CheckReport(f"{model!r} with {loss!r}")
    report.comparisons += [
        compare("grad", grad(model, loss, X, T), g_fd, fd_tol, "finite-d"),
        compare("hvp", hvp(model, loss, X, T, v), Hv_fd, fd_tol, "finite-d"),
        compare("ggn_vp", ggn_vp(model, loss, X, T, v), Gv_ref, AUTOGRAD_TOL, "J^T H J v"),
    ]
    return report
