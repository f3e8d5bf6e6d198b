"""The one rule for a call too uncertain to count: shared by the app, the reports and the CLI.

A call whose top probability is under the threshold is shown and counted as Unidentified, with the
model's top class kept as the best guess, so a low-confidence call is never presented as a call.
"""

from __future__ import annotations

UNIDENTIFIED_ID = "unidentified"
UNIDENTIFIED_NAME = "Unidentified"
DEFAULT_THRESHOLD = 0.60


def is_uncertain(top_probability: float, threshold: float) -> bool:
    """Under the threshold; float32 probabilities equal to it (70 % vs 0.7) are not uncertain."""
    return top_probability < threshold - 1e-6
