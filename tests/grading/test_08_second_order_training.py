"""Graded tests of the second-order training exercises (solutions/08_second_order_training.ipynb).

Every argument is plain data made here and every reference is computed here. Each positive test
checks several cases, so that a stub that only raises ValueError, or returns an empty tuple,
earns nothing.
"""
import numpy as np
import pytest

from gradetools import WrongAnswer, expect, expect_choices, raises_value_error

NOTEBOOK = "08_second_order_training"

#: the section of book/08_second_order_training.ipynb each exercise practises, as its heading reads there
#: (the feedback pages link to it; tests/test_grader_feedback.py checks it exists)
SECTIONS = {
    "8.1": "Hessian-free, as Martens runs it",
    "8.2": "Newton, Gauss-Newton and damping",
    "8.3": "Hessian-free, as Martens runs it",
    "8.4": "The mini-batch race",
    "8.5": "Newton, Gauss-Newton and damping",
}


def spd(n, seed, low=0.1):
    r = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(r.standard_normal((n, n)))
    return Q @ np.diag(low + r.uniform(0, 3, n)) @ Q.T


def number(got, who):
    if isinstance(got, (list, tuple, dict, str)) or got is None or np.ndim(got) != 0:
        raise WrongAnswer(f"{who} must be one number, got {got!r:.80}")
    return float(got)


def pair(got, who):
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        raise WrongAnswer(f"{who} must return a pair, got {got!r:.80}")
    return got


# ---------------------------------------------------------------- 8.1
def quadratic_case(seed, n):
    rng = np.random.default_rng(seed)
    return spd(n, seed), rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)


def expect_exact_step(got, A, b, x, d):
    alpha, q_new = pair(got, "exact_step")
    r = b - A @ x
    want = d @ r / (d @ A @ d)
    y = x + want * d
    expect(number(alpha, "alpha"), want, variants={
        "has the wrong sign: the residual is r = b - A x, and q falls along d when d^T r > 0": -want,
        "divides by d^T d instead of the curvature d^T A d along d": d @ r / (d @ d)})
    q_x = 0.5 * x @ A @ x - b @ x
    expect(number(q_new, "q_new"), 0.5 * y @ A @ y - b @ y, variants={
        "is the change of q along the step, not its value there: add q(x)": 0.5 * y @ A @ y - b @ y - q_x})


@pytest.mark.exercise("8.1", points=3)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 8, 10, 12, 15])
def test_exact_step(nb, n):
    for seed in (810 + n, 830 + n):
        expect_exact_step(nb.call("exact_step", *quadratic_case(seed, n)), *quadratic_case(seed, n))


@pytest.mark.exercise("8.1", points=3)
def test_exact_step_refuses_a_direction_without_curvature(nb):
    A, b, x, d = quadratic_case(850, 4)
    expect_exact_step(nb.call("exact_step", A, b, x, d), A, b, x, d)                # a positive case first
    raises_value_error(lambda: nb.call("exact_step", -A, b, x, d))


# ---------------------------------------------------------------- 8.2
def radius_case(seed, n):
    return spd(n, seed, low=0.05), np.random.default_rng(seed + 1).standard_normal(n)


def step_norm(G, g, lam):
    return np.linalg.norm(np.linalg.solve(G + lam * np.eye(len(g)), g))


def reference_damping(G, g, radius):
    sigma, Q = np.linalg.eigh(G)
    c = Q.T @ g
    f = lambda lam: np.sqrt(np.sum((c / (sigma + lam)) ** 2))
    if f(0.0) <= radius:
        return 0.0
    low, high = 0.0, np.linalg.norm(g) / radius
    for _ in range(300):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if f(mid) > radius else (low, mid)
    return 0.5 * (low + high)


def expect_damping(nb, G, g, radius):
    lam = number(nb.call("damping_for_radius", G, g, radius), "damping_for_radius")
    want = reference_damping(G, g, radius)
    expect(lam, want, tol=1e-8, variants={
        "is the damping for a step of length sqrt(radius): compare the length, not its square, with the radius":
            reference_damping(G, g, np.sqrt(radius)),
        "is the bisection's starting upper end ||g|| / r: search below it": np.linalg.norm(g) / radius,
        "is negative: the step must be damped, lambda >= 0": -want})


