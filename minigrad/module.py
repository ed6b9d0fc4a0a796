"""The module protocol (``Module``: the methods a learner writes come first) and the
composition step every second derivative takes (``compose``)."""
import functools
import inspect

import numpy as np

from ._arrays import Cached, flatten, unflatten
from ._validate import as_batch, finite_result, returned

__all__ = ["Module", "compose", "flatten", "unflatten"]

FIRST_ORDER = ("give input_jacobian and param_jacobian (the Jacobians), "
               "or jvp (the products)")
SECOND_ORDER = ("give curvature_xx, curvature_xp and curvature_pp (the blocks, None "
                "for a zero block), or curvature_vp (the product)")


class Module(Cached):
    """Base class of every layer and activation. A new one writes ``forward`` and
    one route of each order::

        forward(X)          Y (B, o) from X (B, m)
        first order         jvp(dX, dparams) -> dY (B, o), or the Jacobians
                            input_jacobian() (B, o, m) and param_jacobian() (B, o, p)
        second order        curvature_vp(G, dX, dparams) -> ((B, m), [per parameter]),
                            or curvature_xx(G) (B, m, m), curvature_xp(G) (B, m, p)
                            and curvature_pp(G) (p, p), None for a zero block
        for speed           vjp_input, vjp_params, the batched products; out= (write in place) in
                            param_jacobian, vjp_params_many, gram_params; curvature_vp inputs=False

    Everything else, and every derivative of a whole model, follows from those; a
    value a method returns is checked where the chain rule uses it (shape, named
    with the method); ``check_module`` compares every method with finite differences.
    Per sample y = f(x, theta), theta the p parameters (``params``, each row-major,
    in order); J_x (o x m), J_theta (o x p) in numerator layout; for g in R^o,
    C(g) = sum_k g_k hess y_k over (x, theta). Every method is evaluated at
    ``self.input``; ``module(X)`` checks X and sets ``input`` and ``output``;
    ``backward`` accumulates into ``grads``; ``cached(key, compute)`` keeps a value
    per input.
    """

    #: the input width m, or None for "any width" (activations)
    in_features = None

    def forward(self, X):
        """Y = f(X): (B, m) -> (B, o)."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def jvp(self, dX=None, dparams=None):
        """Jacobian-vector product dY = J_x dx + J_theta dtheta per sample, (B, o); dX (B, m)
        or None (zero), dparams arrays shaped like the parameters or None (zero)."""
        self._need("jvp", "input_jacobian")
        dY = np.zeros(self.output.shape)
        if dX is not None:
            dY += np.einsum("bom,bm->bo", self._jx(), dX)
        if dparams is not None and self.num_params:
            dY += self._jt() @ flatten(dparams)
        return dY

    def input_jacobian(self):
        """J_x per sample: (B, o, m), J[b, i, j] = d y_bi / d x_bj.
        Default: m forward-mode products, J_x e_j = jvp(e_j)."""
        self._need("input_jacobian", "jvp")
        return self.cached("input_jacobian", lambda: self._columns(
            lambda j: returned(self, "jvp", self.output.shape, self._unit_input(j), None),
            self.input.shape[1]))

    def param_jacobian(self):
        """J_theta per sample: (B, o, p), J[b, i, q] = d y_bi / d theta_q.
        Default: p forward-mode products, J_theta e_q = jvp(None, e_q)."""
        if not self.num_params:
            return np.zeros(self.output.shape + (0,))
        self._need("param_jacobian", "jvp")
        return self.cached("param_jacobian", lambda: self._columns(
            lambda q: returned(self, "jvp", self.output.shape, None, self._unit_params(q)),
            self.num_params))

    def curvature_vp(self, G, dX=None, dparams=None):
        """C(g) applied to (dx, dtheta): (C_xx dx + C_xp dtheta per sample (B, m), C_px dx
        + C_pp dtheta summed over the batch, one array per parameter); the term that
        turns a Gauss-Newton-vector product into a Hessian-vector product."""
        self._need("curvature_vp", "curvature_xx", "curvature_xp", "curvature_pp")
        (B, m), p = self.input.shape, self.num_params
        Cxx = returned(self, "curvature_xx", {(B, m, m), None}, G)
        Cxp = returned(self, "curvature_xp", {(B, m, p), None}, G)
        Cpp = returned(self, "curvature_pp", {(p, p), None}, G)
        theta = flatten(dparams) if dparams is not None and p else None
        sx, st = np.zeros((B, m)), np.zeros(p)
        if dX is not None and Cxx is not None:
            sx += np.einsum("bij,bj->bi", Cxx, dX)
        if theta is not None and Cxp is not None:
            sx += Cxp @ theta
        if dX is not None and Cxp is not None:
            st += np.einsum("bjq,bj->q", Cxp, dX)
        if theta is not None and Cpp is not None:
            st += Cpp @ theta
        return sx, unflatten(st, self.parameters())

    def curvature_xx(self, G):
        """C_xx = sum_k g_k d^2 y_k / dx dx^T per sample: (B, m, m), or None for zero.
        Default: m products, C_xx e_j = curvature_vp(G, e_j)[0]."""
        self._need("curvature_xx", "curvature_vp")
        return self._columns(lambda j: self._cvp(G, self._unit_input(j), None)[0],
                             self.input.shape[1])

    def curvature_xp(self, G):
        """C_xp = sum_k g_k d^2 y_k / dx dtheta^T per sample: (B, m, p), or None."""
        if not self.num_params:
            return None
        self._need("curvature_xp", "curvature_vp")
        return self._columns(lambda q: self._cvp(G, None, self._unit_params(q))[0],
                             self.num_params)

    def curvature_pp(self, G):
        """C_pp = sum_b sum_k g_bk d^2 y_bk / dtheta dtheta^T: (p, p), or None."""
        if not self.num_params:
            return None
        self._need("curvature_pp", "curvature_vp")
        return self._columns(lambda q: flatten(self._cvp(G, None, self._unit_params(q))[1]),
                             self.num_params)

    # ------------------------------------------- derived: first order
    def vjp_input(self, G):
        """Vector-Jacobian product for the input: J_x^T g per sample, G (B, o) -> (B, m)."""
        return np.einsum("bom,bo->bm", self._jx(), G)

    def vjp_params(self, G):
        """sum_b J_theta^T g_b for G (B, o): one array per parameter, shaped like it."""
        if not self.num_params:
            return []
        return unflatten(np.einsum("bop,bo->p", self._jt(), G), self.parameters())

    def backward(self, G):
        """Backpropagate G (B, o): add ``vjp_params(G)`` to ``grads``, return ``vjp_input(G)``."""
        for (name, P), g in zip(self.params.items(), returned(self, "vjp_params", "params", G)):
            self.grads[name] = self.grads.get(name, np.zeros_like(P)) + g
        return returned(self, "vjp_input", self.input.shape, G)

    def vjp_input_many(self, A):
        """k rows per sample pulled back to the input, A J_x: (B, k, o) -> (B, k, m)."""
        return A @ self._jx()

    def vjp_params_many(self, A, out=None):
        """k rows per sample pulled back to the parameters, A J_theta: -> (B, k, p),
        written into ``out`` (B, k, p) when given (the chain then copies nothing)."""
        return np.matmul(A, self._jt(), out=out)

    def vjp_params_sum(self, A):
        """sum_b A_b J_theta: A (B, k, o) -> (k, p)."""
        return returned(self, "vjp_params_many", A.shape[:2] + (self.num_params,), A).sum(axis=0)

    def gram_params(self, H):
        """sum_b J_theta^T H_b J_theta for symmetric H (B, o, o): (p, p), the Gram block."""
        return np.einsum("bop,boq->pq", self._jt(), H @ self._jt())

    # ------------------------------------------ derived: second order
    def backward_second(self, G, H):
        """The gradient G (B, o) and Hessian H (B, o, o) of a scalar loss carried from
        the output to the input: (J_x^T g, J_x^T H J_x + C_xx(g)), by ``compose``."""
        return compose(self, G, H)[:2]

    # ----------------------------------------------------------- bookkeeping
    def __init__(self):
        self.params, self.grads, self._input, self._output = {}, {}, None, None

    def __call__(self, X):
        """Y = forward(X) for X (B, m), checked: remembers ``input`` and ``output``."""
        return self._checked_output(self._run(as_batch(X, self, self.in_features)))

    def _checked_output(self, Y):                   # Y, or a ValueError at a NaN or an inf
        return finite_result(Y, self, "output")

    def _run(self, X):
        """forward at an X already known to be a finite float64 batch: the
        width and the output's shape are checked, not every entry."""
        if self.in_features is not None and X.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (B, {self.in_features}), "
                             f"got shape {X.shape}")
        self._input, self._output = X, None
        self._memo = {}
        Y = self.forward(X)
        if not isinstance(Y, np.ndarray) or Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"{self!r}: forward must return an array of shape (B, o) with "
                             f"B = {X.shape[0]}, got {getattr(Y, 'shape', type(Y).__name__)}")
        self._output = Y
        return Y

    @property
    def input(self):
        """The last input X (B, m), at which every derivative is evaluated."""
        if self._input is None:
            raise ValueError(f"{self!r}: call the module on a batch X before asking for "
                             "its derivatives")
        return self._input

    @property
    def output(self):
        """The last output Y (B, o)."""
        return self._output if self.input is not None else None   # input: the same error

    def parameters(self):
        """The parameter arrays, in flattening order."""
        return list(self.params.values())

    num_params = property(lambda self: sum([P.size for P in self.params.values()]),
                          doc="p, the number of scalar parameters.")

    def zero_grad(self):
        self.grads.update({name: np.zeros_like(P) for name, P in self.params.items()})

    def _need(self, method, *given):
        """NotImplementedError naming the methods to write for ``method``, unless the
        module's class defines one of ``given`` (not Module's default)."""
        if all(getattr(type(self), name) is getattr(Module, name) for name in given):
            route = SECOND_ORDER if "curvature" in method else FIRST_ORDER
            raise NotImplementedError(f"{type(self).__name__}.{method}: {route}")

    def _jx(self):
        """input_jacobian(), checked: (B, o, m)."""
        return returned(self, "input_jacobian", self.output.shape + self.input.shape[1:])

    def _jt(self):
        """param_jacobian(), checked: (B, o, p)."""
        return returned(self, "param_jacobian", self.output.shape + (self.num_params,))

    def _cvp(self, G, dX, dparams, inputs=True):
        """curvature_vp, checked: ((B, m), one array per parameter); the first may be None if
        not inputs (the method takes that keyword)."""
        if inputs or not _takes(type(self), "curvature_vp", "inputs"):
            return returned(self, "curvature_vp", [self.input.shape, "params"], G, dX, dparams)
        return returned(self, "curvature_vp", [{self.input.shape, None}, "params"], G, dX, dparams, False)

    def _columns(self, apply, count):
        """Stack apply(e_q) for the unit vectors e_q, q < count, as the last axis."""
        return np.stack([apply(q) for q in range(count)], axis=-1)

    def _unit_params(self, q):
        """The parameter tangent e_q, shaped like the parameters."""
        return unflatten(np.eye(1, self.num_params, q)[0], self.parameters())

    def _unit_input(self, j):
        """The input tangent with ones in column j: (B, m)."""
        return np.repeat(np.eye(1, self.input.shape[1], j), len(self.input), axis=0)

    def __repr__(self):
        return f"{type(self).__name__}()"


@functools.lru_cache(maxsize=None)
def _takes(cls, method, keyword):            # an optional keyword of the protocol: out=, inputs=
    return keyword in inspect.signature(getattr(cls, method)).parameters


def compose(mod, G, H):
    """The composition formula at one module, the one home of the step that
    ``backward_second`` and the whole-model Hessian take: from G (B, o) and H
    (B, o, o, symmetric) at the output, (G_X, H_X, HJ) with G_X = J_x^T g (B, m),
    H_X = J_x^T H J_x + C_xx(g) (B, m, m), HJ = H J_x (B, o, m); G = None: the
    Gauss-Newton part alone (G_X None, no C_xx)."""
    (B, m), o = mod.input.shape, H.shape[1]
    HJ = returned(mod, "vjp_input_many", (B, o, m), H)
    HX = returned(mod, "vjp_input_many", (B, m, m), HJ.transpose(0, 2, 1))
    if G is None:
        return None, HX, HJ
    C = returned(mod, "curvature_xx", {(B, m, m), None}, G)
    return returned(mod, "vjp_input", (B, m), G), HX if C is None else HX + C, HJ
