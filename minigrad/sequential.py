"""Sequential, the composition N = f_L o ... o f_1, and the chain rule over a
list of modules, written once: the derivatives of a whole model
(``minigrad.derivatives``) and the protocol methods of a Sequential both call
the functions below, which call only the protocol methods of the leaves.

Notation: the model's n parameters flatten in module order; at the output of
a leaf z (B, o); A holds k row vectors per sample, (B, k, o).
"""
import numpy as np

from ._validate import first_nonfinite
from .module import Module, flatten, unflatten

__all__ = ["Sequential", "leaves_of", "push", "pull_params", "pull_params_sum",
           "gradient", "hessian_blocks", "hessian_vp"]


def leaves_of(model, who):
    """The leaf modules of a model (a Sequential's ``modules``, or [model])."""
    if isinstance(model, Sequential):
        return model.modules
    if isinstance(model, Module):
        return [model]
    raise ValueError(f"{who}: model must be a minigrad Module, got {type(model).__name__}")


def split_params(leaves, dparams):
    """The flat list of parameter arrays (module order) as one list per leaf,
    None for a leaf without parameters, or all None when dparams is None."""
    out, k = [], 0
    for mod in leaves:
        count = len(mod.params)
        out.append(None if dparams is None or not count else list(dparams[k:k + count]))
        k += count
    return out


def push(leaves, dX, dparams):
    """Forward mode through the chain: the tangent at each leaf's input (None for
    zero) and at the output, dY = J_x dx + J_theta dtheta (B, o).
    dparams: one list of arrays (or None) per leaf."""
    tangents = []
    for mod, dp in zip(leaves, dparams):
        tangents.append(dX)
        dX = None if dX is None and dp is None else mod.jvp(dX, dp)
    return tangents, (np.zeros(leaves[-1].output.shape) if dX is None else dX)


def gradient(leaves, G):
    """Reverse mode: the parameter gradients sum_b J_theta^T g_b of every leaf,
    one array per parameter in module order. G: (B, o) at the output."""
    grads = []
    for k in range(len(leaves) - 1, -1, -1):
        grads[:0] = leaves[k].vjp_params(G)
        if k:
            G = leaves[k].vjp_input(G)
    return grads


def pull_params(leaves, A, need_input=False):
    """Rows A (B, k, o) pulled back through the whole chain, A J per sample:
    returns the parameter part (B, k, n) and, if asked, the input part (B, k, m).
    With A the identity rows this is the per-sample Jacobian."""
    n = sum(mod.num_params for mod in leaves)
    out = np.empty(A.shape[:2] + (n,))
    end = n
    for k in range(len(leaves) - 1, -1, -1):
        mod = leaves[k]
        if mod.num_params:
            out[:, :, end - mod.num_params:end] = mod.vjp_params_many(A)
            end -= mod.num_params
        if k or need_input:
            A = mod.vjp_input_many(A)
    return out, (A if need_input else None)


def pull_params_sum(leaves, A):
    """sum_b A_b J_b for the whole chain, A (B, k, o): (k, n)."""
    blocks = []
    for k in range(len(leaves) - 1, -1, -1):
        blocks.insert(0, leaves[k].vjp_params_sum(A))
        if k:
            A = leaves[k].vjp_input_many(A)
    return np.concatenate(blocks, axis=1)