@pytest.mark.exercise("8.2", points=4)
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 8, 10, 12])
def test_damping_for_radius(nb, n):
    G, g = radius_case(860 + n, n)
    full = step_norm(G, g, 0.0)
    for radius in (0.05 * full, 0.5 * full, 0.9 * full):
        expect_damping(nb, G, g, radius)


@pytest.mark.exercise("8.2", points=4)
def test_damping_is_zero_inside_the_region(nb):
    G, g = radius_case(880, 5)
    expect_damping(nb, G, g, 0.3 * step_norm(G, g, 0.0))                            # a damped case first
    expect_damping(nb, G, g, 2.0 * step_norm(G, g, 0.0))


@pytest.mark.exercise("8.2", points=4)
def test_damping_refuses_a_radius_that_is_not_positive(nb):
    G, g = radius_case(881, 4)
    expect_damping(nb, G, g, 0.5 * step_norm(G, g, 0.0))                            # a positive case first
    raises_value_error(lambda: nb.call("damping_for_radius", G, g, 0.0))


# ---------------------------------------------------------------- 8.3
def expect_interpolated(nb, f0, slope, f1):
    got = number(nb.call("interpolated_step", f0, slope, f1), "interpolated_step")
    curv = f1 - f0 - slope
    want = -slope / (2 * curv)
    expect(got, want, variants={"has the wrong sign: with a negative slope the step is positive": -want,
                                "is twice the step: the derivative of c alpha^2 is 2 c alpha": 2 * want,
                                "is half the step": want / 2})


@pytest.mark.exercise("8.3", points=3)
@pytest.mark.parametrize("seed", range(9))
def test_interpolated_step(nb, seed):
    rng = np.random.default_rng(890 + seed)
    for _ in range(3):
        f0, slope = rng.standard_normal(), -rng.uniform(0.1, 3)
        f1 = f0 + slope + rng.uniform(0.1, 5)                  # a parabola that opens upwards
        expect_interpolated(nb, f0, slope, f1)


@pytest.mark.exercise("8.3", points=3)
def test_interpolated_step_refuses_a_parabola_without_minimum(nb):
    expect_interpolated(nb, 1.0, -1.0, 0.5)                                         # a positive case first
    raises_value_error(lambda: nb.call("interpolated_step", 1.0, -1.0, -1.0))


# ---------------------------------------------------------------- 8.4
def expect_debiased(nb, seed, beta, t):
    rng = np.random.default_rng(seed)
    c, g = rng.standard_normal(5), rng.standard_normal(5)
    m = c.copy()
    for _ in range(t):
        m = beta * m + (1 - beta) * g
    got = nb.call("debiased_average", m, c, beta, t)
    expect(got, g, variants={"is Adam's m_t / (1 - beta^t), which assumes m_0 = 0": m / (1 - beta ** t),
                             "is m_t itself: the start c still weighs beta^t in it": m,
                             "removes the start but does not divide by 1 - beta^t, the weight left on g":
                             m - beta ** t * c,
                             "uses beta^(t-1): after t steps the start c weighs beta^t":
                             (m - beta ** (t - 1) * c) / (1 - beta ** (t - 1)) if t > 1 else np.full_like(m, np.inf)})


@pytest.mark.exercise("8.4", points=3)
@pytest.mark.parametrize("beta", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.7, 0.6, 0.3])
def test_debiased_average(nb, beta):
    for t in (2, 7, 30, 1):                       # t = 2 first: an off-by-one in t is named there
        expect_debiased(nb, 900 + t, beta, t)


@pytest.mark.exercise("8.4", points=3)
def test_debiased_average_refuses_a_bad_rate(nb):
    expect_debiased(nb, 950, 0.9, 3)                                                # a positive case first
    raises_value_error(lambda: nb.call("debiased_average", np.ones(2), np.zeros(2), 1.0, 3))


# ---------------------------------------------------------------- 8.5
IMPLICATIONS = [("shrink", "the step length decreases with lambda, so a longer allowed step needs less damping"),
                (1, "one value f(1) fixes the only unknown coefficient; on a quadratic the parabola is f itself"),
                (True, "alpha = d^T r / d^T A d with r = -g and d = -g is ||g||^2 / g^T (G + lambda I) g")]


@pytest.mark.exercise("8.5", points=1)
def test_implications(nb):
    expect_choices(nb.call("implications"), IMPLICATIONS, "implications")
