"""The Fiedler vector of a node's graph (Shi & Malik 2000, eq. (6), (7) and section 3.2.3).

(D - W) y = lambda D y (eq. 6)  <=>  D^-1/2 (D - W) D^-1/2 z = lambda z with z = D^1/2 y (eq. 7).
The smallest eigenpair of eq. (7) is known in closed form: lambda = 0, z0 = D^1/2 1, normalised
v1 = sqrt(d) / ||sqrt(d)|| (Shi & Malik 2000, below eq. 7). We deflate it and look for the
*largest* eigenpair of M = D^-1/2 W D^-1/2 = I - (eq. 7 matrix) on the complement of v1: the
second smallest of eq. (7), as section 3.2.3 prescribes.

Deflating v1 explicitly also fixes defect 5 of the published code: on a (nearly) disconnected
graph the zero eigenvalue is degenerate, a dense solver may return any mix of the component
indicators including v1, and y then has one sign. Here y is D-orthogonal to 1 (the constraint
y^T D 1 = 0 of eq. 5), so it always takes both signs and every sweep threshold inside its range
gives two non-empty sides.

Degenerate graphs (documented rule). A position with zero affinity to every other position of
its node is *isolated* (identity-like W; a huge alpha whose C**alpha underflows to 0 off the
diagonal). Its eigenvalue of M is repeated or meaningless and the eigensolvers must not be
trusted with it, so no eigenvector is computed: y is +1 on the isolated positions and -1 on the
rest, a cut of NCut 0 (no affinity crosses it). A node whose positions are *all* isolated is cut
in halves by position, also at NCut 0. So for any tau > 0 every isolated position ends as its
own segment (W = I: N singletons). One exception, decided before the solver: a node whose
affinities are all equal (including all zero) is kept whole, as it has no structure.
Other repeated top eigenvalues (several components, symmetric graphs) go to the solvers: the dense
one falls back to a full decomposition when LAPACK's subset driver returns no vector, and any
vector of the repeated eigenspace is a valid cut direction (piecewise constant on components).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch


class SolverError(RuntimeError):
    """The iterative solver produced something unusable (non-finite, zero vector)."""


def _top_dense(a: np.ndarray) -> np.ndarray:
    """Eigenvector of the largest eigenvalue of a symmetric float64 array (dense, O(n^3)).

    When the top eigenvalue repeats, LAPACK's subset driver (dsyevr, range "I") can return no
    vector at all; the full decomposition then returns one vector of the repeated eigenspace.
    """
    n = a.shape[0]
    try:  # only the top pair: LAPACK's MRRR is far cheaper than a full eigh
        _, vec = scipy.linalg.eigh(a, subset_by_index=[n - 1, n - 1], driver="evr", check_finite=False)
        if vec.shape[1] == 1 and np.isfinite(vec).all() and np.linalg.norm(vec) > 0.5:
            return vec[:, 0]
    except (np.linalg.LinAlgError, ValueError):
        pass
    _, vecs = np.linalg.eigh(a + 1e-12 * np.eye(n))  # another LAPACK driver (dsyevd), tiny jitter
    return vecs[:, -1]


def _isolated_small(w: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Indices of the positions with zero affinity to every other position of the node, or None.

    d - diag(W) = 0 exactly for such a row (a sum of zeros and one value is exact); the rows it
    flags are checked entry by entry, as a tiny affinity can vanish in the rounding of d.
    """
    diag = np.diagonal(w)
    cand = np.flatnonzero(d - diag <= 0)
    if cand.size == 0:
        return None
    others = np.count_nonzero(w[cand], axis=1) - (diag[cand] != 0)
    iso = cand[others == 0]
    return iso if iso.size else None


def _isolated_torch(w: torch.Tensor, d: torch.Tensor) -> torch.Tensor | None:
    """``_isolated_small`` for torch tensors on any device."""
    diag = w.diagonal()
    cand = torch.nonzero(d - diag <= 0).flatten()
    if cand.numel() == 0:
        return None
    others = (w[cand] != 0).sum(1) - (diag[cand] != 0).long()
    iso = cand[others == 0]
    return iso if iso.numel() else None


