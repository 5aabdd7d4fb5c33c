"""Where the shipped data lives.

The catalogue and the built reference library live in ``spectra_library/`` at the top
of the project (installed with ``pip install -e .``). ``FOL_LIBRARY`` and
``FOL_CATALOGUE`` override the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPECTRA_LIBRARY_DIR = PROJECT_ROOT / "spectra_library"


def default_catalogue() -> Path:
    return Path(os.environ.get("FOL_CATALOGUE") or SPECTRA_LIBRARY_DIR / "substances.csv")


def default_library() -> Path:
    return Path(os.environ.get("FOL_LIBRARY") or SPECTRA_LIBRARY_DIR / "fol-reference.h5")
