"""Layers with parameters, and the Sequential container."""
import numbers

import numpy as np

from ._reduce import column_sums
from ._validate import as_batch, first_nonfinite, trusted_batch
from .activations import Identity, ReLU, Sigmoid, Softmax, Tanh
from .module import Module

__all__ = ["Linear", "Sequential"]


def _positive_int(value, who, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """y = W x + b per sample, so Y = X W^T + b for a batch (as torch.nn.Linear).

    W: (o, m), b: (o,); parameters flatten as [W row-major, b], p = o*m + o.
    Jacobians per sample: J_x = W (o x m); J_theta = [I_o kron x^T, I_o] (o x p),
    whose Kronecker structure every product below uses instead of building it.
    The layer is linear in x and in theta separately, so its only curvature is
    the x-W cross term: d^2 y_i / (dx_j dW_kl) = delta_ik delta_jl.
    """

    def __init__(self, in_features, out_features, *, rng=None):
        super().__init__()
        who = "Linear"
        self.in_features = _positive_int(in_features, who, "in_features")
        self.out_feats = _positive_int(out_features, who, "out_features")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params["W"] = rng.uniform(-bound, bound, (self.out_feats, self.in_features))
        self.params["b"] = rng.uniform(-bound, bound, self.out_feats)
        self.zero_grad()

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_feats})"

    def out_features(self, m=None):
        return self.out_feats

    @property
    def W(self):
        return self.params["W"]

    @property
    def b(self):
        return self.params["b"]

    def forward(self, X):
        return X @ self.W.T + self.b

    def vjp(self, G):
        return self._vjp_input(G), self._param_grads(G)

    def _vjp_input(self, G):
        return G @ self.W

    def _param_grads(self, G):
        return [G.T @ self._need_input(), column_sums(G)]

    def _param_grads_into(self, G, out):
        # G^T X and the column sums of G, computed straight into out (p,)
        X = self._need_input()
        o, m = G.shape[1], X.shape[1]
        np.matmul(G.T, X, out=out[:o * m].reshape(o, m, copy=False))
        column_sums(G, out=out[o * m:])

    def jvp(self, dX=None, dparams=None):
        X = self._need_input()
        dY = None
        if dX is not None:
            dY = dX @ self.W.T
        if dparams is not None:
            dW, db = dparams
            dYt = X @ dW.T + db
            dY = dYt if dY is None else dY + dYt
        return np.zeros((X.shape[0], self.out_feats)) if dY is None else dY

    def input_jacobian(self):
        X = self._need_input()
        return np.broadcast_to(self.W, (X.shape[0],) + self.W.shape).copy()

    def param_jacobian(self):
        X = self._need_input()
        B, (o, m) = X.shape[0], self.W.shape
        JW = np.einsum("ik,bl->bikl", np.eye(o), X).reshape(B, o, o * m)
        Jb = np.broadcast_to(np.eye(o), (B, o, o))
        return np.concatenate([JW, Jb], axis=2)

    def vjp_input_many(self, A):
        return self.W.T @ A

    def vjp_params_many(self, A):
        X = self._need_input()
        B, o, k = A.shape
        AW = (A[:, :, None, :] * X[:, None, :, None]).reshape(B, o * X.shape[1], k)
        return np.concatenate([AW, A], axis=1)

    def _rows_input(self, A):
        # A J_x = A W: (B, k, o) -> (B, k, m), one batched matrix product
        return A @ self.W

    def _rows_params(self, A, out=None):
        # A J_theta = [A kron x^T, A]: row c of sample b is [a_bc (x) x_b, a_bc],
        # written straight into its columns of the result (no temporary)
        X = self._need_input()
        B, k, o = A.shape
        if out is None:
            out = np.empty((B, k, o * X.shape[1] + o))
        np.multiply(A[:, :, :, None], X[:, None, None, :],
                    out=out[:, :, :-o].reshape(B, k, o, X.shape[1], copy=False))
        out[:, :, -o:] = A
        return out

    def _sum_outer_x(self, A):
        """sum_b A_b[i, k] x_b[j] as an (o*m, k) matrix (rows i*m + j):
        one matrix product X^T (B, m) @ A (B, o*k) instead of a loop over b."""
        X = self._need_input()
        B, o, k = A.shape
        S = X.T @ A.reshape(B, o * k)                          # (m, o*k)
        return S.reshape(X.shape[1], o, k).transpose(1, 0, 2).reshape(o * X.shape[1], k)

    def vjp_params_sum(self, A):
        return np.concatenate([self._sum_outer_x(A), A.sum(axis=0)], axis=0)

    def gram_params(self, H):
        o, m = self.W.shape
        out = np.empty((o * m + o, o * m + o))
        self._gram_params_into(H, out)
        return out

    def _gram_params_into(self, H, out):
        """sum_b J_theta^T H_b J_theta written into out (p, p), block by block:
            W-W: sum_b H_b kron (x_b x_b^T), as (o*o, B) @ (B, m*m), one product
            W-b: sum_b H_b kron x_b,  b-b: sum_b H_b."""
        X = self._need_input()
        B, (o, m) = X.shape[0], self.W.shape
        om = o * m
        XX = (X[:, :, None] * X[:, None, :]).reshape(B, m * m)
        WW = (H.reshape(B, o * o).T @ XX).reshape(o, o, m, m)   # [i, k, j, l]
        out[:om, :om].reshape(o, m, o, m, copy=False)[...] = WW.transpose(0, 2, 1, 3)
        del WW
        Wb = self._sum_outer_x(H)                                 # (o*m, o)
        out[:om, om:] = Wb
        out[om:, :om] = Wb.T
        out[om:, om:] = H.sum(axis=0)

    def second_contraction(self, G):
        X = self._need_input()
        B, (o, m) = X.shape[0], self.W.shape
        C = np.zeros((B, m, o * m + o))
        return None, self._add_curvature(G, None, C)[1], None

    def _add_curvature(self, G, Hxx, Hxt):
        # C_xW[b, j, (k, l)] = G[b, k] delta_jl: row j gets G in columns k*m + j
        if Hxt is not None:
            o, m = self.W.shape
            for j in range(m):
                Hxt[:, j, j:o * m:m] += G
        return Hxx, Hxt, None

    def _second_vjp(self, G, dX, dparams, need_x):
        # C (dx, dtheta) = (G dW per sample, G^T dX for W, nothing for b)
        sx = G @ dparams[0] if need_x and dparams is not None else None
        sW = G.T @ dX if dX is not None else None
        return sx, [sW, None]

    def second_vjp(self, G, dX=None, dparams=None):
        X = self._need_input()
        sx = np.zeros_like(X) if dparams is None else G @ dparams[0]
        sW = np.zeros_like(self.W) if dX is None else G.T @ dX
        return sx, [sW, np.zeros_like(self.b)]


