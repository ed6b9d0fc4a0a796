"""The benchmark problem and its implementations: minigrad, hand-written numpy,
autograd, and (only when installed) JAX and PyTorch.

The model is the MLP  m -> h (tanh) -> o  with softmax cross-entropy, the mean
over a batch X (B, m) with class labels t (B,). Parameters flatten as in
minigrad: w = [W1 (h, m), b1 (h,), W2 (o, h), b2 (o,)], n = h m + h + o h + o.

Each ``make_*`` function returns a dict  task -> {variant: callable}: a task
is done by one or more zero-argument callables (variants), each returning the
same numpy array. ``run.py`` checks every variant against the reference before
it times anything, and a backend's cell is its fastest variant. The baselines
are written the way their libraries' documentation recommends: JAX under
``jit``, per-sample Jacobians by ``vmap(jacrev)``, Hessian-vector products
forward-over-reverse (``jvp`` of ``grad``), the Gauss-Newton matrix both from
per-sample Jacobians and from ``vmap`` of Gauss-Newton-vector products; PyTorch
the same with ``torch.func``, plus, on an ``nn.Sequential`` model, the plain
``loss.backward()`` gradient and the double-backward products (``autograd.grad``
with ``create_graph=True``) of PyHessian, BackPACK and curvlinops.
"""
import numpy as np

import minigrad as mg

TASKS = ["gradient", "jacobian", "ggn_vp", "hvp", "hessian", "gauss_newton"]
#: the tasks that build an n x n matrix
MATRIX_TASKS = ("hessian", "gauss_newton")


# ------------------------------------------------------------------ the problem
class Problem:
    """One benchmark instance: sizes, data, weights, a direction v.

    m, h, o: layer widths; B: batch for the loss; B_jac: batch for the
    per-sample Jacobian (B_jac, o, n). Everything is seeded.
    """

    def __init__(self, m=64, h=32, o=10, B=256, B_jac=16, seed=0):
        self.m, self.h, self.o, self.B, self.B_jac = m, h, o, B, B_jac
        rng = np.random.default_rng(seed)
        self.model = mg.Sequential(mg.Linear(m, h, rng=rng), mg.Tanh(), mg.Linear(h, o, rng=rng))
        self.loss = mg.SoftmaxCrossEntropy()
        self.X = rng.standard_normal((B, m))
        self.t = rng.integers(0, o, B)
        self.T = np.eye(o)[self.t]
        self.w = mg.parameters_to_vector(self.model)
        self.n = self.w.size
        self.v = rng.standard_normal(self.n)
        self.Xjac = self.X[:B_jac]

    def unpack(self, w):
        """w (n,) -> W1 (h, m), b1 (h,), W2 (o, h), b2 (o,): slices of w, for
        numpy, autograd, JAX and torch arrays alike."""
        m, h, o = self.m, self.h, self.o
        k1 = h * m
        k2 = k1 + h
        k3 = k2 + o * h
        return (w[:k1].reshape(h, m), w[k1:k2], w[k2:k3].reshape(o, h), w[k3:])

    def label(self):
        return f"{self.m}-{self.h}-{self.o}, B={self.B}, n={self.n}"

    def sizes(self):
        return {"m": self.m, "h": self.h, "o": self.o, "B": self.B, "B_jac": self.B_jac,
                "n": self.n}


# ---------------------------------------------------------------------- minigrad
def make_minigrad(pb):
    model, loss, X, t, v = pb.model, pb.loss, pb.X, pb.t, pb.v
    return {
        "gradient": {"grad": lambda: mg.grad(model, loss, X, t)},
        "jacobian": {"jacobian": lambda: mg.jacobian(model, pb.Xjac)},
        "ggn_vp": {"ggn_vp": lambda: mg.ggn_vp(model, loss, X, t, v)},
        "hvp": {"hvp": lambda: mg.hvp(model, loss, X, t, v)},
        "hessian": {"hessian": lambda: mg.hessian(model, loss, X, t)},
        "gauss_newton": {"gauss_newton": lambda: mg.gauss_newton(model, loss, X, t)},
    }


