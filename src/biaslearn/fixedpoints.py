"""Fixed points of a recurrent map, found by minimising the speed (Sussillo & Barak, 2013).

    find(F, starts)          minimise q(h) = 1/2 ||F(h) - h||^2 from each start (Adam, batched): (points, q)
    polish_relu(W, c, h)     the exact fixed point of h = relu(W h + c) with the activation pattern of h, if
                             that pattern reproduces itself (a ReLU map is linear on each pattern's region)
    unique(points, tol)      one representative per cluster of points closer than ``tol``
    relu_jacobian(W, c, h)   dF/dh of F(h) = relu(W h + c): diag(relu'(W h + c)) W
    autograd_jacobian(F, h)  dF/dh of any map, by autograd (small systems: the tests)
    classify(J)              eigenvalues, spectral radius, unstable directions (|lambda| > 1)
    rnn_fixed_points(net, H) the whole analysis of a nets.RandomRNN with constant input x: starts drawn from
                             visited states H, minimised, polished, deduplicated, classified

A point is kept as a fixed point when its speed q is below ``q_tol`` times the mean squared norm of the visited
states (a scale-free threshold); "stable" means every eigenvalue of the Jacobian there lies inside the unit circle.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .runtime import generator


def find(F, starts: torch.Tensor, iters: int = 2000, lr: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise q(h) = 1/2 ||F(h) - h||^2 from each row of ``starts`` (k, d) by Adam (cosine-decayed rate).
    ``F`` maps a batch (k, d) to (k, d). Returns the points (k, d) and their q (k,)."""
    h = starts.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / max(iters, 1))))
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        q = 0.5 * ((F(h) - h) ** 2).sum(1)                 # (k,)
        q.sum().backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return h.detach(), 0.5 * ((F(h) - h) ** 2).sum(1)


@torch.no_grad()
def polish_relu(W: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
    """The fixed point of h = relu(W h + c) in the region of ``h``'s activation pattern D = [W h + c > 0]:
    on that region h = D (W h + c), so h* = (I - D W)^-1 D c (float64). Returned (d,) if its own pattern is D
    (it is then exact), else None."""
    D = ((W @ h + c) > 0).double()                         # (d,)
    Wd, cd = W.double(), c.double()
    A = torch.eye(len(D), dtype=torch.float64, device=W.device) - D[:, None] * Wd
    try:
        hs = torch.linalg.solve(A, D * cd)
    except RuntimeError:                                   # singular: a line of fixed points, not a point
        return None
    pre = Wd @ hs + cd
    if not torch.equal((pre > 0).double(), D) or (hs < -1e-9).any():
        return None
    return hs.to(h.dtype)


def unique(points: torch.Tensor, tol: float) -> list[int]:
    """Indices of one representative per cluster: a point closer than ``tol`` to one kept before it is dropped."""
    kept: list[int] = []
    for i in range(len(points)):
        if not kept or torch.cdist(points[i:i + 1], points[kept]).min() > tol:
            kept.append(i)
    return kept


def relu_jacobian(W: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """dF/dh at h of F(h) = relu(W h + c): diag(relu'(W h + c)) W, (d, d)."""
    return ((W @ h + c) > 0).to(W.dtype)[:, None] * W


def autograd_jacobian(F, h: torch.Tensor) -> torch.Tensor:
    """dF/dh at h (d,) of a map F acting on batches (k, d), by autograd: (d, d)."""
    return torch.autograd.functional.jacobian(lambda v: F(v[None])[0], h)


def classify(J: torch.Tensor) -> dict:
    """The eigenvalues of a Jacobian, its spectral radius and its number of unstable directions (|lambda| > 1)."""
    eig = np.linalg.eigvals(J.double().cpu().numpy())
    mod = np.abs(eig)
    return {"eig": eig, "radius": float(mod.max()), "n_unstable": int((mod > 1).sum()), "stable": bool(mod.max() < 1)}


def analyse(F, starts: torch.Tensor, scale: float, jacobian, polish=None, q_tol: float = 1e-6,
            dist_tol: float = 1e-3, iters: int = 2000, lr: float = 1e-2, max_points: int | None = None) -> dict:
    """Minimise q from ``starts``, polish (if a ``polish(h) -> h* | None`` is given), keep the points with
    q < q_tol * scale, deduplicate (points closer than dist_tol * sqrt(scale)) and classify each (at most
    ``max_points``, the slowest first) by ``jacobian(h)``. ``scale``: the mean squared norm of the visited
    states. Returns {"points" (k, d), "q" (k,), "stable" (k,), "radius" (k,), "n_unstable" (k,), "eig" [k arrays], "q_min" (the smallest q
    reached from each start, (n_starts,))}."""
    pts, q = find(F, starts, iters, lr)
    if polish is not None:
        for i in range(len(pts)):
            hs = polish(pts[i])
            if hs is not None:
                pts[i] = hs
        with torch.no_grad():
            q = 0.5 * ((F(pts) - pts) ** 2).sum(1)
    q_min = q.cpu().numpy()
    good = torch.nonzero(q < q_tol * scale).flatten()
    order = good[torch.argsort(q[good])]
    keep = order[unique(pts[order], dist_tol * math.sqrt(scale))] if len(order) else order
    keep = keep[:max_points] if max_points else keep            # the slowest first
    out = {"points": pts[keep].cpu().numpy(), "q": q[keep].cpu().numpy(), "q_min": q_min,
           "stable": [], "radius": [], "n_unstable": [], "eig": []}
    for i in keep.tolist():
        c = classify(jacobian(pts[i]))
        for k in ("stable", "radius", "n_unstable", "eig"):
            out[k].append(c[k])
    for k in ("stable", "radius", "n_unstable"):
        out[k] = np.asarray(out[k])
    return out


def rnn_fixed_points(net, H: torch.Tensor, n_starts: int, seed: int, x: torch.Tensor | None = None,
                     noise: float = 0.1, **kw) -> dict:
    """Fixed points of a nets.RandomRNN under constant input ``x`` (n_in,) (default: none, zeros):
    F(h) = relu(W_rec h + W_in x + b). Starts: ``n_starts`` visited states (rows of H (N, n_hidden)) drawn with
    the generator (seed, "fixedpoints"), each moved by Gaussian noise of s.d. ``noise`` times the states' rms
    per unit. Returns ``analyse``'s dict."""
    with torch.no_grad():
        W = net.W_rec.detach()
        x = torch.zeros(net.W_in.shape[1], device=W.device) if x is None else x
        c = (net.W_in.detach() @ x + net.b.detach())       # (n_hidden,)
        g = generator(seed, "fixedpoints")
        rows = torch.randint(len(H), (n_starts,), generator=g)
        rms = float(H.pow(2).mean().sqrt())
        starts = H[rows.to(H.device)] + noise * rms * torch.randn(n_starts, H.shape[1], generator=g).to(H.device)
        scale = float(H.pow(2).sum(1).mean())

    def F(h):
        return torch.relu(h @ W.T + c)

    return analyse(F, starts, max(scale, 1e-12), lambda h: relu_jacobian(W, c, h),
                   polish=lambda h: polish_relu(W, c, h), **kw)
