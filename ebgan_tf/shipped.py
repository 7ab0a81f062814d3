"""The trained models shipped in the repository's `models/` directory (models/README.md lists them, their
evaluation and the commands that made them). They are found next to the package, as in a source checkout or an
editable install (`make demo`, `pip install -e .`)."""

from __future__ import annotations

import os

SHIPPED_MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
# TF Serving base directories of the shipped SavedModels, by model name; the first is the commands' default.
SHIPPED_MODELS: dict[str, str] = {name: os.path.join(SHIPPED_MODELS_DIR, name) for name in ("att_ebgan", "ebgan")}
DEFAULT_MODEL = SHIPPED_MODELS["att_ebgan"]
