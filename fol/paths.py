"""Where the shipped data lives, and where fol keeps what it derives from a library.

The catalogue and the built reference library are package data of ``spectra_library``
(the folder at the top of the project; a wheel installs it beside ``fol``), found through
``importlib.resources`` so that they work from a checkout, an editable install and a wheel
alike. ``FOL_LIBRARY`` and ``FOL_CATALOGUE`` override the defaults.

``cache_dir()`` holds models derived from a library and keyed by its content hash
(class-alarm detector, search index of large libraries): ``$FOL_CACHE_DIR``, else
``$XDG_CACHE_HOME/fol``, else ``~/.cache/fol``. Deleting it only costs recomputation.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path



def shipped_data_dir() -> Path:
    """The installed ``spectra_library`` package folder (catalogue and reference library)."""
    from importlib.resources import files

    return Path(str(files("spectra_library")))


def default_catalogue() -> Path:
    """The catalogue: ``$FOL_CATALOGUE``, else the shipped ``substances.csv``."""
    return Path(os.environ.get("FOL_CATALOGUE") or shipped_data_dir() / "substances.csv")


def default_library() -> Path:
    """The default library: ``$FOL_LIBRARY``, else the shipped ``fol-reference.h5``."""
    return Path(os.environ.get("FOL_LIBRARY") or shipped_data_dir() / "fol-reference.h5")


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


def save_npy(path: str | Path, array) -> Path:
    """``np.save`` to ``path`` (no pickle), atomically as ``save_npz``: a reader (a worker memory-mapping
    it) never sees half a file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cache_file(kind: str, version: int, *key: str) -> Path:
    """``cache_dir()/<kind>-v<version>-<key>-....npz``, with unsafe characters dropped from the key."""
    parts = ["".join(c for c in str(k) if c.isalnum() or c in "-_.")[:80] for k in key]
    return cache_dir() / f"{kind}-v{version}-{'-'.join(parts)}.npz"


def special_kind(mode: int) -> str | None:
    """What a file of ``os.stat`` mode ``mode`` is when it is not a regular file ("a directory", "a FIFO",
    "a device", "a socket", "a special file"), or None for a regular file. One owner of the check that
    readers make before opening a path (a FIFO or device would block them)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
