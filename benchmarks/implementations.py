"""The benchmark problem and its implementations: minigrad, hand-written numpy,
autograd, and (only when installed) JAX and PyTorch.

The model is the MLP  m -> h (tanh) -> o  with softmax cross-entropy, the mean
over a batch X (B, m) with class labels t (B,). Parameters flatten as in
minigrad: w = [W1 (h, m), b1 (h,), W2 (o, h), b2 (o,)], n = h m + h + o h + o.

Every implementation of a task returns the same array; ``run.py`` checks that
before it times anything. Each ``make_*`` function returns a dict
task name -> zero-argument callable, so the timing loop is the same for all.
"""
import numpy as np

import minigrad as mg

TASKS = ["gradient", "jacobian", "hessian", "ggn_vp", "hvp", "gauss_newton"]


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
        """w (n,) -> W1 (h, m), b1 (h,), W2 (o, h), b2 (o,) (views, works for
        numpy and autograd arrays alike)."""
        m, h, o = self.m, self.h, self.o
        k1 = h * m
        k2 = k1 + h
        k3 = k2 + o * h
        return (w[:k1].reshape(h, m), w[k1:k2], w[k2:k3].reshape(o, h), w[k3:])

    def label(self):
        return f"{self.m}-{self.h}-{self.o}, B={self.B}, n={self.n}"


# ---------------------------------------------------------------------- minigrad
def make_minigrad(pb):
    model, loss, X, T, v = pb.model, pb.loss, pb.X, pb.t, pb.v
    return {
        "gradient": lambda: mg.grad(model, loss, X, T),
        "jacobian": lambda: mg.jacobian(model, pb.Xjac),
        "hessian": lambda: mg.hessian(model, loss, X, T),
        "ggn_vp": lambda: mg.ggn_vp(model, loss, X, T, v),
        "hvp": lambda: mg.hvp(model, loss, X, T, v),
        "gauss_newton": lambda: mg.gauss_newton(model, loss, X, T),
    }


