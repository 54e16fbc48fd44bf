"""Discrete K-way normalized cut by proximal one-hot updates (Falcon-class; METHOD.md section 9).

Notation (METHOD.md 9): W (N, N) affinity, d = W 1, one-hot X (N, K), G = W X, per cluster the
association q_k = x_k^T W x_k and volume v_k = d^T x_k; f(X) = sum_k q_k / v_k is the normalised
association and NCut(X) = K' - f(X) (K' non-empty clusters). The solver maximises f:

* scores S (N, K): "exact" (ours, default) is the exact change of f when node i alone moves to
  cluster k, in closed form for every (i, k) at once; "lin" is grad f (= minus the weighted
  kernel-k-means distance, Dhillon, Guan & Kulis 2004); "quad" is the paper's form as its notes
  write it (the volume term on the own column only).
* proximal one-hot step with inertia gamma (Falcon): l_i <- argmax_k (S_ik + gamma X_ik), i.e.
  a row moves iff its gain over staying exceeds gamma; all rows at once.
* monotone backtracking (Falcon): accept iff f(X_new) >= f(X) + delta * gamma / 2 ||X_new - X||^2,
  else gamma <- gamma_up * gamma and retry; after an accepted step gamma <- gamma_down * gamma
  (ours). The best single row always takes part (ours), so with "exact" scores a step is accepted
  whenever an improving single move exists: the run ends at a single-move local optimum.
* clusters that empty are dropped (never refilled), so K' only falls and NCut = K' - f falls
  with f: the objective never gets worse.

Batched: B images x R restarts in one call; the restarts of an image are concatenated along K, so
one (B, N, N) x (B, N, R K) product per iteration reads W once for all of them. The loop has no
per-image Python code and, on CUDA, no host sync per iteration (``check_every`` iterations between
the "all converged?" reads). On the CPU, where a host read costs nothing, it stops at the first
step without a move, and a step that moves few rows updates G = W X from those rows of W only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SCORES = ("exact", "lin", "quad")
INITS = ("kmeans++", "random")


@dataclass(frozen=True)
class SolverConfig:
    """Settings of the proximal K-way solver. The defaults are ours (Falcon's are not published)."""

    score: str = "exact"  # "exact" single-move gain (robust); "lin" or "quad" (the paper's form)
    restarts: int = 2  # starts per image, best f kept; they share one read of W per iteration
    init: str = "kmeans++"  # k-means++ on the affinity profiles (rows of W), or "random" labels
    max_iter: int = 100  # cap on proximal steps (accepted or not)
    delta: float = 0.5  # sufficient-increase factor of the backtracking test, in (0, 1]
    gamma_up: float = 4.0  # inertia growth after a rejected step
    gamma_down: float = 0.5  # inertia decay after an accepted step
    tol: float = 1e-6  # a move must raise f by more than this (f is in [0, K]; float32 noise ~1e-7 K)
    rtol: float = 1e-5  # also stop when f rose by <= rtol * f over the last check_every steps
    check_every: int = 4  # iterations between host reads of "all converged" (one sync each)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.restarts < 1 or self.max_iter < 0 or self.check_every < 1:
            raise ValueError("restarts >= 1, max_iter >= 0 and check_every >= 1 are required")
        if not (0 < self.delta <= 1 and self.gamma_up > 1 and 0 <= self.gamma_down < 1 and self.tol >= 0):
            raise ValueError("need 0 < delta <= 1, gamma_up > 1, 0 <= gamma_down < 1, tol >= 0")


@dataclass
class KWayState:
    """The solver's result for B images (the best restart of each).

    labels: (B, N) int64 cluster index in [0, K) (not renumbered; empty clusters may exist).
    f: (B,) float64 normalised association; ncut: (B,) float64 NCut = K' - f; k: (B,) int64 K'.
    iterations: (B,) int64 proximal steps of the kept restart; accepted: (B,) accepted ones.
    converged: (B,) bool, the kept restart stopped before max_iter (no single move gains > tol).
    history: (B, T) float64 f after each iteration of the kept restart (T = iterations run; the
    value repeats once it stopped): non-decreasing by construction.
    """

    labels: torch.Tensor
    f: torch.Tensor
    ncut: torch.Tensor
    k: torch.Tensor
    iterations: torch.Tensor
    accepted: torch.Tensor
    converged: torch.Tensor
    history: torch.Tensor
    product: torch.Tensor | None = None  # (B, N, K) float G = W X of ``labels`` (reused by the K rules)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0 (an empty or zero-volume cluster contributes nothing)."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def _stats(G: torch.Tensor, X: torch.Tensor, d: torch.Tensor):
    """(q, v, n, f) of a batch of assignments. G, X (B, N, R, K); d (B, N).
    q (B, R, K) = diag(X^T W X), v = X^T d, n = cluster sizes (float64); f (B, R) = sum q / v."""
    q = (G * X).double().sum(1)  # q_k = x_k^T W x_k (METHOD.md 9)
    v = torch.einsum("bnrk,bn->brk", X.double(), d.double())  # v_k = d^T x_k
    n = X.double().sum(1)
    return q, v, n, _safe_div(q, v).sum(-1)  # f(X) = sum_k q_k / v_k


def _scores(kind: str, G, labels, q, v, n, d, wii) -> torch.Tensor:
    """Scores S (B, N, R, K) float32; moving row i to argmax_k S_ik is the proposed move.

    G (B, N, R, K); labels (B, N, R); q, v, n (B, R, K); d, wii (B, N). Dead clusters get -inf.
    """
    q_, v_ = q.float()[:, None], v.float()[:, None]  # (B, 1, R, K)
    di, wi = d[:, :, None, None], wii[:, :, None, None]
    own = labels[..., None]
    if kind == "exact":
        # i joins k != l_i: q_k + 2 G_ik + W_ii over v_k + d_i (ours: the exact change of f)
        s = _safe_div(q_ + 2 * G + wi, v_ + di) - _safe_div(q_, v_)
        qa, va, na = (t.float()[:, None].expand_as(G).gather(3, own) for t in (q, v, n))
        ga = G.gather(3, own)  # G_ia includes W_ii (i is in its own cluster a)
        # staying: the loss avoided, q_a / v_a - (q_a - 2 G_ia + W_ii) / (v_a - d_i); a singleton
        # leaves an empty cluster behind, which contributes 0
        left = torch.where(na > 1, _safe_div(qa - 2 * ga + wi, va - di), torch.zeros_like(qa))
        s = s.scatter(3, own, _safe_div(qa, va) - left)
    elif kind == "lin":
        s = 2 * _safe_div(G, v_) - di * _safe_div(q_, v_ * v_)  # grad f: 2 G_ik / v_k - d_i q_k / v_k^2
    else:
        # "quad", as the paper's notes write it: mu = 2 (G / v - (D X) * rho), rho_k = q_k / v_k^2
        X = torch.zeros_like(G).scatter_(3, own, 1.0)
        s = 2 * (_safe_div(G, v_) - di * X * _safe_div(q_, v_ * v_))
    return s.masked_fill((n == 0)[:, None].expand_as(s), float("-inf"))


def _one_hot(labels: torch.Tensor, K: int, dtype) -> torch.Tensor:
    return torch.zeros(*labels.shape, K, dtype=dtype, device=labels.device).scatter_(-1, labels[..., None], 1.0)


def _product(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """G = W X for (B, N, N) W and (B, N, R, K) X: one bmm for every restart."""
    B, N, R, K = X.shape
    return torch.bmm(W, X.reshape(B, N, R * K)).view(B, N, R, K)


_SPARSE_SHARE = 8  # a step moving at most N / 8 rows updates G from those rows of W only


def _moved_product(W: torch.Tensor, G: torch.Tensor, labels: torch.Tensor, new: torch.Tensor,
                   move: torch.Tensor) -> torch.Tensor:
    """G_new = W X_new from G = W X when only the rows ``move`` (B, N, R) changed (CPU).

    W X_new = W X + W (X_new - X), and X_new - X is zero outside the m moved rows, so the update
    reads those m rows of W (W is symmetric: its rows are its columns) instead of all N:
    one (B, N, m) x (B, m, R K) product. When more than N / _SPARSE_SHARE rows moved, the full
    product is cheaper. (Reads the move count on the host: free on the CPU, so CUDA keeps the
    full product and its sync-free loop.)
    """
    B, N, R, K = G.shape
    rows = move.any(2)  # (B, N) a row moved in some restart
    m = int(rows.sum(1).max())
    if m == 0:
        return G
    if m * _SPARSE_SHARE > N:
        return _product(W, _one_hot(new, K, W.dtype))
    idx = torch.argsort((~rows).to(torch.uint8), dim=1, stable=True)[:, :m]  # moved rows first; pad: unmoved
    sel = idx[:, :, None].expand(B, m, R)
    delta = _one_hot(new.gather(1, sel), K, W.dtype) - _one_hot(labels.gather(1, sel), K, W.dtype)
    Wm = W.gather(1, idx[:, :, None].expand(B, m, N))  # (B, m, N) the moved rows of W
    return torch.baddbmm(G.reshape(B, N, R * K), Wm.transpose(1, 2), delta.reshape(B, m, R * K)).view(B, N, R, K)


def kmeans_pp(W: torch.Tensor, K: int, R: int, generator: torch.Generator | None, sketch: int = 64) -> torch.Tensor:
    """k-means++ starts (B, N, R) int64 on sketched affinity profiles (ours).

    Each node is represented by its affinity profile, the row W_i: two nodes of one region share
    their neighbours, so cos(W_i, W_c) is near 1 inside a region and near 0 across regions, far
    more contrasted than the kernel distance of single positions (a noisy node's self-affinity
    W_ii = 1 dominates its kernel row). The rows are sketched by one product P = W S with a
    Gaussian S (N, ``sketch``) (Johnson-Lindenstrauss: cosines kept to ~1/sqrt(sketch)), so the
    seeding costs one read of W. Each next centre is drawn with probability proportional to the
    squared distance 1 - cos to the nearest centre so far (Arthur & Vassilvitskii 2007); every
    node then joins its nearest centre. Batched over images and restarts.
    """
    B, N, _ = W.shape
    # every image gets the same draws (one stream, expanded over the batch), so a batch gives
    # exactly the per-image results
    S = _draw(generator, W, lambda g, dev: torch.randn(1, N, sketch, generator=g, device=dev)).to(W.dtype).expand(B, N, sketch)
    U = torch.nn.functional.normalize(torch.bmm(W, S), dim=2)  # (B, N, sketch) unit profiles
    c = _draw(generator, W, lambda g, dev: torch.randint(N, (1, R), generator=g, device=dev)).expand(B, R)
    rows = torch.arange(B, device=W.device)[:, None]
    dist = []
    for j in range(K):
        cos = torch.bmm(U, U[rows, c].transpose(1, 2))  # (B, N, R)
        dist.append((1 - cos).clamp_min(0).square())
        if j == K - 1:
            break
        near = torch.stack(dist).amin(0).transpose(1, 2)  # (B, R, N)
        weight = torch.where(near.sum(2, keepdim=True) > 0, near, torch.ones_like(near))  # all equal: uniform
        cdf = weight.double().cumsum(2)
        u = _draw(generator, W, lambda g, dev: torch.rand(1, R, 1, generator=g, device=dev, dtype=torch.float64))
        # D^2 sampling by inverse CDF (a node of weight 0 is never drawn)
        c = torch.searchsorted(cdf, u.expand(B, R, 1) * cdf[..., -1:], right=True)[..., 0].clamp_max(N - 1)
    return torch.stack(dist).argmin(0)  # (K, B, N, R) -> (B, N, R)


def _draw(generator: torch.Generator | None, like: torch.Tensor, fn) -> torch.Tensor:
    """fn(generator, device) on the generator's device, moved to like's device and dtype class."""
    dev = generator.device if generator is not None else like.device
    return fn(generator, dev).to(like.device)


def solve(W: torch.Tensor, K: int, *, config: SolverConfig = SolverConfig(), init: torch.Tensor | None = None,
          generator: torch.Generator | None = None, product: torch.Tensor | None = None) -> KWayState:
    """Maximise f(X) = sum_k q_k / v_k over one-hot X (B images at once).

    Args:
        W: (B, N, N) float32/float64 symmetric non-negative affinities (validated by the caller).
        K: clusters per image, 1 <= K (clamped to N).
        config: the solver's settings.
        init: (B, N) or (B, N, R) int64 labels in [0, K) to start from (then ``config.init`` is not
            used; (B, N) is one restart).
        generator: torch.Generator for the starts (the only randomness): same generator state,
            same result.
        product: W X of ``init`` ((B, N, K) or (B, N, R, K) float, K the labels' range), when the
            caller has it (the "auto" rule merges columns of the presolve's G): saves one read of W.

    Returns:
        KWayState of the best restart per image (largest f).
    """
    B, N, _ = W.shape
    K = max(1, min(int(K), N))
    d = W.sum(2)  # degrees d_i = sum_j W_ij
    wii = W.diagonal(dim1=1, dim2=2)
    if init is not None:
        labels = init.to(W.device, torch.int64)
        labels = labels[..., None] if labels.ndim == 2 else labels
        K = max(K, int(labels.max()) + 1)
    elif config.init == "kmeans++":
        labels = kmeans_pp(W, K, config.restarts, generator)
    else:
        labels = _draw(generator, W, lambda g, dev: torch.randint(K, (1, N, config.restarts), generator=g, device=dev))
        labels = labels.expand(B, N, config.restarts)
    R = labels.shape[2]
    X = _one_hot(labels, K, W.dtype)
    if product is not None and init is not None and product.shape[-1] == K:
        G = product.to(W.dtype).reshape(B, N, R, K)
    else:
        G = _product(W, X)
    host = W.device.type == "cpu"  # host reads cost nothing on the CPU: stop at once, move sparsely
    q, v, n, f = _stats(G, X, d)
    gamma = torch.zeros(B, R, dtype=torch.float64, device=W.device)
    done = torch.zeros(B, R, dtype=torch.bool, device=W.device)
    iters = torch.zeros(B, R, dtype=torch.int64, device=W.device)
    accepted = torch.zeros_like(iters)
    f_check, history = f, []
    for it in range(config.max_iter):
        s = _scores(config.score, G, labels, q, v, n, d, wii)
        best, target = s.max(3)  # (B, N, R)
        gain = (best - s.gather(3, labels[..., None])[..., 0]).double()  # over staying, >= 0
        gmax, top = gain.max(1)  # (B, R): the best single row
        active = ~done & (gmax > config.tol)
        if host and not bool(active.any()):  # every restart is at a single-move optimum: done
            done |= ~active
            break
        move = (gain > gamma[:, None]) & (gain > config.tol)
        move.scatter_(1, top[:, None], True)  # the best row always takes part (ours)
        move &= active[:, None]
        new = torch.where(move, target, labels)
        X_new = _one_hot(new, K, W.dtype)
        G_new = _moved_product(W, G, labels, new, move) if host else _product(W, X_new)
        q2, v2, n2, f2 = _stats(G_new, X_new, d)
        moved = move.sum(1).double()
        g_eff = torch.minimum(gamma, gmax)
        # Falcon's sufficient increase: f(X+) >= f(X) + delta * gamma / 2 * ||X+ - X||^2, ||.||^2 = 2 moved
        ok = active & (f2 >= f + config.delta * g_eff * moved)
        stalled = active & ~ok & (gamma >= gmax)  # only the best row moved and f did not rise
        done |= ~active | stalled
        iters += active.long()
        accepted += ok.long()
        gamma = torch.where(ok, gamma * config.gamma_down,
                            torch.where(active, torch.maximum(gamma * config.gamma_up, 0.05 * gmax), gamma))
        keep = ok[:, None, :]  # (B, 1, R)
        labels = torch.where(keep, new, labels)
        G = torch.where(keep[..., None], G_new, G)
        q, v, n = (torch.where(ok[..., None], a2, a) for a2, a in ((q2, q), (v2, v), (n2, n)))
        f = torch.where(ok, f2, f)
        history.append(f)
        if (it + 1) % config.check_every == 0:
            done |= f - f_check <= config.rtol * f.abs()  # the tail of tiny gains is not worth its steps
            f_check = f
            if bool(done.all()):  # one host sync per check_every steps
                break
    converged = done  # stopped before the cap (no single move gains > tol, or the gains flattened)
    pick = f.argmax(1)  # best restart (largest f) per image
    rows = torch.arange(B, device=W.device)
    hist = torch.stack(history, -1)[rows, pick] if history else f[rows, pick][:, None]
    k_alive = (n > 0).sum(-1)[rows, pick]
    f_best = f[rows, pick]
    return KWayState(labels=labels[rows, :, pick], f=f_best, ncut=k_alive.double() - f_best, k=k_alive,
                     iterations=iters[rows, pick], accepted=accepted[rows, pick],
                     converged=converged[rows, pick], history=hist, product=G[rows, :, pick])


def ncut_value(W: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """K-way NCut (B,) float64 of labels (B, N) int64 on W (B, N, N): sum_k cut(A_k, V) / vol(A_k)
    = K' - sum_k q_k / v_k (METHOD.md 9; Shi & Malik 2000 for K = 2)."""
    K = int(labels.max()) + 1
    X = _one_hot(labels[..., None], K, W.dtype)
    q, v, n, f = _stats(_product(W, X), X, W.sum(2))
    return (n > 0).sum(-1)[:, 0].double() - f[:, 0]
