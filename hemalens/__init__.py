"""HemaLens: local, explainable blood-smear image classification for lab review."""

__version__ = "0.1.0"

RESEARCH_USE_STATEMENT = (
    "HemaLens is a screening aid for research use only. It does not make a diagnosis; "
    "every call must be reviewed by a qualified person."
)
