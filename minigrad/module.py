"""The module protocol: a map y = f(x, theta) from a batch X (B, m) to Y (B, o)
that knows its first and second derivatives.

Notation used in every docstring: B samples, m inputs, o outputs, p parameters
of this module; J_x (o x m) and J_theta (o x p) are the per-sample Jacobians in
numerator layout (outputs x inputs). A subclass must provide ``forward`` and
either the explicit Jacobians or the products; every other method has a default
built from ``input_jacobian``, ``param_jacobian`` and ``second_contraction``.
"""
import numpy as np

from ._validate import as_batch, trusted_batch

__all__ = ["Module"]


def _flatten_into(arrays, out):
    """Write the arrays, each flattened row-major, one after another into the
    vector out (their total size)."""
    k = 0
    for a in arrays:
        out[k:k + a.size] = a.ravel()
        k += a.size


class Module:
    """Base class of every layer and activation.

    Parameters live in ``self.params`` (name -> array, in flattening order; each
    array flattens row-major); ``self.grads`` holds their accumulated gradients.
    Calling the module (``module(X)``) checks ``X`` and caches it: every
    derivative method below is evaluated at the last input.
    """

    #: number of input columns, or None for "any width" (activations)
    in_features = None

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.X = None

    # ----------------------------------------------------------- forward
    def __call__(self, X):
        if not trusted_batch(X, self.in_features):
            X = as_batch(X, repr(self), self.in_features)   # converts or raises
        self.X = X
        self._cache = None                # every call starts a fresh cache
        Y = self.forward(X)
        return Y

    def _cached(self, key, compute):
        """compute() once per input batch: the cache belongs to the array
        ``self.X`` and is dropped as soon as the module sees another input."""
        cache = self.__dict__.get("_cache")
        if cache is None or cache[None] is not self.X:
            cache = self.__dict__["_cache"] = {None: self.X}
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def forward(self, X):
        """Y = f(X): (B, m) -> (B, o)."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def out_features(self, m):
        """Output width for an input of width m (same width by default)."""
        return m

    # -------------------------------------------------------- parameters
    def parameters(self):
        """The parameter arrays, in flattening order."""
        return list(self.params.values())

    @property
    def num_params(self):
        """p, the number of scalar parameters."""
        return sum(P.size for P in self.params.values())

    def zero_grad(self):
        for name, P in self.params.items():
            self.grads[name] = np.zeros_like(P)

    def _split(self, theta):
        """Split a flat vector (p,) into arrays shaped like the parameters."""
        out, k = [], 0
        for P in self.params.values():
            out.append(theta[k:k + P.size].reshape(P.shape))
            k += P.size
        return out

    def _need_input(self):
        if self.X is None:
            raise ValueError(f"{self!r}: call the module on a batch before asking for derivatives")
        return self.X

    # ------------------------------------------------------- first order
    def input_jacobian(self):
        """J_x per sample: (B, o, m), J[b, i, j] = d y_bi / d x_bj."""
        raise NotImplementedError(f"{type(self).__name__}.input_jacobian")

    def param_jacobian(self):
        """J_theta per sample: (B, o, p), J[b, i, q] = d y_bi / d theta_q."""
        X = self._need_input()
        return np.zeros((X.shape[0], self.out_features(X.shape[1]), 0))

    def vjp(self, G):
        """Vector-Jacobian product at the cached input.

        G: (B, o), the gradient of a scalar w.r.t. Y.
        Returns (G_X, grads): G_X = J_x^T G per sample, (B, m), and the parameter
        gradients J_theta^T G summed over the batch, one array per parameter.
        """
        GX = np.einsum("bom,bo->bm", self.input_jacobian(), G)
        g = np.einsum("bop,bo->p", self.param_jacobian(), G)
        return GX, self._split(g)

    def backward(self, G):
        """Backpropagate G (B, o): accumulate parameter gradients, return G_X (B, m)."""
        GX, grads = self.vjp(G)
        for (name, P), g in zip(self.params.items(), grads):
            self.grads[name] = self.grads.get(name, np.zeros_like(P)) + g
        return GX

    def jvp(self, dX=None, dparams=None):
        """Jacobian-vector product (forward mode) at the cached input.

        dX: (B, m) or None (zero); dparams: arrays shaped like the parameters, or
        None (zero). Returns dY = J_x dX + J_theta dtheta, (B, o).
        """
        X = self._need_input()
        dY = np.zeros((X.shape[0], self.out_features(X.shape[1])))
        if dX is not None:
            dY = dY + np.einsum("bom,bm->bo", self.input_jacobian(), dX)
        if dparams is not None and self.num_params:
            theta = np.concatenate([d.ravel() for d in dparams])
            dY = dY + self.param_jacobian() @ theta
        return dY

    # ---------------------------- batched products (Jacobians, Hessians)
    def vjp_input_many(self, A):
        """J_x^T A per sample: A (B, o, k) -> (B, m, k)."""
        return np.einsum("bom,bok->bmk", self.input_jacobian(), A)

    def vjp_params_many(self, A):
        """J_theta^T A per sample: A (B, o, k) -> (B, p, k)."""
        return np.einsum("bop,bok->bpk", self.param_jacobian(), A)

    def vjp_params_sum(self, A):
        """sum_b J_theta^T A_b: A (B, o, k) -> (p, k)."""
        return self.vjp_params_many(A).sum(axis=0)

    def gram_params(self, H):
        """sum_b J_theta^T H_b J_theta: H (B, o, o) -> (p, p)."""
        J = self.param_jacobian()
        return np.einsum("bop,boq,bqr->pr", J, H, J)

    # ------------------------------------------------------ second order
    def second_contraction(self, G):
        """The curvature of the module itself, weighted by G (B, o):
        C = sum_k G_k * hess(y_k) over the joint variable (x, theta).

        Returns (C_xx (B, m, m), C_xtheta (B, m, p), C_thetatheta (p, p), the last
        summed over the batch); None stands for a zero block.
        """
        raise NotImplementedError(f"{type(self).__name__}.second_contraction")

    def second_vjp(self, G, dX=None, dparams=None):
        """C (dx, dtheta) for C = sum_k G_k hess(y_k): the term that turns a
        Gauss-Newton-vector product into a Hessian-vector product.

        Returns (B, m) for the input part and one array per parameter (summed
        over the batch) for the parameter part.
        """
        X = self._need_input()
        Cxx, Cxt, Ctt = self.second_contraction(G)
        sx = np.zeros_like(X)
        st = np.zeros(self.num_params)
        theta = None if dparams is None or not self.num_params else \
            np.concatenate([d.ravel() for d in dparams])
        if dX is not None and Cxx is not None:
            sx = sx + np.einsum("bij,bj->bi", Cxx, dX)
        if theta is not None and Cxt is not None:
            sx = sx + Cxt @ theta
        if dX is not None and Cxt is not None:
            st = st + np.einsum("bjq,bj->q", Cxt, dX)
        if theta is not None and Ctt is not None:
            st = st + Ctt @ theta
        return sx, self._split(st)

    def backward_second(self, G, H):
        """Carry the gradient and Hessian of a scalar loss from Y back to X.

        G: (B, o) and H: (B, o, o), per sample. Returns (G_X, H_X) with
        G_X = J_x^T G and H_X = J_x^T H J_x + sum_k G_k hess_x(y_k), the
        composition formula, of shapes (B, m) and (B, m, m).
        """
        GX, _ = self.vjp(G)
        T = self.vjp_input_many(H)                       # J_x^T H: (B, m, o)
        HX = self.vjp_input_many(T.transpose(0, 2, 1))   # J_x^T H J_x
        Cxx = self.second_contraction(G)[0]
        return GX, HX if Cxx is None else HX + Cxx

    # ----------------------------------------------------------------------
    # Internal fast paths used by ``minigrad.derivatives``. Each default is
    # built from the public methods above, so a subclass that only overrides
    # those (a learner's new module) stays exact; built-in modules override
    # these with their structure (Kronecker products, diagonals).
    def _vjp_input(self, G):
        """J_x^T G per sample, without the parameter gradients: (B, o) -> (B, m)."""
        return self.vjp(G)[0]

    def _param_grads(self, G):
        """J_theta^T G summed over the batch, one array per parameter."""
        return self.vjp(G)[1]

    def _param_grads_into(self, G, out):
        """``_param_grads(G)`` flattened row-major, written into out (p,), the
        module's slice of the flat gradient."""
        _flatten_into(self._param_grads(G), out)

    def _rows_input(self, A):
        """A J_x per sample, rows pulled back through the module:
        A (B, k, o) -> (B, k, m)."""
        return self.vjp_input_many(A.transpose(0, 2, 1)).transpose(0, 2, 1)

    def _rows_params(self, A, out=None):
        """A J_theta per sample: A (B, k, o) -> (B, k, p), written into ``out``
        when given."""
        R = self.vjp_params_many(A.transpose(0, 2, 1)).transpose(0, 2, 1)
        if out is None:
            return R
        out[...] = R
        return out

    def _gram_params_into(self, H, out):
        """out[...] = sum_b J_theta^T H_b J_theta for H (B, o, o); out is a
        (p, p) view into the full matrix, written in place."""
        out[...] = self.gram_params(H)

    def _second_vjp(self, G, dX, dparams, need_x):
        """``second_vjp`` for the R-op: (input part (B, m) or None when not
        needed, one array or None (a zero) per parameter)."""
        sx, sg = self.second_vjp(G, dX, dparams)
        return (sx if need_x else None), sg

    def _add_curvature(self, G, Hxx, Hxt):
        """Add the module's own curvature C = sum_k G_k hess(y_k) to the
        blocks carried backwards: returns (Hxx + C_xx, Hxt + C_xtheta, C_thth).
        Hxx (B, m, m) or Hxt (B, m, p) may be None (not needed); C_thth (p, p)
        is summed over the batch, None when zero."""
        Cxx, Cxt, Ctt = self.second_contraction(G)
        if Hxx is not None and Cxx is not None:
            Hxx = Hxx + Cxx
        if Hxt is not None and Cxt is not None:
            Hxt = Hxt + Cxt
        return Hxx, Hxt, Ctt

    def __repr__(self):
        return f"{type(self).__name__}()"