def _isolating_vector(iso, n: int, like):
    """Two-valued sweep vector for a node with isolated positions (see the module docstring):
    +1 on the isolated positions and -1 on the rest, or, when every position is isolated, -1 on
    the first half (by position in the node) and +1 on the second. Every threshold between -1
    and +1 then separates the two groups, a cut of NCut 0 (no affinity crosses it)."""
    if isinstance(like, np.ndarray):
        y = -np.ones(n)
        y[iso if iso.size < n else np.arange(n // 2, n)] = 1.0
        return y
    y = -torch.ones(n, dtype=like.dtype, device=like.device)
    y[iso if iso.numel() < n else torch.arange(n // 2, n, device=like.device)] = 1.0
    return y


def _deflated_dense(m: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Top eigenvector of m restricted to u's complement, by a dense float64 eigh."""
    a = m.double() - 3.0 * torch.outer(u.double(), u.double())  # push v1 to -2, below spec(M) >= -1
    a = (a + a.T) / 2
    if a.device.type != "cpu":
        try:
            return torch.linalg.eigh(a)[1][:, -1]
        except Exception:  # noqa: BLE001 - accelerator solver failures differ by backend
            pass
    return torch.from_numpy(_top_dense(a.cpu().numpy())).to(m.device)


def fiedler_small(w: np.ndarray) -> np.ndarray:
    """``fiedler_vector`` for small nodes (on the host whatever the device), in NumPy float64 (dense): w (n, n) -> y (n,)."""
    d = w.sum(1)
    iso = _isolated_small(w, d)
    if iso is not None:  # isolated positions: split them off (module docstring)
        return _isolating_vector(iso, w.shape[0], w)
    d = np.maximum(d, d.max() * 1e-12 + 1e-300)  # isolated positions: avoid 1/0
    inv_sqrt_d = 1.0 / np.sqrt(d)
    u = np.sqrt(d) / np.linalg.norm(np.sqrt(d))  # z0 = D^1/2 1 normalised, eigenvalue 0 of eq. (7)
    m = inv_sqrt_d[:, None] * w * inv_sqrt_d[None, :]  # D^-1/2 W D^-1/2 = I - (eq. 7 matrix)
    v = _top_dense(m - 3.0 * np.outer(u, u))  # deflate z0 (pushed to -2 < spec >= -1)
    if not np.isfinite(v).all():
        raise SolverError("dense eigensolver returned a non-finite vector")
    v = v - u * (u @ v)  # exact y^T D 1 = 0 (constraint of eq. (5))
    y = v * inv_sqrt_d  # y = D^-1/2 z, eq. (7); second smallest eigenvector: sec. 3.2.3
    return -y if y[np.argmax(np.abs(y))] < 0 else y  # deterministic sign


def _lanczos_top(
    matvec, u: torch.Tensor, start: torch.Tensor, *, krylov_dim: int, max_restarts: int, tol: float,
    check_every: int | None = None,
) -> tuple[torch.Tensor, bool]:
    """Largest eigenpair of a symmetric operator on u's complement: Lanczos with full
    re-orthogonalisation and explicit restarts from the best Ritz vector.

    Returns (unit vector, converged). The vector is the best Ritz vector even when the residual
    tolerance was not met (it is still a good cut direction); non-finite output raises SolverError.

    Host syncs: on a CPU the breakdown test (beta_j ~ 0) reads each beta as it comes; on an
    accelerator reading a value waits for the device, so the betas are read together at the Ritz
    checks (every 8 steps): the steps after a breakdown run on garbage and are then dropped, which
    gives the same tridiagonal, hence the same vector, as stopping at once. ``check_every``
    overrides the steps between breakdown tests (default 1 on a CPU, 8 elsewhere).
    """
    n = start.numel()
    every = check_every or (1 if start.device.type == "cpu" else 8)
    krylov_dim = max(2, min(krylov_dim, n - 1))
    x = start
    converged = False
    breakdown = 10 * torch.finfo(start.dtype).eps  # ||M|| <= 1, so this is relative
    for _ in range(max_restarts + 1):
        x = x - u * (u @ x)
        nrm = x.norm()
        if not torch.isfinite(nrm) or float(nrm) == 0.0:
            raise SolverError("Lanczos start vector vanished after deflation")
        q = torch.empty(krylov_dim + 1, n, dtype=x.dtype, device=x.device)
        q[0] = x / nrm
        alphas: list[torch.Tensor] = []
        betas: list[torch.Tensor] = []
        k = 0
        for j in range(krylov_dim):
            w = matvec(q[j])
            w = w - u * (u @ w)  # stay in the complement of v1 (deflation)
            alphas.append(q[j] @ w)
            basis = q[: j + 1]
            w = w - basis.T @ (basis @ w)  # full re-orthogonalisation, twice is enough
            w = w - basis.T @ (basis @ w)
            b = w.norm()
            k = j + 1
            betas.append(b)
            if k % every == 0 or k == krylov_dim:
                tail = torch.stack(betas[k - ((k - 1) % every) - 1:k]) <= breakdown
                if bool(tail.any()):  # invariant subspace found: the Ritz pairs are exact
                    k = k - tail.numel() + int(tail.nonzero()[0, 0]) + 1  # the first breakdown
                    del alphas[k:], betas[k:]
                    break
            q[j + 1] = w / b  # after an unseen breakdown: garbage, dropped at the next test
            if k % 8 == 0 or k == krylov_dim:
                x, res = _ritz(q, alphas, betas, k)
                if res <= tol:
                    converged = True
                    break
        x, res = _ritz(q, alphas, betas, k)
        if not bool(torch.isfinite(x).all()):
            raise SolverError("Lanczos produced a non-finite vector")
        if res <= tol:
            converged = True
            break
    return x / x.norm(), converged


def _ritz(q: torch.Tensor, alphas: list, betas: list, k: int) -> tuple[torch.Tensor, float]:
    """Top Ritz vector of the k-step Lanczos tridiagonal and its residual norm |beta_k s_k|."""
    a = torch.stack(alphas[:k]).double().cpu().numpy()
    b = torch.stack(betas[:k]).double().cpu().numpy()
    if k == 1:
        s = np.ones(1)
    else:
        _, vec = scipy.linalg.eigh_tridiagonal(a, b[: k - 1], select="i", select_range=(k - 1, k - 1))
        s = vec[:, 0]
    res = float(abs(b[k - 1] * s[-1]))
    x = q[:k].T @ torch.from_numpy(s).to(dtype=q.dtype, device=q.device)
    return x, res


def _start_vector(n: int, seed: int, like: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)  # fresh per node: the same node always starts alike
    return torch.randn(n, generator=gen, dtype=torch.float64).to(dtype=like.dtype, device=like.device)


def fiedler_vector(
    w: torch.Tensor,
    d: torch.Tensor,
    *,
    start: torch.Tensor | None = None,
    dense_below: int = 256,
    krylov_dim: int = 48,
    max_restarts: int = 3,
    tol: float = 1e-5,
    seed: int = 0,
) -> tuple[torch.Tensor, str]:
    """Generalised Fiedler vector y of (D - W) y = lambda D y (Shi & Malik 2000, eq. (6)).

    Args:
        w: (n, n) symmetric non-negative affinities of one node, n >= 2.
        d: (n,) degrees, d = W 1.
        start: (n,) warm start (e.g. the parent's Fiedler vector restricted to this node).
        dense_below: nodes smaller than this use dense float64 eigh.

    Returns:
        (y (n,) in w's dtype with largest |entry| positive, method) where method is "dense",
        "lanczos", "dense-fallback" (the iterative solver failed; dense float64 eigh was used) or
        "isolated" (the node has isolated positions; y is the two-valued vector that splits them
        off, see the module docstring).
    """
    n = w.shape[0]
    iso = _isolated_torch(w, d)
    if iso is not None:  # isolated positions: split them off (module docstring)
        return _isolating_vector(iso, n, w), "isolated"
    dpos = d.clamp_min(float(d.max()) * 1e-12 + 1e-30)  # isolated positions: avoid 1/0
    inv_sqrt_d = dpos.rsqrt()
    u = dpos.sqrt()
    u = u / u.norm()  # z0 = D^1/2 1 normalised, eigenvalue 0 of eq. (7)
    method = "dense"
    if n < dense_below:
        m = inv_sqrt_d[:, None] * w * inv_sqrt_d[None, :]  # I minus the matrix of eq. (7)
        v = _deflated_dense(m, u).to(w.dtype)
    else:
        def matvec(x: torch.Tensor) -> torch.Tensor:
            return inv_sqrt_d * (w @ (inv_sqrt_d * x))  # (I - eq. (7) matrix) x = D^-1/2 W D^-1/2 x

        x0 = None
        if start is not None:
            x0 = start.to(w.dtype) / inv_sqrt_d  # parent's y restricted -> z = D^1/2 y
            before = float(x0.norm())
            x0 = x0 - u * (u @ x0)
            # useless if (nearly) parallel to z0: the child's part of the parent's vector can be flat
            if not bool(torch.isfinite(x0).all()) or float(x0.norm()) <= 1e-6 * before:
                x0 = None
        if x0 is None:
            x0 = _start_vector(n, seed, w)
        try:
            v, _ = _lanczos_top(matvec, u, x0, krylov_dim=krylov_dim, max_restarts=max_restarts, tol=tol)
            method = "lanczos"
        except (SolverError, RuntimeError, ValueError):  # ValueError: LAPACK's LinAlgError, NaN runs
            m = inv_sqrt_d[:, None] * w * inv_sqrt_d[None, :]
            v = _deflated_dense(m, u).to(w.dtype)
            method = "dense-fallback"
    v = v - u * (u @ v)  # exact y^T D 1 = 0 (constraint of eq. (5))
    y = v * inv_sqrt_d  # y = D^-1/2 z, Shi & Malik 2000, eq. (7); 2nd smallest: sec. 3.2.3
    if float(y[torch.argmax(y.abs())]) < 0:  # deterministic sign: largest |entry| positive
        y = -y
    return y, method
