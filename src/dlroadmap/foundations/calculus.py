"""Calculus for deep learning: derivatives, gradients, the chain rule, partial derivatives.

 1. A derivative is a limit of difference quotients. The central difference
    (f(x + h) - f(x - h)) / 2h has error O(h^2) (the forward one only O(h)), but h cannot be
    too small: rounding error grows like eps / h. h ~ eps^(1/3) balances the two.
 2. The gradient collects the partial derivatives of a scalar function of many variables; the
    Jacobian does the same for a vector function; the Hessian is the Jacobian of the gradient.
 3. The chain rule: (f o g)'(x) = f'(g(x)) g'(x); for vectors, J_{f o g} = J_f(g(x)) J_g(x).
    Backpropagation is the chain rule applied from the output backwards (vector-Jacobian products).
 4. A gradient checker compares an analytic gradient with central differences: the test every
    hand-written backward pass should pass.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]


def derivative(f: Callable[[float], float], x: float, h: float = 1e-5, method: str = "central") -> float:
    """df/dx at x by finite differences: central (O(h^2)), forward or backward (O(h))."""
    # forward and central differences, sec. 8.1, @nocedal2006numerical
    if method == "central":
        return (f(x + h) - f(x - h)) / (2 * h)
    if method == "forward":
        return (f(x + h) - f(x)) / h
    if method == "backward":
        return (f(x) - f(x - h)) / h
    raise ValueError("method must be central, forward or backward")


def gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Numerical gradient: one central difference per coordinate (2 n evaluations of f)."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def jacobian(f: Fn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """J[i, j] = d f_i / d x_j, shape (m, n) for f: R^n -> R^m."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        e = e.reshape(x.shape)
        cols.append((np.ravel(f(x + e)) - np.ravel(f(x - e))) / (2 * h))
    return np.stack(cols, axis=1)


def hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """H[i, j] = d^2 f / dx_i dx_j: the Jacobian of the numerical gradient (symmetrised)."""
    H = jacobian(lambda z: gradient(f, z, h), x, h)
    return (H + H.T) / 2


def grad_check(f: Callable[[np.ndarray], float], grad_f: Fn, x: np.ndarray, h: float = 1e-6) -> float:
    """Relative error |g_analytic - g_numeric| / max(|g_analytic| + |g_numeric|, tiny).
    Around 1e-8 or below in float64 means the analytic gradient is right."""
    ga, gn = np.asarray(grad_f(x), dtype=np.float64), gradient(f, x, h)
    return float(np.linalg.norm(ga - gn) / max(np.linalg.norm(ga) + np.linalg.norm(gn), 1e-300))


def finite_difference_errors(f: Callable[[float], float], df: Callable[[float], float], x: float, hs: np.ndarray) -> dict[str, np.ndarray]:
    """Absolute error of forward and central differences for each step size h (for the h plot)."""
    exact = df(x)
    return {m: np.array([abs(derivative(f, x, h, m) - exact) for h in hs]) for m in ("forward", "central")}


# --- the chain rule, by example -------------------------------------------------------------------
# A small composed function, with each stage's derivative written by hand:
#   u = W x + b         du/dx = W
#   v = tanh(u)         dv/du = diag(1 - tanh(u)^2)
#   y = sum(v ** 2)     dy/dv = 2 v
# so dy/dx = W^T [(1 - tanh(u)^2) * 2 v]: the chain rule, as a product of Jacobians applied right to left.


def composed(W: np.ndarray, b: np.ndarray) -> tuple[Callable[[np.ndarray], float], Fn]:
    def f(x: np.ndarray) -> float:
        return float(np.sum(np.tanh(W @ x + b) ** 2))

    def grad(x: np.ndarray) -> np.ndarray:
        u = W @ x + b
        v = np.tanh(u)
        dy_dv = 2 * v
        dy_du = dy_dv * (1 - v**2)     # through tanh, elementwise
        return W.T @ dy_du             # through the affine map

    return f, grad


def chain_rule_jacobians(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """The three stage Jacobians and their product, as matrices (for display and for the test)."""
    u = W @ x + b
    v = np.tanh(u)
    J_u = W                                  # (m, n)
    J_v = np.diag(1 - v**2)                  # (m, m)
    J_y = (2 * v)[None, :]                   # (1, m)
    return {"J_affine": J_u, "J_tanh": J_v, "J_square_sum": J_y, "J_total": J_y @ J_v @ J_u}


# --- partial derivatives of classic functions, analytic forms for checking ---------------------------


def rosenbrock(p: np.ndarray, a: float = 1.0, b: float = 100.0) -> float:
    """f(x, y) = (a - x)^2 + b (y - x^2)^2: a curved valley, minimum at (a, a^2)."""
    # f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, @rosenbrock1960automatic
    x, y = p
    return float((a - x) ** 2 + b * (y - x**2) ** 2)


def rosenbrock_grad(p: np.ndarray, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x, y = p
    return np.array([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)])


def rosenbrock_hessian(p: np.ndarray, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x, y = p
    return np.array([[2 - 4 * b * (y - x**2) + 8 * b * x**2, -4 * b * x], [-4 * b * x, 2 * b]])


def polar_to_cartesian(p: np.ndarray) -> np.ndarray:
    """(r, theta) -> (r cos theta, r sin theta); its Jacobian has determinant r."""
    r, t = p
    return np.array([r * np.cos(t), r * np.sin(t)])


def polar_jacobian(p: np.ndarray) -> np.ndarray:
    r, t = p
    return np.array([[np.cos(t), -r * np.sin(t)], [np.sin(t), r * np.cos(t)]])
