"""The chain rule over a list of leaf modules, written once: ``minigrad.derivatives``
and ``Sequential`` both call it; it calls only the leaves' protocol methods and
checks each value a leaf returns where it is used. n parameters in module order;
a leaf maps x (B, m) to z (B, o) with p parameters; A: k rows per sample (B, k, o).
"""
import numpy as np

from ._validate import returned
from .module import Module, _takes, compose, flatten

__all__ = ["split_params", "push", "pull_input", "gradient", "pull_params",
           "hessian_blocks", "hessian_vp"]


def split_params(leaves, dparams):
    """The flat list of parameter arrays (module order) as one list per leaf (None
    without parameters, or for all when dparams is None)."""
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
        dX = None if dX is None and dp is None else returned(mod, "jvp", mod.output.shape, dX, dp)
    return tangents, (np.zeros(leaves[-1].output.shape) if dX is None else dX)


def pull_input(leaves, A):
    """Reverse mode to the input: G (B, o) -> J^T g (B, m), or rows A (B, k, o)
    -> A J_x (B, k, m) for the whole chain."""
    method = "vjp_input" if A.ndim == 2 else "vjp_input_many"
    for mod in reversed(leaves):
        A = returned(mod, method, A.shape[:-1] + mod.input.shape[1:], A)
    return A


def gradient(leaves, G):
    """Reverse mode: the parameter gradients sum_b J_theta^T g_b of every leaf,
    one array per parameter in module order. G: (B, o) at the output."""
    grads = []
    for k in range(len(leaves) - 1, -1, -1):
        grads[:0] = returned(leaves[k], "vjp_params", "params", G) if leaves[k].params else []
        if k:
            G = returned(leaves[k], "vjp_input", leaves[k].input.shape, G)
    return grads


def pull_params(leaves, A, out=None):
    """Rows A (B, k, o) pulled back through the whole chain to the parameters,
    A J per sample: (B, k, n), written into ``out`` when given. A None stands for
    the identity rows (k = o), A J = J, the per-sample Jacobian: there a last leaf
    that writes its J_theta (param_jacobian) gives J_theta and J_x as they are."""
    B, k = leaves[-1].output.shape if A is None else A.shape[:2]
    end = sum(sizes := [mod.num_params for mod in leaves])
    out = np.empty((B, k, end)) if out is None else out
    for i in range(len(leaves) - 1, -1, -1):
        mod, p, m = leaves[i], sizes[i], leaves[i].input.shape[1]
        own = A is None and type(mod).param_jacobian is not Module.param_jacobian
        A = np.broadcast_to(np.eye(k), (B, k, k)) if A is None and not own else A
        if p:
            how = "param_jacobian" if own else "vjp_params_many"
            view, write = out[:, :, end - p:end], _takes(type(mod), how, "out")
            got = returned(mod, how, (B, k, p), *[A][:not own], *[view][:write])     # in place: out=
            if got is not view:
                view[...] = got
            end -= p
        if i:
            A = returned(mod, "input_jacobian" if own else "vjp_input_many", (B, k, m), *[A][:not own])
    return out


def hessian_blocks(leaves, G, H, need_input=False, out=None):
    """The Hessian of a scalar loss w.r.t. the parameters (and, if asked, the input) of the
    chain, from G = dL/dy (B, o) and H = d^2L/dy^2 (B, o, o) at the output (G = None: the
    Gauss-Newton matrix), added into ``out`` (n, n) when given, else written (blocks tile it).
    Returns (H_pp (n, n), H_xp (B, m, n), H_xx (B, m, m)), the last two None unless
    need_input. Backwards through the leaves, the composition formula on the joint
    variable (leaf input x, own parameters theta, later parameters w), carrying
    Hzz = d^2L/dz^2 (B, o, o) and Hwz = d^2L/dw dz (B, P, o):

        H_thth = sum_b J_th^T Hzz J_th + C_pp,   H_wth = sum_b Hwz J_th,
        H_xx = J_x^T Hzz J_x + C_xx (compose),  H_xth = J_x^T Hzz J_th + C_xp,  H_wx = Hwz J_x.

    Every sum over the batch is a leaf's gram_params or vjp_params_sum: no n-wide
    Jacobian and no dense J^T H J is formed.
    """
    n = end = sum(mod.num_params for mod in leaves)
    Hpp = np.empty((n, n)) if out is None else out
    put = np.copyto if out is None else lambda region, block: np.add(region, block, out=region)
    Hzz, Hwz = H, np.zeros((H.shape[0], 0, H.shape[1]))
    for k in range(len(leaves) - 1, -1, -1):
        mod, p = leaves[k], leaves[k].num_params
        (B, m), start = mod.input.shape, end - p
        if p:
            view, write = Hpp[start:end, start:end], out is None and _takes(type(mod), "gram_params", "out")
            block = returned(mod, "gram_params", (p, p), Hzz, *[view][:write])     # in place: out=
            C = None if G is None else returned(mod, "curvature_pp", {(p, p), None}, G)
            if block is not view or C is not None:
                put(view, block if C is None else block + C)
            if end < n:
                cross = returned(mod, "vjp_params_sum", (n - end, p), Hwz)
                put(Hpp[end:, start:end], cross)
                put(Hpp[start:end, end:], cross.T)
        if k == 0 and not need_input:
            break
        GX, Hxx, HJ = compose(mod, G, Hzz)
        Hwx = returned(mod, "vjp_input_many", (B, n - end, m), Hwz)       # Hwz J_x: (B, P, m)
        if p:
            Hxp = returned(mod, "vjp_params_many", (B, m, p), HJ.transpose(0, 2, 1))
            C = None if G is None else returned(mod, "curvature_xp", {(B, m, p), None}, G)
            Hwx = np.concatenate([(Hxp if C is None else Hxp + C).transpose(0, 2, 1), Hwx], axis=1)
        G, Hzz, Hwz, end = GX, Hxx, Hwx, start
    return (Hpp, Hwz.transpose(0, 2, 1), Hzz) if need_input else (Hpp, None, None)


def hessian_vp(leaves, G, loss_hvp, dX, dparams, need_input=False):
    """Hessian- (G given) or Gauss-Newton-vector product (G None) by the R-op: push the
    tangents forward (J v), apply the loss Hessian at the output (``loss_hvp``, or zero
    when None), pull back dG = d(dL/dz) with G, adding each leaf's curvature C(g):

        dG_x = J_x^T dG + C_xx dx + C_xp dtheta,   H v = sum_b J_th^T dG + C_px dx + C_pp dtheta.

    Returns (the input part (B, m) or None, the parameter part (n,))."""
    dparams = split_params(leaves, dparams)
    tangents, dY = push(leaves, dX, dparams)
    dG = np.zeros(dY.shape) if loss_hvp is None else loss_hvp(dY)
    parts = []
    for k in range(len(leaves) - 1, -1, -1):
        mod, first = leaves[k], k == 0 and not need_input
        dg = returned(mod, "vjp_params", "params", dG) if mod.params else []
        dGX = None if first else returned(mod, "vjp_input", mod.input.shape, dG)
        if G is not None:                           # the first leaf's input part is not needed
            sx, sg = mod._cvp(G, tangents[k], dparams[k], inputs=not first)
            dg = [a + s for a, s in zip(dg, sg)]
            if not first:
                dGX = dGX + sx
                G = returned(mod, "vjp_input", mod.input.shape, G)
        parts[:0] = dg
        dG = dGX
    return dG, flatten(parts)
