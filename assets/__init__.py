"""Files that ship inside HemaLens: the bundled default models and their model cards."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
MODELS_DIR = ASSETS_DIR / "models"