def hessian_blocks(leaves, G, H, need_input=False):
    """The Hessian of a scalar loss w.r.t. the parameters (and, if asked, the
    input) of the chain, from G = dL/dy (B, o) and H = d^2L/dy^2 (B, o, o) at
    the output; G = None gives the Gauss-Newton matrix (no curvature terms).

    Returns (H_pp (n, n), H_xp (B, m, n), H_xx (B, m, m)), the last two None
    unless need_input. Backwards through the leaves, the composition formula on
    the joint variable (leaf input x, own parameters theta, later parameters w),
    carrying Hzz = d^2L/dz^2 (B, o, o) and Hwz = d^2L/dw dz (B, P, o):
        H_thth = sum_b J_th^T Hzz J_th + C_pp,   H_wth = sum_b Hwz J_th,
        H_xx = J_x^T Hzz J_x + C_xx,  H_xth = J_x^T Hzz J_th + C_xp,  H_wx = Hwz J_x.
    Every sum over the batch is a leaf's gram_params or vjp_params_sum, so no
    n-wide Jacobian and no dense J^T H J is formed.
    """
    n = sum(mod.num_params for mod in leaves)
    Hpp = np.zeros((n, n))
    Hzz, Hwz = H, np.zeros((H.shape[0], 0, H.shape[1]))
    end = n
    for k in range(len(leaves) - 1, -1, -1):
        mod = leaves[k]
        p = mod.num_params
        start = end - p
        if p:
            block = mod.gram_params(Hzz)
            C = None if G is None else mod.curvature_pp(G)
            Hpp[start:end, start:end] = block if C is None else block + C
            if Hwz.shape[1]:
                Hpp[end:, start:end] = mod.vjp_params_sum(Hwz)
                Hpp[start:end, end:] = Hpp[end:, start:end].T
        if k == 0 and not need_input:
            break
        T = mod.vjp_input_many(Hzz).transpose(0, 2, 1)        # J_x^T Hzz: (B, m, o)
        Hxx = mod.vjp_input_many(T)                             # J_x^T Hzz J_x
        Hwx = mod.vjp_input_many(Hwz)                           # Hwz J_x: (B, P, m)
        if G is not None:
            C = mod.curvature_xx(G)
            Hxx = Hxx if C is None else Hxx + C
        if p:
            Hxp = mod.vjp_params_many(T)                        # J_x^T Hzz J_th: (B, m, p)
            C = None if G is None else mod.curvature_xp(G)
            Hwx = np.concatenate([(Hxp if C is None else Hxp + C).transpose(0, 2, 1), Hwx], axis=1)
        if G is not None:
            G = mod.vjp_input(G)
        Hzz, Hwz, end = Hxx, Hwx, start
    return (Hpp, Hwz.transpose(0, 2, 1), Hzz) if need_input else (Hpp, None, None)


def hessian_vp(leaves, G, loss_hvp, dX, dparams, need_input=False):
    """Hessian- (G given) or Gauss-Newton-vector product (G None) by the R-op:
    push the tangents forward (J v), apply the loss Hessian at the output
    (``loss_hvp``, or zero when None), then pull back dG = d(dL/dz) together
    with G, adding each leaf's own curvature C(g)(dx, dtheta):
        dG_x = J_x^T dG + C_xx dx + C_xp dtheta,
        H v (theta part) = sum_b J_th^T dG + C_px dx + C_pp dtheta.
    Returns (the input part (B, m) or None, the parameter part (n,))."""
    dparams = split_params(leaves, dparams)
    tangents, dY = push(leaves, dX, dparams)
    dG = np.zeros(dY.shape) if loss_hvp is None else loss_hvp(dY)
    parts = []
    for k in range(len(leaves) - 1, -1, -1):
        mod, first = leaves[k], k == 0 and not need_input
        dg = mod.vjp_params(dG)
        dGX = None if first else mod.vjp_input(dG)
        if G is not None:
            sx, sg = mod.curvature_vp(G, tangents[k], dparams[k])
            dg = [a + s for a, s in zip(dg, sg)]
            if not first:
                dGX = dGX + sx
                G = mod.vjp_input(G)
        parts[:0] = dg
        dG = dGX
    return dG, flatten(parts)


