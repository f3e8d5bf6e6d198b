"""Temperature scaling (Guo et al., 2017): one scalar T so that softmax(logits / T) is calibrated.

Fitted on the validation split by minimising the negative log-likelihood over log T with a golden-
section search: the NLL is unimodal in log T, and a 1-D search needs no optimiser state or torch.
"""

from __future__ import annotations

import math

import numpy as np

TEMPERATURE_FLOOR = 0.05  # the fit's lower bound; a fit that ends here means the split was separated


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = TEMPERATURE_FLOOR, hi: float = 20.0) -> float:
    """The T in [lo, hi] minimising validation NLL (golden-section search over log T)."""
    a, b = math.log(lo), math.log(hi)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))


def offset_nll(logits: np.ndarray, labels: np.ndarray, temperature: float, offsets: np.ndarray) -> float:
    """NLL of softmax(logits / T + offsets)."""
    return nll(logits / temperature + offsets, labels, 1.0)


def fit_temperature_and_offsets(logits: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, np.ndarray]:
    """T and one offset per class (mean 0) minimising the NLL of softmax(logits / T + offsets).

    Why: a temperature keeps every call; per-class offsets also move the decision between classes the
    model confuses, fitted on calls like new slides (out-of-fold logits). The NLL is convex in (1/T,
    offsets), so Newton steps with a backtracking line search find the optimum; the Hessian is singular
    along "all offsets + c" (softmax ignores it), hence the pseudo-inverse and the centring."""
    z = logits.astype(np.float64)
    n, k = z.shape
    onehot = np.eye(k)[labels]
    theta = np.zeros(k + 1)
    theta[0] = 1.0

    def loss(t: np.ndarray) -> float:
        return nll(t[0] * z + t[1:], labels, 1.0)

    for _ in range(iters):
        s = theta[0] * z + theta[1:]
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        r = p - onehot
        grad = np.concatenate([[np.mean((r * z).sum(1))], r.mean(0)])
        jac = np.concatenate([z[:, :, None], np.broadcast_to(np.eye(k), (n, k, k))], axis=2)  # (n, k, k+1)
        cov = p[:, :, None] * np.eye(k) - p[:, :, None] * p[:, None, :]  # (n, k, k)
        hess = np.einsum("nki,nkl,nlj->ij", jac, cov, jac) / n
        step = -np.linalg.pinv(hess) @ grad
        rate, before = 1.0, loss(theta)
        while loss(theta + rate * step) > before + 1e-4 * rate * float(grad @ step) and rate > 1e-6:
            rate /= 2
        theta = theta + rate * step
        if np.abs(rate * step).max() < 1e-9:
            break
    if theta[0] <= 0:
        raise ValueError("the fitted 1/T is not positive: the logits carry no information on these labels")
    offsets = theta[1:] - theta[1:].mean()
    return float(1.0 / theta[0]), offsets
