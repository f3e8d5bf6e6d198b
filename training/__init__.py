"""Recipes that train HemaLens's default models (PyTorch CPU; optional, never imported by the app)."""
