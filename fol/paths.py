"""Where the shipped data lives, and where fol keeps what it derives from a library.

The catalogue and the built reference library live in ``spectra_library/`` at the top
of the project (installed with ``pip install -e .``). ``FOL_LIBRARY`` and
``FOL_CATALOGUE`` override the defaults.

``cache_dir()`` holds models derived from a library and keyed by its content hash
(class-alarm detector, search index of large libraries): ``$FOL_CACHE_DIR``, else
``$XDG_CACHE_HOME/fol``, else ``~/.cache/fol``. Deleting it only costs recomputation.
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


def cache_dir() -> Path:
    """Where models derived from a library are kept between processes."""
    if os.environ.get("FOL_CACHE_DIR"):
        return Path(os.environ["FOL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fol"


def save_npz(path: str | Path, **arrays) -> Path:
    """``np.savez`` to ``path``, atomically: written beside it under a temporary name, then
    renamed, so a reader in another process never sees half a file (its directory is made)."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def cache_file(kind: str, version: int, *key: str) -> Path:
    """``cache_dir()/<kind>-v<version>-<key>-....npz``, with unsafe characters dropped from the key."""
    parts = ["".join(c for c in str(k) if c.isalnum() or c in "-_.")[:80] for k in key]
    return cache_dir() / f"{kind}-v{version}-{'-'.join(parts)}.npz"
