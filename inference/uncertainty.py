"""The one rule for a call too uncertain to count: shared by the app, the reports and the CLI.

A call whose top probability is under the threshold is shown and counted as Unidentified, with the
model's top class kept as the best guess, so a low-confidence call is never presented as a call.
"""

from __future__ import annotations

import argparse

UNIDENTIFIED_ID = "unidentified"
UNIDENTIFIED_NAME = "Unidentified"
DEFAULT_THRESHOLD = 0.60


def is_uncertain(top_probability: float, threshold: float) -> bool:
    """Under the threshold; float32 probabilities equal to it (70 % vs 0.7) are not uncertain."""
    return top_probability < threshold - 1e-6


def add_threshold_option(parser: argparse.ArgumentParser, what: str, default_text: str | None = None) -> None:
    """``--uncertain-below PERCENT`` for the command lines, parsed to a fraction. With ``default_text`` the
    option defaults to None and the caller supplies the value that text describes."""
    parser.add_argument(
        "--uncertain-below",
        type=_percentage,
        default=None if default_text else DEFAULT_THRESHOLD,
        metavar="PERCENT",
        help=f"{what} whose top probability is under this percentage count as Unidentified, as the app shows "
        f"them (default: {default_text or f'{100 * DEFAULT_THRESHOLD:g}, the app default'})",
    )


def _percentage(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage from 0 to 100")
    return value / 100