class Sequential(Module):
    """The composition y = f_L(... f_2(f_1(x))): modules applied in order.

    Nested Sequentials are flattened, so ``modules`` lists leaf modules only and
    the parameters flatten in module order. Derivatives of the whole chain are
    in ``minigrad.derivatives``; ``backward`` and ``jvp`` here chain the leaves.
    """

    def __init__(self, *modules):
        self.grads, self.X = {}, None
        flat = []
        for k, mod in enumerate(modules):
            if isinstance(mod, Sequential):
                flat.extend(mod.modules)
            elif isinstance(mod, Module):
                flat.append(mod)
            else:
                raise ValueError(f"Sequential: argument {k} is not a Module, got {type(mod).__name__}")
        if not flat:
            raise ValueError("Sequential: needs at least one module")
        self.modules = flat
        self.in_features = flat[0].in_features

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.modules)) + ")"

    def __call__(self, X):
        first = self.modules[0]
        checked = type(first) in _OWN_MODULES
        if checked and not trusted_batch(X, first.in_features):
            X = as_batch(X, repr(first), first.in_features)     # converts or raises
        self.X = X
        return _chain(self.modules, X, checked)[0]

    @property
    def params(self):
        """The leaves' parameters (the same arrays), named "<index>.<name>"."""
        return {f"{k}.{name}": P for k, mod in enumerate(self.modules)
                for name, P in mod.params.items()}

    def forward(self, X):
        return self(X)

    def out_features(self, m):
        for mod in self.modules:
            m = mod.out_features(m)
        return m

    def parameters(self):
        return [P for mod in self.modules for P in mod.parameters()]

    @property
    def num_params(self):
        return sum(mod.num_params for mod in self.modules)

    def zero_grad(self):
        for mod in self.modules:
            mod.zero_grad()

    def backward(self, G):
        for mod in reversed(self.modules):
            G = mod.backward(G)
        return G

    def vjp(self, G):
        """Chain the leaves' VJPs: returns (G_X, parameter gradients in module order)."""
        grads = []
        for mod in reversed(self.modules):
            G, g = mod.vjp(G)
            grads = list(g) + grads
        return G, grads

    def input_jacobian(self):
        J = None
        for mod in self.modules:
            Jm = mod.input_jacobian()
            J = Jm if J is None else Jm @ J
        return J

    def param_jacobian(self):
        self._need_input()
        A = self.modules[-1].input_jacobian()
        A = np.broadcast_to(np.eye(A.shape[1]), (A.shape[0],) + (A.shape[1],) * 2)
        blocks = []
        for mod in reversed(self.modules):
            blocks.append(mod.vjp_params_many(A))
            A = mod.vjp_input_many(A)
        return np.concatenate(blocks[::-1], axis=1).transpose(0, 2, 1)

    def backward_second(self, G, H):
        """The composition formula applied leaf by leaf, from the output back."""
        for mod in reversed(self.modules):
            G, H = mod.backward_second(G, H)
        return G, H

    def jvp(self, dX=None, dparams=None):
        """dparams: the parameter tangents in module order (as ``vjp`` returns
        the gradients), or None."""
        k = 0
        for mod in self.modules:
            count = len(mod.params)
            dX = mod.jvp(dX, None if dparams is None or not count else dparams[k:k + count])
            k += count
        return dX


