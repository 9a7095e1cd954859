"""A reverse-mode automatic differentiation engine on NumPy arrays.

A `Tensor` wraps an ndarray and remembers how it was made: its parents and a `_backward`
closure that, given dL/d(self), adds each parent's share of the gradient (the chain rule,
one operation at a time). `loss.backward()` orders the graph topologically and runs those
closures from the loss back to the leaves, as torch.autograd does (Baydin et al. 2018,
"Automatic differentiation in machine learning: a survey", arXiv:1502.05767).

Broadcasting: NumPy stretches a (3,) array against a (2, 3) one; on the way back the gradient
must be summed over the stretched axes so it has the parent's shape again (`_unbroadcast`).
Everything is vectorised; float64 and float32 are both kept as given.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

ArrayLike = "np.ndarray | float | int | Sequence"  # what Tensor() accepts


class no_grad:
    """Context manager: operations inside record no graph (for evaluation and optimizer updates)."""

    enabled = True

    def __enter__(self):
        self._prev, no_grad.enabled = no_grad.enabled, False

    def __exit__(self, *exc):
        no_grad.enabled = self._prev


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` over the axes that broadcasting added or stretched, back to `shape`."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    __array_priority__ = 100  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype=None,
                 _parents: tuple["Tensor", ...] = (), _op: str = ""):
        arr = np.asarray(data, dtype=dtype)
        if arr.dtype.kind not in "fiub":
            arr = arr.astype(np.float64)
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError("only floating-point tensors can require gradients")
        self.data: np.ndarray = arr
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._parents = _parents
        self._backward: Callable[[np.ndarray], None] | None = None
        self._op = _op

    # --- basics --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Tensor({self.data!r}{', requires_grad=True' if self.requires_grad else ''})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    @staticmethod
    def _lift(x, like: "Tensor") -> "Tensor":
        if isinstance(x, Tensor):
            return x
        return Tensor(np.asarray(x, dtype=like.data.dtype))

    def _make(self, data: np.ndarray, parents: tuple["Tensor", ...], op: str,
              backward: Callable[[np.ndarray], None]) -> "Tensor":
        """A new node; it records its parents only if gradients are being tracked."""
        needs = no_grad.enabled and any(p.requires_grad for p in parents)
        out = Tensor(data, requires_grad=needs, _parents=parents if needs else (), _op=op)
        if needs:
            out._backward = backward
        return out

    @staticmethod
    def _accumulate(t: "Tensor", g: np.ndarray) -> None:
        if not t.requires_grad:
            return
        g = _unbroadcast(g, t.shape).astype(t.data.dtype, copy=False)
        t.grad = g.copy() if t.grad is None else t.grad + g

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad: np.ndarray | None = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad (self must be a scalar unless grad is given)."""
        # reverse-mode accumulation: adjoints from the output back to the leaves, @baydin2018ad
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError("backward() without a gradient needs a scalar output")
            grad = np.ones_like(self.data)
        order: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative DFS: deep graphs (long RNN chains) must not hit the recursion limit
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
        grads: dict[int, np.ndarray] = {id(self): np.asarray(grad, dtype=self.data.dtype)}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                Tensor._accumulate(node, g)
                continue
            for parent, pg in node._backward(g):
                if parent.requires_grad and pg is not None:
                    pg = _unbroadcast(pg, parent.shape)
                    grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg

    # --- elementwise arithmetic ------------------------------------------------------------------
    def __add__(self, other) -> "Tensor":
        other = self._lift(other, self)
        return self._make(self.data + other.data, (self, other), "add", lambda g: ((self, g), (other, g)))

    __radd__ = __add__

    def __neg__(self) -> "Tensor":
        return self._make(-self.data, (self,), "neg", lambda g: ((self, -g),))

    def __sub__(self, other) -> "Tensor":
        other = self._lift(other, self)
        return self._make(self.data - other.data, (self, other), "sub", lambda g: ((self, g), (other, -g)))

    def __rsub__(self, other) -> "Tensor":
        return self._lift(other, self) - self

    def __mul__(self, other) -> "Tensor":
        other = self._lift(other, self)
        return self._make(self.data * other.data, (self, other), "mul",
                          lambda g: ((self, g * other.data), (other, g * self.data)))

    __rmul__ = __mul__

    def __truediv__(self, other) -> "Tensor":
        other = self._lift(other, self)
        return self._make(self.data / other.data, (self, other), "div",
                          lambda g: ((self, g / other.data), (other, -g * self.data / other.data**2)))

    def __rtruediv__(self, other) -> "Tensor":
        return self._lift(other, self) / self

    def __pow__(self, p: float) -> "Tensor":
        if isinstance(p, Tensor):
            raise TypeError("only constant exponents are supported")
        # d(x^p)/dx = p x^(p-1)
        return self._make(self.data**p, (self,), "pow", lambda g: ((self, g * p * self.data ** (p - 1)),))

    # --- matrix product --------------------------------------------------------------------------
    def __matmul__(self, other) -> "Tensor":
        other = self._lift(other, self)
        a, b = self.data, other.data

        def backward(g):
            # C = A B  =>  dA = dC B^T,  dB = A^T dC  (batched: over the leading axes)
            if a.ndim == 1 and b.ndim == 1:
                return ((self, g * b), (other, g * a))
            if b.ndim == 1:
                return ((self, np.expand_dims(g, -1) * b), (other, np.tensordot(g, a, axes=(list(range(g.ndim)), list(range(a.ndim - 1))))))
            if a.ndim == 1:
                return ((self, g @ np.swapaxes(b, -1, -2)), (other, np.expand_dims(a, -1) * np.expand_dims(g, -2)))
            return ((self, g @ np.swapaxes(b, -1, -2)), (other, np.swapaxes(a, -1, -2) @ g))

        return self._make(a @ b, (self, other), "matmul", backward)

    def __rmatmul__(self, other) -> "Tensor":
        return self._lift(other, self) @ self

    # --- reductions --------------------------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return ((self, np.broadcast_to(g, self.shape)),)

        return self._make(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum", backward)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> "Tensor":
        n = self.data.size if axis is None else np.prod([self.shape[a] for a in np.atleast_1d(axis)])
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / n)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, unbiased: bool = False) -> "Tensor":
        n = self.data.size if axis is None else np.prod([self.shape[a] for a in np.atleast_1d(axis)])
        centred = self - self.mean(axis=axis, keepdims=True)
        return (centred * centred).sum(axis=axis, keepdims=keepdims) * (1.0 / (n - 1 if unbiased else n))

    def max(self, axis: int | None = None, keepdims: bool = False) -> "Tensor":
        out = self.data.max(axis=axis, keepdims=True)

        def backward(g):
            # The gradient flows to the arg-max; ties share it equally (as torch's amax does).
            mask = (self.data == out).astype(self.data.dtype)
            mask /= mask.sum(axis=axis, keepdims=True)
            gk = g if keepdims or axis is None else np.expand_dims(g, axis)
            return ((self, mask * gk),)

        data = out if keepdims else (out.squeeze(axis) if axis is not None else out.reshape(()))
        return self._make(data, (self,), "max", backward)

    # --- elementwise functions ---------------------------------------------------------------------
    def exp(self) -> "Tensor":
        e = np.exp(self.data)
        return self._make(e, (self,), "exp", lambda g: ((self, g * e),))

    def log(self) -> "Tensor":
        return self._make(np.log(self.data), (self,), "log", lambda g: ((self, g / self.data),))

    def sqrt(self) -> "Tensor":
        return self ** 0.5

    def abs(self) -> "Tensor":
        return self._make(np.abs(self.data), (self,), "abs", lambda g: ((self, g * np.sign(self.data)),))

    def relu(self) -> "Tensor":
        return self._make(np.maximum(self.data, 0), (self,), "relu", lambda g: ((self, g * (self.data > 0)),))

    def leaky_relu(self, slope: float = 0.01) -> "Tensor":
        pos = self.data > 0
        return self._make(np.where(pos, self.data, slope * self.data), (self,), "leaky_relu",
                          lambda g: ((self, g * np.where(pos, 1.0, slope).astype(self.data.dtype)),))

    def tanh(self) -> "Tensor":
        t = np.tanh(self.data)
        return self._make(t, (self,), "tanh", lambda g: ((self, g * (1 - t * t)),))

    def sigmoid(self) -> "Tensor":
        # Stable form: never exponentiate a large positive number.
        x = self.data
        s = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
        return self._make(s, (self,), "sigmoid", lambda g: ((self, g * s * (1 - s)),))

    def gelu(self) -> "Tensor":
        """Exact GELU, x * Phi(x) (Hendrycks & Gimpel 2016, arXiv:1606.08415)."""
        from scipy.special import erf

        x = self.data
        cdf = 0.5 * (1 + erf(x / np.sqrt(2)))
        pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        return self._make((x * cdf).astype(x.dtype), (self,), "gelu", lambda g: ((self, (g * (cdf + x * pdf)).astype(x.dtype)),))

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """x - logsumexp(x), computed after subtracting the max so exp never overflows."""
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        out = shifted - lse
        softmax = np.exp(out)
        # d/dx_i of sum_j g_j (x_j - lse) = g_i - softmax_i * sum_j g_j
        return self._make(out, (self,), "log_softmax", lambda g: ((self, g - softmax * g.sum(axis=axis, keepdims=True)),))

    def softmax(self, axis: int = -1) -> "Tensor":
        return self.log_softmax(axis).exp()

    # --- shape ---------------------------------------------------------------------------------------
    def reshape(self, *shape) -> "Tensor":
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return self._make(self.data.reshape(shape), (self,), "reshape", lambda g: ((self, g.reshape(self.shape)),))

    def flatten(self, start: int = 1) -> "Tensor":
        return self.reshape(*self.shape[:start], -1)

    def transpose(self, *axes) -> "Tensor":
        axes = axes or tuple(reversed(range(self.ndim)))
        inverse = np.argsort(axes)
        return self._make(self.data.transpose(axes), (self,), "transpose", lambda g: ((self, g.transpose(inverse)),))

    def __getitem__(self, idx) -> "Tensor":
        if isinstance(idx, Tensor):
            idx = idx.data
        if isinstance(idx, tuple):
            idx = tuple(i.data if isinstance(i, Tensor) else i for i in idx)

        def backward(g):
            full = np.zeros_like(self.data)
            np.add.at(full, idx, g)  # add.at: repeated indices accumulate
            return ((self, full),)

        return self._make(self.data[idx], (self,), "getitem", backward)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype=np.float64) -> Tensor:
    return Tensor(np.asarray(data, dtype=dtype), requires_grad=requires_grad)


def stack(tensors: Iterable[Tensor], axis: int = 0) -> Tensor:
    ts = list(tensors)
    data = np.stack([t.data for t in ts], axis=axis)

    def backward(g):
        parts = np.moveaxis(g, axis, 0)
        return tuple((t, parts[i]) for i, t in enumerate(ts))

    return ts[0]._make(data, tuple(ts), "stack", backward)
