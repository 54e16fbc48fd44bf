"""Fused CPU kernel for one PAMR propagation step (Eq. 4), compiled with Numba.

The torch path (``_pamr.propagate``) does each step as 8D separate multiply-adds per block, and
is bound by the traffic of its accumulator: every pass loads and stores it. This kernel keeps,
for one output row and four masks at a time, the accumulator in L1 and adds two neighbours per
pass over it: per 8-pixel vector and pass, 2 weight loads, 8 mask loads and 4 accumulator loads
and stores for 8 fused multiply-adds (about 2 memory operations each), against about 4 per
multiply-add before. Per pixel the terms are still added one by
one in the reference order (neighbour 0, 1, ..., 8D-1; ``c = c + a * s``, no reassociation), so
on the development CPU the masks are bit-identical to ``_propagate_reference`` (tested; the
test accepts differences at float rounding, 99.9 % label agreement, where a compiler contracts
differently).

Numba is a dependency, but optional at run time: without it (or if compilation fails) PAMR uses
the torch path and warns once. ``OVSEG_PAMR_KERNEL=torch`` forces the torch path. The compiled
code is cached on disk (Numba's cache: ``__pycache__`` beside this file, or
``$NUMBA_CACHE_DIR``), so only the first call on a machine pays the compile (seconds; compile and
cache-load times in docs/benchmarks-pamr.md). Float32 masks only
(others take the torch path).
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numpy as np
import torch

prange = range  # numba.prange once ``_compile`` runs: Numba is imported only when PAMR first runs

_lock = threading.Lock()  # guards _state (the compile)
_call_lock = threading.Lock()  # one kernel call at a time
_state: dict = {}  # "kernel": the compiled step, or None once compilation failed


def _step_source(cur, nxt, alpha, offs, pad, H, W, K):  # pragma: no cover - compiled by Numba
    """One step of Eq. 4 on flat float32 buffers.

    cur, nxt: (K, H+2p, W+2p) padded masks, flattened; alpha: (N, H, W) weights, flattened;
    offs: (N,) int64 flat offsets dy*(W+2p) + dx of the neighbours, N = 8D (even). Writes the
    interior of nxt; the caller refreshes its border.
    """
    N = offs.shape[0]
    Wp = W + 2 * pad
    plane = (H + 2 * pad) * Wp
    HW = H * W
    for i in prange(H):  # rows in parallel (Numba's threads)
        acc = np.empty((4, W), np.float32)
        orow = (pad + i) * Wp + pad
        for k0 in range(0, K, 4):
            c0 = min(k0, K - 1) * plane  # masks k0..k0+3; past K, the last mask is re-read
            c1 = min(k0 + 1, K - 1) * plane
            c2 = min(k0 + 2, K - 1) * plane
            c3 = min(k0 + 3, K - 1) * plane
            for n in range(0, N, 2):
                a = alpha[n * HW + i * W: n * HW + i * W + W]
                b = alpha[(n + 1) * HW + i * W: (n + 1) * HW + i * W + W]
                s = orow + offs[n]
                t = orow + offs[n + 1]
                p0 = cur[c0 + s: c0 + s + W]
                p1 = cur[c1 + s: c1 + s + W]
                p2 = cur[c2 + s: c2 + s + W]
                p3 = cur[c3 + s: c3 + s + W]
                q0 = cur[c0 + t: c0 + t + W]
                q1 = cur[c1 + t: c1 + t + W]
                q2 = cur[c2 + t: c2 + t + W]
                q3 = cur[c3 + t: c3 + t + W]
                if n == 0:  # the reference starts from a0 * m0
                    for j in range(W):
                        acc[0, j] = a[j] * p0[j] + b[j] * q0[j]
                        acc[1, j] = a[j] * p1[j] + b[j] * q1[j]
                        acc[2, j] = a[j] * p2[j] + b[j] * q2[j]
                        acc[3, j] = a[j] * p3[j] + b[j] * q3[j]
                else:
                    for j in range(W):
                        acc[0, j] = acc[0, j] + a[j] * p0[j] + b[j] * q0[j]
                        acc[1, j] = acc[1, j] + a[j] * p1[j] + b[j] * q1[j]
                        acc[2, j] = acc[2, j] + a[j] * p2[j] + b[j] * q2[j]
                        acc[3, j] = acc[3, j] + a[j] * p3[j] + b[j] * q3[j]
            for q in range(min(4, K - k0)):
                o = nxt[(k0 + q) * plane + orow: (k0 + q) * plane + orow + W]
                for j in range(W):
                    o[j] = acc[q, j]


def _compile():
    global prange
    import numba

    prange = numba.prange  # a global of ``_step_source``, read when Numba compiles it
    flat = numba.float32[::1]
    signature = numba.void(flat, flat, flat, numba.int64[::1], numba.int64, numba.int64, numba.int64, numba.int64)
    # compiled here, eagerly (or loaded from Numba's disk cache), so a failure is caught by ``kernel``
    return numba.njit(signature, parallel=True, fastmath=True, boundscheck=False, cache=True,
                      nogil=True)(_step_source)


def kernel():
    """The compiled step, or None when Numba is missing, fails, or is switched off."""
    choice = os.environ.get("OVSEG_PAMR_KERNEL", "auto").strip().lower()
    if choice == "torch":
        return None
    if choice not in ("auto", "numba"):
        raise ValueError(f"OVSEG_PAMR_KERNEL must be 'auto', 'numba' or 'torch', got {choice!r}")
    with _lock:
        if "kernel" not in _state:
            threads = torch.get_num_threads()  # Numba's OpenMP layer, started here, resets it
            try:
                _state["kernel"] = _compile()
            except Exception as err:  # noqa: BLE001 - ImportError, or a Numba/LLVM failure
                _state["kernel"] = None
                _state["error"] = f"{type(err).__name__}: {err}"
            finally:
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
        if _state["kernel"] is None:
            if choice == "numba":
                raise RuntimeError(f"OVSEG_PAMR_KERNEL=numba but the Numba kernel is unavailable "
                                   f"({_state['error']})")
            if not _state.get("warned"):
                _state["warned"] = True
                warnings.warn(f"PAMR: the Numba kernel is unavailable ({_state['error']}); using the "
                              "slower torch path (pip install numba)", RuntimeWarning, stacklevel=3)
        return _state["kernel"]


@contextlib.contextmanager
def numba_steps(step, alpha: torch.Tensor, offsets: list[tuple[int, int]], pad: int):
    """Context giving ``advance(cur, nxt)``: one step of Eq. 4 with the compiled ``step``, from the
    padded float32 masks ``cur`` (K, H+2p, W+2p) into the interior of ``nxt`` (see
    ``_pamr.propagate``, which owns the buffers and refreshes the border)."""
    import numba

    _, H, W = alpha.shape
    offs = np.array([dy * (W + 2 * pad) + dx for dy, dx in offsets], dtype=np.int64)
    a = alpha.detach().contiguous().numpy().reshape(-1)

    def advance(cur: torch.Tensor, nxt: torch.Tensor) -> None:
        step(cur.detach().numpy().reshape(-1), nxt.detach().numpy().reshape(-1), a, offs, pad, H, W,
             cur.shape[0])

    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    # one call at a time: each already uses every core, and Numba's fallback threading layer
    # (workqueue, where OpenMP and TBB are missing) must not be entered from two threads at once
    with _call_lock:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            yield advance
        finally:
            numba.set_num_threads(previous)
            # Numba's OpenMP layer shares torch's OpenMP runtime: restoring Numba's count also set
            # torch's (a 1-thread run went on at 2 threads after PAMR, changing CLIP's float sums)
            if torch.get_num_threads() != torch_threads:
                torch.set_num_threads(torch_threads)