#: minigrad's own modules, by exact type: a finite float64 (B, m) input gives a
#: float64 (B, o) output, finite unless a parameter is not finite or a value
#: overflows (both caught by the check of the chain's output)
_OWN_MODULES = (Linear, Identity, Tanh, Sigmoid, ReLU, Softmax)


def _chain(modules, X, checked):
    """Apply the leaves in order to X (B, m): returns (output, whether the
    output is a finite float64 (B, o) array).

    ``checked``: X is known to be a finite float64 (B, m) array. An own leaf
    (exact type in ``_OWN_MODULES``) whose input is that X or the output of
    another own leaf runs without the finiteness check of ``Module.__call__``
    (only its width is compared); every other leaf is called as usual and
    checks its own input. The output is then checked once: when it is not
    finite, the first leaf whose output is not finite is named. (An overflow
    that a later leaf maps back to a finite value, as tanh(inf) = 1, passes.)
    """
    outputs = []
    for mod in modules:
        own = type(mod) in _OWN_MODULES
        if own and checked and (mod.in_features is None or X.shape[1] == mod.in_features):
            mod.X = X
            mod._cache = None             # what Module.__call__ does, but the check
            X = mod.forward(X)
        else:
            X = mod(X)
        outputs.append(X)
        checked = own
    if trusted_batch(X, None):
        return X, True
    if isinstance(X, np.ndarray) and X.dtype.kind == "f":
        _name_nonfinite(modules, outputs)
    return X, False                       # not a finite float batch: the caller checks it


def _name_nonfinite(modules, outputs):
    """Raise for the first leaf whose output has a NaN or inf (its input was
    finite); return quietly when none has (a sum that merely overflowed)."""
    for mod, Y in zip(modules, outputs):
        bad = first_nonfinite(Y) if isinstance(Y, np.ndarray) and Y.dtype.kind == "f" else None
        if bad is not None:
            hint = " (check its parameters and the scale of its input)" if mod.num_params else ""
            raise ValueError(f"{mod!r}: output of shape {Y.shape} has a non-finite value "
                             f"({Y[bad]}) at index {bad}, from a finite input{hint}")


def _call_checked(model, X):
    """model(X) for an X the caller has already checked (B, m), without
    checking X a second time: returns (Y, whether Y is known to be a finite
    float64 (B, o) array). The same result and caches as model(X); a model
    whose ``__call__`` is its own (a learner's override) is simply called."""
    call = type(model).__call__
    if call is Sequential.__call__:
        model.X = X
        return _chain(model.modules, X, True)
    if call is Module.__call__:
        return _chain([model], X, True)
    return model(X), False