# ------------------------------------------------------------ hand-written numpy
def _softmax(Y):
    E = np.exp(Y - Y.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def make_numpy(pb):
    """Backprop written out for this one architecture, as one would by hand.

    The Hessian is n Hessian-vector products (R-operator), 256 directions at a
    time: the generic way without structure. The Gauss-Newton matrix is the
    dense product J^T (H_L J) with J (B o, n) built explicitly.
    """
    X, T, B, n = pb.X, pb.T, pb.B, pb.n
    W1, b1, W2, b2 = pb.unpack(pb.w)

    def forward(X):
        A = np.tanh(X @ W1.T + b1)                       # (B, h)
        P = _softmax(A @ W2.T + b2)                      # (B, o)
        return A, P

    def gradient():
        A, P = forward(X)
        E = (P - T) / B                                  # dL/dY (B, o)
        D = (E @ W2) * (1 - A * A)                       # dL/dZ1 (B, h)
        return np.concatenate([(D.T @ X).ravel(), D.sum(0), (E.T @ A).ravel(), E.sum(0)])

    def jacobian(X=pb.Xjac):
        A, _ = forward(X)
        Bj, o, h, m = X.shape[0], pb.o, pb.h, pb.m
        M = W2[None] * (1 - A * A)[:, None, :]           # dy/dz1 (Bj, o, h)
        J = np.zeros((Bj, o, n))
        J[:, :, :h * m] = (M[:, :, :, None] * X[:, None, None, :]).reshape(Bj, o, h * m)
        J[:, :, h * m:h * m + h] = M
        k = h * m + h
        JW2 = J[:, :, k:k + o * h].reshape(Bj, o, o, h)  # a view: row i holds a in block i
        JW2[:, np.arange(o), np.arange(o), :] = A[:, None, :]
        J[:, :, k + o * h:] = np.eye(o)
        return J

    def rop(V, residual):
        """Hessian (residual) or Gauss-Newton matrix times V (k, n): (k, n)."""
        A, P = forward(X)
        k = V.shape[0]
        dW1 = V[:, :pb.h * pb.m].reshape(k, pb.h, pb.m)
        db1 = V[:, pb.h * pb.m:pb.h * pb.m + pb.h]
        s = pb.h * pb.m + pb.h
        dW2 = V[:, s:s + pb.o * pb.h].reshape(k, pb.o, pb.h)
        db2 = V[:, s + pb.o * pb.h:]
        S = 1 - A * A                                     # tanh'(z1) (B, h)
        dZ1 = X @ dW1.transpose(0, 2, 1) + db1[:, None]   # (k, B, h)
        dA = S * dZ1
        dY = dA @ W2.T + A @ dW2.transpose(0, 2, 1) + db2[:, None]
        dE = P * (dY - np.sum(P * dY, -1, keepdims=True)) / B   # H_L dY
        dGA = dE @ W2
        gW2 = dE.transpose(0, 2, 1) @ A
        if residual:
            E = (P - T) / B
            dGA = dGA + E @ dW2
            gW2 = gW2 + E.T @ dA
            GA = E @ W2
            dD = dGA * S - 2 * GA * A * S * dZ1
        else:
            dD = dGA * S
        gW1 = dD.transpose(0, 2, 1) @ X
        return np.concatenate([gW1.reshape(k, -1), dD.sum(1), gW2.reshape(k, -1), dE.sum(1)], 1)

    def hessian(chunk=256):
        H = np.empty((n, n))
        I = np.eye(n)
        for s in range(0, n, chunk):
            H[s:s + chunk] = rop(I[s:s + chunk], True)
        return H

    def gauss_newton():
        J = jacobian(X).reshape(B, pb.o, n)
        _, P = forward(X)
        HL = (P[:, :, None] * np.eye(pb.o) - P[:, :, None] * P[:, None, :]) / B
        HJ = HL @ J                                        # (B, o, n)
        return J.reshape(-1, n).T @ HJ.reshape(-1, n)      # (n, B o) (B o, n)

    return {
        "gradient": {"backprop": gradient},
        "jacobian": {"blocks": jacobian},
        "ggn_vp": {"R-operator": lambda: rop(pb.v[None], False)[0]},
        "hvp": {"R-operator": lambda: rop(pb.v[None], True)[0]},
        "hessian": {"n hvp": hessian},
        "gauss_newton": {"dense J^T H J": gauss_newton},
    }


# ---------------------------------------------------------------------- autograd
def make_autograd(pb):
    """autograd on a function of the flat vector w, with its own helpers
    (grad, jacobian, hessian, hessian_vector_product, make_ggnvp)."""
    import autograd
    import autograd.numpy as anp

    def net(w, X):
        W1, b1, W2, b2 = pb.unpack(w)
        return anp.dot(anp.tanh(anp.dot(X, W1.T) + b1), W2.T) + b2

    def ce(Y):
        zmax = anp.max(Y, axis=1, keepdims=True)
        lse = zmax[:, 0] + anp.log(anp.sum(anp.exp(Y - zmax), axis=1))
        return anp.mean(lse - anp.sum(pb.T * Y, axis=1))

    def L(w):
        return ce(net(w, pb.X))

    grad_L = autograd.grad(L)
    hvp_L = autograd.hessian_vector_product(L)
    jac_f = autograd.jacobian(lambda w: net(w, pb.Xjac))
    jac_full = autograd.jacobian(lambda w: net(w, pb.X))
    hess_L = autograd.hessian(L)
    ggnvp = autograd.make_ggnvp(lambda w: net(w, pb.X), ce)

    def gauss_newton():
        J = jac_full(pb.w)                                 # (B, o, n)
        P = _softmax(net(pb.w, pb.X))
        HL = (P[:, :, None] * np.eye(pb.o) - P[:, :, None] * P[:, None, :]) / pb.B
        return np.einsum("bin,bij,bjm->nm", J, HL, J, optimize=True)

    return {
        "gradient": {"grad": lambda: grad_L(pb.w)},
        "jacobian": {"jacobian": lambda: jac_f(pb.w)},
        "ggn_vp": {"make_ggnvp": lambda: ggnvp(pb.w)(pb.v)},
        "hvp": {"hessian_vector_product": lambda: hvp_L(pb.w, pb.v)},
        "hessian": {"hessian": lambda: hess_L(pb.w)},
        "gauss_newton": {"jacobian, J^T H J": gauss_newton},
    }


# ----------------------------------------------------------- optional: JAX, torch
def make_jax(pb):
    """JAX in float64, every function under jax.jit, data passed as arguments."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    X, T, Xj = jnp.asarray(pb.X), jnp.asarray(pb.T), jnp.asarray(pb.Xjac)
    w, v = jnp.asarray(pb.w), jnp.asarray(pb.v)

    def net1(w, x):                                       # one sample: (m,) -> (o,)
        W1, b1, W2, b2 = pb.unpack(w)
        return W2 @ jnp.tanh(W1 @ x + b1) + b2

    def ce1(y, t):                                        # one sample's loss
        return jax.nn.logsumexp(y) - t @ y

    def net(w, X):
        return jax.vmap(net1, in_axes=(None, 0))(w, X)

    def L(w, X, T):
        return jnp.mean(jax.vmap(ce1)(net(w, X), T))

    per_sample_jac = jax.vmap(jax.jacrev(net1), in_axes=(None, 0))    # (B, o, n)

    def ggn_vp(w, X, T, v):
        Y, Jv = jax.jvp(lambda w: net(w, X), (w,), (v,))
        HJv = jax.jvp(lambda Y: jax.grad(lambda Y: jnp.mean(jax.vmap(ce1)(Y, T)))(Y),
                      (Y,), (Jv,))[1]
        return jax.vjp(lambda w: net(w, X), w)[1](HJv)[0]

    def gn_jacobians(w, X, T):
        J = per_sample_jac(w, X)                                      # (B, o, n)
        HL = jax.vmap(jax.hessian(ce1))(net(w, X), T) / X.shape[0]    # (B, o, o)
        return jnp.einsum("bin,bij,bjm->nm", J, HL, J)

    def gn_vmap(w, X, T):                                             # G v for every unit vector v
        return jax.vmap(lambda e: ggn_vp(w, X, T, e))(jnp.eye(w.size, dtype=w.dtype))

    f = {
        "gradient": jax.jit(jax.grad(L)),
        "jacobian": jax.jit(per_sample_jac),
        "ggn_vp": jax.jit(ggn_vp),
        "hvp": jax.jit(lambda w, X, T, v: jax.jvp(lambda w: jax.grad(L)(w, X, T), (w,), (v,))[1]),
        "hessian": jax.jit(jax.hessian(L)),
        "gn_jacobians": jax.jit(gn_jacobians),
        "gn_vmap": jax.jit(gn_vmap),
    }

    def call(fn, *args):
        def run():
            return np.asarray(fn(*args).block_until_ready())

        def count_flops():
            # XLA's own count for the compiled program (its cost analysis)
            cost = fn.lower(*args).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            return float(cost["flops"])
        run.count_flops = count_flops
        return run

    return {
        "gradient": {"jit(grad)": call(f["gradient"], w, X, T)},
        "jacobian": {"jit(vmap(jacrev))": call(f["jacobian"], w, Xj)},
        "ggn_vp": {"jit(jvp, jvp(grad), vjp)": call(f["ggn_vp"], w, X, T, v)},
        "hvp": {"jit(jvp(grad))": call(f["hvp"], w, X, T, v)},
        "hessian": {"jit(hessian)": call(f["hessian"], w, X, T)},
        "gauss_newton": {"per-sample jacobians": call(f["gn_jacobians"], w, X, T),
                         "vmap(ggn_vp)": call(f["gn_vmap"], w, X, T)},
    }


def make_torch(pb):
    """PyTorch in float64: torch.func (grad, vmap, jacrev, jvp, vjp, hessian)
    on a function of the flat vector w; and on an nn.Sequential with
    nn.CrossEntropyLoss, the plain backward() gradient and the double-backward
    Hessian- and Gauss-Newton-vector products (autograd.grad with
    create_graph=True) that PyHessian, BackPACK and curvlinops use."""
    import torch
    from torch.func import grad, hessian, jacrev, jvp, vjp, vmap
    X, T, Xj = (torch.from_numpy(np.ascontiguousarray(a)) for a in (pb.X, pb.T, pb.Xjac))
    t = torch.from_numpy(pb.t.astype(np.int64))
    w, v = torch.from_numpy(pb.w.copy()), torch.from_numpy(pb.v.copy())

    def net1(w, x):
        W1, b1, W2, b2 = pb.unpack(w)
        return W2 @ torch.tanh(W1 @ x + b1) + b2

    def ce1(y, t):
        return torch.logsumexp(y, 0) - t @ y

    def net(w, X):
        W1, b1, W2, b2 = pb.unpack(w)
        return torch.tanh(X @ W1.T + b1) @ W2.T + b2

    def ce(Y):
        return torch.mean(torch.logsumexp(Y, 1) - torch.sum(T * Y, 1))

    def L(w):
        return ce(net(w, X))

    per_sample_jac = vmap(jacrev(net1), in_dims=(None, 0))

    def ggn_vp(v):
        Y, Jv = jvp(lambda w: net(w, X), (w,), (v,))
        HJv = jvp(grad(ce), (Y,), (Jv,))[1]
        return vjp(lambda w: net(w, X), w)[1](HJv)[0]

    def gn_jacobians():
        J = per_sample_jac(w, X)
        HL = vmap(hessian(ce1))(net(w, X), T) / pb.B
        return torch.einsum("bin,bij,bjm->nm", J, HL, J)

    # the usual PyTorch model, its parameters copied from w
    model = torch.nn.Sequential(torch.nn.Linear(pb.m, pb.h), torch.nn.Tanh(),
                                torch.nn.Linear(pb.h, pb.o)).double()
    with torch.no_grad():
        for p, value in zip(model.parameters(), pb.unpack(w)):
            p.copy_(value)
    criterion = torch.nn.CrossEntropyLoss()

    def backward():
        model.zero_grad(set_to_none=True)
        criterion(model(X), t).backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    # Double backward on the nn.Module, as PyHessian, BackPACK and curvlinops do:
    # autograd.grad with create_graph=True records the gradient's own graph, and a
    # second backward through it gives a product with the second derivative.
    params = list(model.parameters())
    vs = [torch.from_numpy(np.ascontiguousarray(a)) for a in pb.unpack(pb.v)]

    def flat(parts):
        return torch.cat([p.reshape(-1) for p in parts])

    def hvp_double_backward():
        """H v = d/dw <grad L(w), v>: reverse over reverse."""
        g = torch.autograd.grad(criterion(model(X), t), params, create_graph=True)
        return flat(torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, vs)), params))

    def ggn_vp_double_backward():
        """G v = J^T (H_L (J v)) with reverse mode only. J v by the double-backward
        trick: u -> J^T u is linear, so the VJP of it in direction v is J v; H_L J v
        is a double backward of the loss w.r.t. the output; J^T is one more VJP."""
        Y = model(X)
        u = torch.zeros_like(Y, requires_grad=True)
        JTu = torch.autograd.grad(Y, params, u, create_graph=True)
        Jv = torch.autograd.grad(JTu, u, vs)[0]
        gY = torch.autograd.grad(criterion(Y, t), Y, create_graph=True)[0]
        HJv = torch.autograd.grad(gY, Y, Jv, retain_graph=True)[0]
        return flat(torch.autograd.grad(Y, params, HJv))

    def call(fn):
        def run():
            return fn().detach().numpy()

        def count_flops():
            # PyTorch's own count of the operations it dispatched (matrix products)
            from torch.utils.flop_counter import FlopCounterMode
            with FlopCounterMode(display=False) as counter:
                fn()
            return float(counter.get_total_flops())
        run.count_flops = count_flops
        return run

    return {
        "gradient": {"backward()": call(backward), "func.grad": call(lambda: grad(L)(w))},
        "jacobian": {"vmap(jacrev)": call(lambda: per_sample_jac(w, Xj))},
        "ggn_vp": {"jvp, jvp(grad), vjp": call(lambda: ggn_vp(v)),
                   "double backward": call(ggn_vp_double_backward)},
        "hvp": {"jvp(grad)": call(lambda: jvp(grad(L), (w,), (v,))[1]),
                "double backward": call(hvp_double_backward)},
        "hessian": {"func.hessian": call(lambda: hessian(L)(w))},
        "gauss_newton": {"per-sample jacobians": call(gn_jacobians),
                         "vmap(ggn_vp)": call(lambda: vmap(ggn_vp)(torch.eye(pb.n, dtype=torch.float64)))},
    }


#: every backend, in table order; jax and torch are optional
ALL_BACKENDS = {"minigrad": make_minigrad, "numpy": make_numpy, "autograd": make_autograd,
                "jax": make_jax, "torch": make_torch}
OPTIONAL = ("jax", "torch")


def available_backends():
    """Backend name -> factory, the optional ones only when importable."""
    backends = {}
    for name, factory in ALL_BACKENDS.items():
        if name in OPTIONAL:
            try:
                __import__(name)
            except ImportError:
                continue
        backends[name] = factory
    return backends
