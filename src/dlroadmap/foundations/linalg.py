"""Linear algebra for deep learning: tensors, matrix multiplication, eigenvalues, PCA.

Read top to bottom:
 1. Tensors are n-dimensional arrays: a shape, a dtype, and strides that say how many bytes to
    step along each axis. Views (transpose, reshape, slicing) change shape and strides, not data.
    Broadcasting lines shapes up from the right; size-1 axes stretch.
 2. Matrix multiplication three ways: naive triple loop, cache-blocked, and BLAS (NumPy's @).
    Same arithmetic (2 n^3 flops), very different speed: memory traffic and vector units matter.
 3. Eigenvalues: power iteration finds the dominant eigenpair; the QR algorithm (Francis 1961,
    Kublanovskaya 1961) finds all of them by repeated A = QR -> RQ, with shifts and deflation.
 4. PCA (Pearson 1901; Hotelling 1933) is the eigendecomposition of the covariance matrix.
"""

from __future__ import annotations

import itertools

import time

import numpy as np

# --- 1. vectors, matrices, tensors -------------------------------------------------------------


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy/PyTorch broadcasting rule, written out: align shapes on the right; each axis must
    be equal or 1 (the 1 stretches); missing leading axes count as 1."""
    # broadcasting, ch. 2 (sec. 2.1), @goodfellow2016dl
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(ndim):
        sizes = {s[len(s) - ndim + axis] for s in shapes if len(s) - ndim + axis >= 0} - {1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {shapes} cannot be broadcast: axis {axis - ndim} has sizes {sorted(sizes)}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def strides_for(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Row-major (C order) strides: the last axis is contiguous, each earlier one jumps a whole row."""
    # strides: the bytes to step along each axis, @vanderwalt2011numpy
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def is_view(a: np.ndarray, base: np.ndarray) -> bool:
    """True when `a` shares memory with `base` (no copy was made)."""
    return np.shares_memory(a, base)


def einsum(spec: str, *operands: np.ndarray) -> np.ndarray:
    """Einstein summation by its definition: loop over every value of every index letter; multiply the
    operands' entries; add the product into the output entry named by the output letters. Letters
    absent from the output are summed over. "ik,kj->ij" is matmul, "ii->" the trace, "i,j->ij" outer."""
    inputs, _, output = spec.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"{spec!r} names {len(terms)} operands, got {len(operands)}")
    sizes: dict[str, int] = {}
    for term, op in zip(terms, operands):
        if len(term) != op.ndim:
            raise ValueError(f"operand of shape {op.shape} does not match {term!r}")
        for letter, n in zip(term, op.shape):
            if sizes.setdefault(letter, n) != n:
                raise ValueError(f"index {letter!r} has sizes {sizes[letter]} and {n}")
    letters = list(sizes)
    out = np.zeros([sizes[c] for c in output])
    for values in itertools.product(*(range(sizes[c]) for c in letters)):
        at = dict(zip(letters, values))
        prod = 1.0
        for term, op in zip(terms, operands):
            prod *= op[tuple(at[c] for c in term)]
        out[tuple(at[c] for c in output)] += prod
    return out


def einsum_examples(rng: np.random.Generator) -> dict[str, float]:
    """Our loop-by-definition einsum against NumPy's on the classic specs: max |difference| per spec."""
    A, B = rng.normal(size=(4, 5)), rng.normal(size=(5, 3))
    v, w = rng.normal(size=5), rng.normal(size=5)
    X = rng.normal(size=(3, 4, 5))
    cases = {"dot": ("i,i->", v, w), "matmul": ("ik,kj->ij", A, B), "transpose": ("ij->ji", A), "outer": ("i,j->ij", v, w),
             "trace": ("ii->", A[:, :4]), "batched_matmul": ("bik,kj->bij", X, B), "row_sums": ("ij->i", A),
             "bilinear": ("i,ij,j->", A[:, 0], A, v)}
    return {k: float(np.abs(einsum(spec, *ops) - np.einsum(spec, *ops)).max()) for k, (spec, *ops) in cases.items()}


# --- 2. matrix multiplication ----------------------------------------------------------------------


