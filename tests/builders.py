"""Builders shared by the tests: synthetic bands, sections and libraries (one place for all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the project checkout, and the shared data beside it (``../shared``, as in CI)
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"


def lorentz(grid: np.ndarray, centres, heights, width: float = 8.0) -> np.ndarray:
    """Sum of Lorentzian bands (FWHM ``width``) on ``grid``."""
    g = np.asarray(grid)[:, None]
    c = np.asarray(centres, float)[None, :]
    hw = width / 2
    return (np.asarray(heights, float)[None, :] * hw**2 / ((g - c) ** 2 + hw**2)).sum(axis=1)


def bands(x, centres, heights, widths) -> np.ndarray:
    """Sum of Lorentzian bands with one FWHM per band."""
    x = np.asarray(x)[None, :]
    hw = np.asarray(widths)[:, None] / 2
    return (np.asarray(heights)[:, None] * hw**2 / ((x - np.asarray(centres)[:, None]) ** 2 + hw**2)).sum(axis=0)


def synthetic_library(path: Path, names: list[str], *, technique: str = "raman", seed: int = 5,
                      name: str = "test-lib") -> tuple[str, dict]:
    """A library of catalogue substances, each made of 7 random Lorentzian bands on the default grid.

    Returns ``(sha256, bands per name)`` so that tests can measure queries from the same references.
    """
    from fol.catalogue import load_catalogue
    from fol.io.library import make_section, write_library
    from fol.preprocess.recipe import default_grid, default_recipe

    rng = np.random.default_rng(seed)
    cat = load_catalogue()
    lo, hi = (300, 1900) if technique == "raman" else (700, 3900)
    spec = {n: (rng.uniform(lo, hi, 7), rng.uniform(0.2, 1, 7), rng.uniform(6, 14, 7)) for n in names}
    grid = default_grid(technique)
    raw = np.stack([bands(grid, *spec[n]) + 0.1 for n in names])
    section = make_section(technique, grid, raw, names, [cat[n].cls for n in names], [cat[n].alarm for n in names],
                           ["measured"] * len(names), ["synthetic"] * len(names), default_recipe(technique))
    return write_library(path, {technique: section}, name=name), spec


def chromium_path() -> str | None:
    """The system Chromium that the station's browser tests drive (Debian's ``chromium``), if installed."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_bounded(fn, *args, timeout_s: float, extra_memory: int = 3 << 29) -> tuple[str, str]:
    """``fn(*args) -> (status, message)`` in a forked child with its address space limited to
    ``extra_memory`` bytes more than it starts with; ``("hang", ...)`` after ``timeout_s`` and
    ``("crash", ...)`` if the child dies (the memory limit, for instance). For malformed-input tables."""
    import multiprocessing
    import resource

    def child(conn) -> None:
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + extra_memory, vm + extra_memory))
        conn.send(fn(*args))
        conn.close()

    ctx = multiprocessing.get_context("fork")
    parent, end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(end,))
    proc.start()
    end.close()
    if not parent.poll(timeout_s):
        proc.kill()
        proc.join()
        return "hang", f"no answer in {timeout_s} s"
    try:
        result = parent.recv()
    except EOFError:
        result = ("crash", f"child died (exit {proc.exitcode}): memory limit?")
    proc.join(10)
    return result