# ------------------------------------------------------------ hand-written numpy
def _softmax(Y):
    E = np.exp(Y - Y.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def make_numpy(pb):
    """Backprop written out for this one architecture, as one would by hand.

    The Hessian column is n Hessian-vector products, batched 256 directions at
    a time (the generic way without structure); the Gauss-Newton column is the
    dense product J^T H_L J with J (B o, n) built explicitly.
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
        J = np.empty((Bj, o, n))
        J[:, :, :h * m] = (M[:, :, :, None] * X[:, None, None, :]).reshape(Bj, o, h * m)
        J[:, :, h * m:h * m + h] = M
        k = h * m + h
        JW2 = np.zeros((Bj, o, o, h))
        JW2[:, np.arange(o), np.arange(o), :] = A[:, None, :]
        J[:, :, k:k + o * h] = JW2.reshape(Bj, o, o * h)
        J[:, :, k + o * h:] = np.eye(o)
        return J

    def rop(V, residual):
        """Hessian (residual) or GN times V (k, n): (k, n). Directions batched."""
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
        J = jacobian(X)                                    # (B, o, n)
        _, P = forward(X)
        HL = (P[:, :, None] * np.eye(pb.o) - P[:, :, None] * P[:, None, :]) / B
        HJ = HL @ J
        return J.reshape(-1, n).T @ HJ.reshape(-1, n)

    return {
        "gradient": gradient,
        "jacobian": jacobian,
        "hessian": hessian,
        "ggn_vp": lambda: rop(pb.v[None], False)[0],
        "hvp": lambda: rop(pb.v[None], True)[0],
        "gauss_newton": gauss_newton,
    }


# ---------------------------------------------------------------------- autograd
def make_autograd(pb):
    """autograd on a function of the flat vector w (its reference style)."""
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

    def ggn_vp():
        return autograd.make_ggnvp(lambda w: net(w, pb.X), ce)(pb.w)(pb.v)

    def gauss_newton():
        J = jac_full(pb.w)                                 # (B, o, n)
        P = _softmax(net(pb.w, pb.X))
        HL = (P[:, :, None] * np.eye(pb.o) - P[:, :, None] * P[:, None, :]) / pb.B
        return np.einsum("bin,bij,bjm->nm", J, HL, J, optimize=True)

    return {
        "gradient": lambda: grad_L(pb.w),
        "jacobian": lambda: jac_f(pb.w),
        "hessian": lambda: hess_L(pb.w),
        "ggn_vp": ggn_vp,
        "hvp": lambda: hvp_L(pb.w, pb.v),
        "gauss_newton": gauss_newton,
    }


# ----------------------------------------------------------- optional: JAX, torch
def make_jax(pb):
    """JAX (float64, jit-compiled); only used when jax is installed."""
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    X, T, Xj = jnp.asarray(pb.X), jnp.asarray(pb.T), jnp.asarray(pb.Xjac)
    w, v = jnp.asarray(pb.w), jnp.asarray(pb.v)

    def net(w, X):
        W1, b1, W2, b2 = pb.unpack(w)
        return jnp.tanh(X @ W1.T + b1) @ W2.T + b2

    def ce(Y):
        return jnp.mean(jax.nn.logsumexp(Y, axis=1) - jnp.sum(T * Y, axis=1))

    def L(w):
        return ce(net(w, X))

    def ggn(w, v):
        Y, Jv = jax.jvp(lambda w: net(w, X), (w,), (v,))
        HJv = jax.jvp(jax.grad(ce), (Y,), (Jv,))[1]
        return jax.vjp(lambda w: net(w, X), w)[1](HJv)[0]

    def gn(w):
        J = jax.jacrev(lambda w: net(w, X))(w)
        HL = jax.hessian(lambda Y: ce(Y))(net(w, X))       # (B, o, B, o), block-diagonal
        Bn = pb.B
        HL = HL[jnp.arange(Bn), :, jnp.arange(Bn), :]       # (B, o, o)
        return jnp.einsum("bin,bij,bjm->nm", J, HL, J)

    fns = {
        "gradient": jax.jit(jax.grad(L)),
        "jacobian": jax.jit(lambda w: jax.jacrev(lambda w: net(w, Xj))(w)),
        "hessian": jax.jit(jax.hessian(L)),
        "ggn_vp": jax.jit(lambda w: ggn(w, v)),
        "hvp": jax.jit(lambda w: jax.jvp(jax.grad(L), (w,), (v,))[1]),
        "gauss_newton": jax.jit(gn),
    }
    return {k: (lambda f=f: np.asarray(f(w).block_until_ready())) for k, f in fns.items()}


def make_torch(pb):
    """PyTorch (float64, torch.func); only used when torch is installed."""
    import torch
    from torch.func import grad, hessian, jacrev, jvp, vjp
    X, T, Xj = (torch.from_numpy(a) for a in (pb.X, pb.T, pb.Xjac))
    w, v = torch.from_numpy(pb.w.copy()), torch.from_numpy(pb.v)

    def net(w, X):
        W1, b1, W2, b2 = pb.unpack(w)
        return torch.tanh(X @ W1.T + b1) @ W2.T + b2

    def ce(Y):
        return torch.mean(torch.logsumexp(Y, 1) - torch.sum(T * Y, 1))

    def L(w):
        return ce(net(w, X))

    def ggn():
        Y, Jv = jvp(lambda w: net(w, X), (w,), (v,))
        HJv = jvp(grad(ce), (Y,), (Jv,))[1]
        return vjp(lambda w: net(w, X), w)[1](HJv)[0]

    def gn():
        J = jacrev(lambda w: net(w, X))(w)
        P = torch.softmax(net(w, X), 1)
        HL = (torch.diag_embed(P) - P[:, :, None] * P[:, None, :]) / pb.B
        return torch.einsum("bin,bij,bjm->nm", J, HL, J)

    fns = {
        "gradient": lambda: grad(L)(w),
        "jacobian": lambda: jacrev(lambda w: net(w, Xj))(w),
        "hessian": lambda: hessian(L)(w),
        "ggn_vp": ggn,
        "hvp": lambda: jvp(grad(L), (w,), (v,))[1],
        "gauss_newton": gn,
    }
    return {k: (lambda f=f: f().detach().numpy()) for k, f in fns.items()}


def available_backends():
    """Backend name -> factory, the optional ones only when importable."""
    backends = {"minigrad": make_minigrad, "numpy": make_numpy, "autograd": make_autograd}
    for name, module, factory in (("jax", "jax", make_jax), ("torch", "torch", make_torch)):
        try:
            __import__(module)
        except ImportError:
            continue
        backends[name] = factory
    return backends