def matmul_naive(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """C[i, j] = sum_k A[i, k] B[k, j], one scalar multiply-add at a time (pure Python loops)."""
    n, m = A.shape
    m2, p = B.shape
    if m != m2:
        raise ValueError(f"inner dimensions differ: {A.shape} @ {B.shape}")
    a, b = A.tolist(), B.tolist()
    C = [[0.0] * p for _ in range(n)]
    for i in range(n):
        row, ci = a[i], C[i]
        for k in range(m):
            aik, bk = row[k], b[k]
            for j in range(p):   # i-k-j order: walks B and C row by row (contiguous)
                ci[j] += aik * bk[j]
    return np.array(C, dtype=A.dtype)


def matmul_blocked(A: np.ndarray, B: np.ndarray, block: int = 64) -> np.ndarray:
    """Cache blocking: multiply tile by tile so each tile of A, B and C stays in cache while it is
    reused. The tile product is written as rank-1 updates (one column of A times one row of B,
    vectorised over the tile), so no BLAS GEMM is called."""
    # blocking so each tile of A and B is reused from cache, @goto2008anatomy
    n, m = A.shape
    p = B.shape[1]
    C = np.zeros((n, p), dtype=np.result_type(A, B))
    for i0 in range(0, n, block):
        for j0 in range(0, p, block):
            c = C[i0:i0 + block, j0:j0 + block]          # a view: updates land in C
            for k0 in range(0, m, block):
                a = A[i0:i0 + block, k0:k0 + block]
                b = B[k0:k0 + block, j0:j0 + block]
                for k in range(a.shape[1]):
                    c += a[:, k:k + 1] * b[k:k + 1, :]  # outer product, broadcast
    return C


def matmul_blas(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """NumPy's @ calls the BLAS GEMM (OpenBLAS here): packed tiles, SIMD micro-kernels, threads."""
    return A @ B


def gflops(n: int, seconds: float) -> float:
    """An n x n by n x n product is n^3 multiply-adds = 2 n^3 floating-point operations."""
    return 2 * n**3 / seconds / 1e9


def time_matmul(fn, n: int, dtype=np.float64, repeats: int = 3, seed: int = 0) -> float:
    """Best-of-`repeats` GFLOP/s of `fn` on random n x n matrices."""
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(n, n)).astype(dtype), rng.normal(size=(n, n)).astype(dtype)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(A, B)
        best = min(best, time.perf_counter() - t0)
    return gflops(n, best)


# --- 3. eigenvalues and eigenvectors -----------------------------------------------------------------


def power_iteration(A: np.ndarray, iters: int = 1000, tol: float = 1e-12, seed: int = 0) -> tuple[float, np.ndarray, list[float]]:
    """Dominant eigenpair: repeatedly apply A and normalise. The component along the top
    eigenvector grows fastest; the error shrinks like |lambda_2 / lambda_1|^k.
    Returns (eigenvalue, unit eigenvector, Rayleigh-quotient estimate at each step)."""
    v = np.random.default_rng(seed).normal(size=A.shape[0])
    v /= np.linalg.norm(v)
    estimates = []
    lam = 0.0
    for _ in range(iters):
        w = A @ v
        v_new = w / np.linalg.norm(w)
        lam = float(v_new @ A @ v_new)   # Rayleigh quotient v^T A v (v unit length)
        estimates.append(lam)
        if min(np.linalg.norm(v_new - v), np.linalg.norm(v_new + v)) < tol:
            v = v_new
            break
        v = v_new
    return lam, v, estimates


def householder_qr(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A = Q R with Householder reflections (real or complex): each reflection zeroes one column
    below the diagonal. Q is unitary, R upper triangular."""
    R = np.array(A, dtype=np.result_type(A, np.float64), copy=True)
    m, n = R.shape
    Q = np.eye(m, dtype=R.dtype)
    for k in range(min(m - 1, n)):
        x = R[k:, k]
        norm_x = np.linalg.norm(x)
        if norm_x == 0:
            continue
        # Reflect x onto -phase(x0) |x| e1: choosing the sign opposite to x0 avoids cancellation.
        phase = x[0] / abs(x[0]) if x[0] != 0 else 1.0
        v = x.copy()
        v[0] += phase * norm_x
        v /= np.linalg.norm(v)
        R[k:, :] -= 2 * np.outer(v, v.conj() @ R[k:, :])
        Q[:, k:] -= 2 * np.outer(Q[:, k:] @ v, v.conj())
    return Q, np.triu(R)


def _wilkinson_shift(a: complex, b: complex, c: complex, d: complex) -> complex:
    """The eigenvalue of the trailing 2x2 block [[a, b], [c, d]] closer to d."""
    # the Wilkinson shift of the symmetric QR algorithm (sec. 8.3), @golub2013matrix
    tr, det = a + d, a * d - b * c
    disc = np.sqrt(complex(tr * tr / 4 - det))
    l1, l2 = tr / 2 + disc, tr / 2 - disc
    return l1 if abs(l1 - d) < abs(l2 - d) else l2


def qr_algorithm(A: np.ndarray, tol: float = 1e-13, max_iter: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """All eigenvalues by the shifted QR algorithm.

    A_{k+1} = R_k Q_k + mu I where A_k - mu I = Q_k R_k: a similarity transform (same eigenvalues)
    that drives the matrix to (upper) triangular Schur form. The Wilkinson shift mu makes the
    last row converge fast; once it is ~0 the last eigenvalue is found and the problem shrinks by
    one (deflation). Symmetric input stays real and gives orthonormal eigenvectors (the
    accumulated Q); general input is handled in complex arithmetic (complex eigenvalues allowed).
    Returns (eigenvalues, Q) with A = Q T Q^H.
    """
    # the QR iteration: A = QR, A <- RQ, @francis1961qr
    A = np.asarray(A)
    symmetric = np.isrealobj(A) and np.allclose(A, A.T)
    T = np.array(A, dtype=np.float64 if symmetric else np.complex128, copy=True)
    n = T.shape[0]
    Q_total = np.eye(n, dtype=T.dtype)
    scale = np.abs(T).max() or 1.0
    m, it = n, 0
    while m > 1:
        if np.abs(T[m - 1, :m - 1]).max() < tol * scale:  # last row of the active block converged
            m -= 1
            continue
        it += 1
        if it > max_iter:
            raise RuntimeError("QR algorithm did not converge")
        mu = _wilkinson_shift(T[m - 2, m - 2], T[m - 2, m - 1], T[m - 1, m - 2], T[m - 1, m - 1])
        if symmetric:
            mu = mu.real
        if it % 11 == 0:  # an exceptional shift now and then breaks rare cycles
            mu = mu + 0.75 * abs(T[m - 1, m - 2])
        I = np.eye(m, dtype=T.dtype)
        Q, R = householder_qr(T[:m, :m] - mu * I)
        T[:m, :m] = R @ Q + mu * I
        T[:m, m:] = Q.conj().T @ T[:m, m:]   # keep the whole matrix similar to A
        Q_total[:, :m] = Q_total[:, :m] @ Q
    return np.diag(T).copy(), Q_total


def eig_symmetric(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending, as numpy.linalg.eigh) and orthonormal eigenvectors of a symmetric matrix."""
    vals, vecs = qr_algorithm(A)
    order = np.argsort(vals.real)
    return vals.real[order], vecs.real[:, order]


def eigvec_inverse_iteration(A: np.ndarray, lam: complex, iters: int = 3) -> np.ndarray:
    """Eigenvector for a known eigenvalue: (A - lam I) is nearly singular, so solving with it
    amplifies the eigenvector's direction enormously. A few steps suffice."""
    n = A.shape[0]
    M = A.astype(np.complex128) - (lam + 1e-10 * (1 + abs(lam))) * np.eye(n)
    v = np.ones(n, dtype=np.complex128) / np.sqrt(n)
    for _ in range(iters):
        v = np.linalg.solve(M, v)
        v /= np.linalg.norm(v)
    return v


# --- 4. PCA ---------------------------------------------------------------------------------------------


def pca(X: np.ndarray, k: int, solver=eig_symmetric) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components from the covariance matrix C = Xc^T Xc / (n - 1).

    Its eigenvectors are the directions of maximal variance; its eigenvalues are the variances
    along them ("explained variance"). Returns (projected data, components (k, d), variances (k,)).
    Signs are fixed so the largest-magnitude entry of each component is positive (eigenvectors
    are only defined up to sign).
    """
    # the line (plane) of closest fit to the points, @pearson1901lines
    # principal components: eigenvectors of the covariance matrix, @hotelling1933analysis
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc / (len(X) - 1)
    vals, vecs = solver(C)
    order = np.argsort(vals)[::-1][:k]
    comps = vecs[:, order].T
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= signs[:, None]
    return Xc @ comps.T, comps, vals[order]


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles (radians, largest first) between the column spaces of A (d, p) and B (d, q).

    With orthonormal bases Q_A, Q_B (from QR), the singular values of Q_A^T Q_B are the cosines of the
    angles (Bjorck & Golub 1973): 0 when one space contains a direction of the other, pi/2 when orthogonal.
    Two k-dimensional subspaces are equal iff all k angles are 0, whatever bases span them.
    """
    qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    # arccos loses precision near 0; the sine form (svd of the part of B outside A) is exact there.
    sines = np.linalg.svd(qb - qa @ (qa.T @ qb), compute_uv=False) if qb.shape[1] <= qa.shape[1] else \
        np.linalg.svd(qa - qb @ (qb.T @ qa), compute_uv=False)
    angles = np.where(cosines**2 < 0.5, np.arccos(np.clip(cosines, -1, 1)), np.arcsin(np.clip(sines[::-1], -1, 1)))
    return np.sort(angles)[::-1]
