"""Temperature scaling (Guo et al., 2017): one scalar T so that softmax(logits / T) is calibrated.

Fitted on the validation split by minimising the negative log-likelihood over log T with a golden-
section search: the NLL is unimodal in log T, and a 1-D search needs no optimiser state or torch.
"""

from __future__ import annotations

import math

import numpy as np

TEMPERATURE_FLOOR = 0.05  # the fit's lower bound; a fit that ends here means the split was separated


def log_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(logits / T), computed stably."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T): the calibrated probabilities."""
    return np.exp(log_probabilities(logits, temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    logp = log_probabilities(logits, temperature)
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
