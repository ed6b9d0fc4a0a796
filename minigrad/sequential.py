"""Sequential, the composition N = f_L o ... o f_1: each protocol method is the
chain rule over its leaves (``minigrad.chain``); and ``leaves_of``, the leaves
of any model with its parameters checked."""
import numpy as np

from ._validate import first_nonfinite
from .chain import gradient, hessian_blocks, hessian_vp, pull_input, pull_params, push, split_params
from .module import Module, unflatten

__all__ = ["Sequential", "leaves_of"]


def leaves_of(model, who):
    """The leaf modules of a model (a Sequential's ``modules``, or [model]); its
    parameters checked to be float64 arrays (an integer one would truncate every
    update) that share no memory (a shared one would count twice)."""
    if not isinstance(model, Module):
        raise ValueError(f"{who}: model must be a minigrad Module, got {type(model).__name__}")
    leaves = model.modules if isinstance(model, Sequential) else [model]
    spans = []
    for k, mod in enumerate(leaves):
        for name, P in mod.params.items():
            if not isinstance(P, np.ndarray) or P.dtype != np.float64:
                raise ValueError(f"{who}: parameter {name!r} of {mod!r} (module {k}) must be a "
                                 f"float64 array, got {getattr(P, 'dtype', type(P).__name__)}; "
                                 "use .astype(np.float64)")
            spans.append((P if P.base is None else P.base, P, name, mod, k))
    if len({id(span[0]) for span in spans}) < len(spans):         # two share a buffer: overlap?
        for i, (_, P, name, mod, k) in enumerate(spans):
            for _, Q, other, mod2, k2 in spans[:i]:
                if np.may_share_memory(P, Q):
                    raise ValueError(f"{who}: parameter {name!r} of {mod!r} (module {k}) shares "
                                     f"memory with parameter {other!r} of {mod2!r} (module {k2}); "
                                     "shared weights are not supported (give each use its own copy)")
    return leaves


class Sequential(Module):
    """The composition y = f_L(... f_2(f_1(x))): modules applied in order. Nested
    Sequentials are flattened (``modules``: the leaves; parameters in module order);
    each protocol method is the chain rule over the leaves (``minigrad.chain``). One
    module object may appear only once (its input would be overwritten)."""

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
        self._memo = {}
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

    params = property(lambda self: self._named("params"), doc="The leaves' parameters (the same "
                      "arrays), named '<index>.<name>'.")
    grads = property(lambda self: self._named("grads"), doc="The leaves' gradients, named so.")

    def _named(self, attr):                          # the leaves' params or grads, one dict
        return {f"{k}.{name}": P for k, mod in enumerate(self.modules)
                for name, P in getattr(mod, attr).items()}

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
        return pull_input(self.modules, G)

    vjp_input_many = vjp_input                       # A (B, k, o) -> (B, k, m), the same pull

    def vjp_params(self, G):
        return gradient(self.modules, G)

    def vjp_params_many(self, A, out=None):
        return pull_params(self.modules, A, out)

    def input_jacobian(self):
        B, o = self.output.shape
        return self.vjp_input_many(np.broadcast_to(np.eye(o), (B, o, o)))

    def param_jacobian(self):
        return pull_params(self.modules, None)                # None: the identity rows

    def _curvature(self, G):
        """(C_pp, C_xp, C_xx) of the whole chain, computed once per input and G."""
        memo = self.cached("curvature", dict)
        if memo.get("G") is not G:
            memo.update(G=G, blocks=hessian_blocks(self.modules, G, np.zeros(G.shape + G.shape[1:]),
                                                   need_input=True))
        return memo["blocks"]

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
