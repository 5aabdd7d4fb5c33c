"""Shared fixtures: paths to ../shared data, small synthetic libraries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from builders import REAL, ROOT, SHARED, lorentz  # noqa: F401 (ROOT, SHARED: for fixtures below)

# models derived from a library are cached on disk (fol.paths.cache_dir): tests use a
# fresh directory per session, never the user's ~/.cache/fol; subprocesses inherit it
os.environ["FOL_CACHE_DIR"] = tempfile.mkdtemp(prefix="fol-test-cache-")



@pytest.fixture
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data not present at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def enfsi_files() -> list[Path]:
    files = sorted((REAL / "enfsi_ir").glob("*.json"))
    if not files:
        pytest.skip(f"no ENFSI records under {REAL}")
    return files


@pytest.fixture(scope="session")
def enfsi_library(tmp_path_factory, enfsi_files) -> Path:
    """A library imported from the 67 real ENFSI ATR-FTIR records with ``fol library import``.

    Shared by the whole session: tests must not modify it (copy it first)."""
    from fol.cli import main

    out = tmp_path_factory.mktemp("enfsi") / "enfsi.h5"
    assert main(["library", "import", *map(str, enfsi_files), "--out", str(out)]) == 0
    return out


@pytest.fixture
def peak_library_rows():
    """(grid, names, raw matrix) of 12 synthetic Raman references made of distinct Lorentzian bands."""
    rng = np.random.default_rng(7)
    grid = np.arange(200, 2000.1, 2.0)
    names, rows = [], []
    for i in range(12):
        centres = rng.uniform(300, 1900, size=6)
        rows.append(lorentz(grid, centres, rng.uniform(0.3, 1.0, size=6)))
        names.append(f"sub{i}")
    return grid, names, np.vstack(rows)