class Sequential(Module):
    """The composition y = f_L(... f_2(f_1(x))): modules applied in order.

    Nested Sequentials are flattened, so ``modules`` lists leaf modules only and
    the parameters flatten in module order. A Sequential is a module: each
    protocol method is the chain rule over its leaves (the functions above).
    One module object may appear only once (its input would be overwritten).
    """

    def __init__(self, *modules):
        self._input = self._output = None
        flat = []
        for k, mod in enumerate(modules):
            if isinstance(mod, Sequential):
                flat.extend(mod.modules)
            elif isinstance(mod, Module):
                flat.append(mod)
            else:
                raise ValueError(f"Sequential: argument {k} is not a Module, "
                                 f"got {type(mod).__name__}")
        if not flat:
            raise ValueError("Sequential: needs at least one module")
        for k, mod in enumerate(flat):
            first = next(i for i, other in enumerate(flat) if other is mod)
            if first != k:
                raise ValueError(f"Sequential: the same module {mod!r} is at positions {first} "
                                 f"and {k}; tied weights are not supported (each use needs "
                                 "its own module)")
        self.modules = flat
        self.in_features = flat[0].in_features

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.modules)) + ")"

    def _run(self, X):
        self._input = X
        for mod in self.modules:
            X = mod._run(X)
        self._output = X
        return X

    def _checked_output(self, Y):
        """Y, or a ValueError naming the first leaf whose output is not finite."""
        if not np.isfinite(np.add.reduce(Y, axis=None)):
            for mod in self.modules:
                bad = first_nonfinite(mod.output)
                if bad is not None:
                    raise ValueError(f"{mod!r}: output of shape {mod.output.shape} has a "
                                     f"non-finite value ({mod.output[bad]}) at index {bad}, "
                                     "from a finite input (check its parameters and the "
                                     "scale of its input)")
        return Y

    def forward(self, X):
        return self._checked_output(self._run(X))

    @property
    def params(self):
        """The leaves' parameters (the same arrays), named "<index>.<name>"."""
        return {f"{k}.{name}": P for k, mod in enumerate(self.modules)
                for name, P in mod.params.items()}

    @property
    def grads(self):
        return {f"{k}.{name}": g for k, mod in enumerate(self.modules)
                for name, g in mod.grads.items()}

    def zero_grad(self):
        for mod in self.modules:
            mod.zero_grad()

    def backward(self, G):
        for mod in reversed(self.modules):
            G = mod.backward(G)
        return G

    # the protocol, by the chain rule over the leaves
    def jvp(self, dX=None, dparams=None):
        return push(self.modules, dX, split_params(self.modules, dparams))[1]

    def vjp_input(self, G):
        for mod in reversed(self.modules):
            G = mod.vjp_input(G)
        return G

    def vjp_params(self, G):
        return gradient(self.modules, G)

    def vjp_input_many(self, A):
        for mod in reversed(self.modules):
            A = mod.vjp_input_many(A)
        return A

    def vjp_params_many(self, A):
        return pull_params(self.modules, A)[0]

    def vjp_params_sum(self, A):
        return pull_params_sum(self.modules, A)

    def _identity_rows(self):
        o = self.output.shape[1]
        return np.broadcast_to(np.eye(o), (len(self.input), o, o))

    def input_jacobian(self):
        return self.vjp_input_many(self._identity_rows())

    def param_jacobian(self):
        return self.vjp_params_many(self._identity_rows())

    def gram_params(self, H):
        return hessian_blocks(self.modules, None, H)[0]

    def _curvature(self, G):
        return hessian_blocks(self.modules, G, np.zeros(G.shape + G.shape[1:]), need_input=True)

    def curvature_xx(self, G):
        return self._curvature(G)[2]

    def curvature_xp(self, G):
        return self._curvature(G)[1]

    def curvature_pp(self, G):
        return self._curvature(G)[0]

    def curvature_vp(self, G, dX=None, dparams=None):
        sx, st = hessian_vp(self.modules, G, None, dX, dparams, need_input=True)
        return sx, unflatten(st, self.parameters())

    def backward_second(self, G, H):
        """The composition formula applied leaf by leaf, from the output back."""
        for mod in reversed(self.modules):
            G, H = mod.backward_second(G, H)
        return G, H
