"""Similarities between processed spectra, one contract for all (as in matchms).

``pair(a, b) -> float`` for two processed spectra is the reference definition;
``matrix(A, B) -> ndarray[len(A), len(B)]`` must agree with it; ``prepare(rows)`` turns
recipe-processed rows into the vectors whose dot product is the score (tested for every
entry of ``SIMILARITIES``). Scores are HQI-style in 0..1: negatives clipped to 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the CLI reads the registry's names without it
    import numpy as np


class PearsonSimilarity:
    """Pearson correlation of two processed (mean-centred, unit-norm) spectra, clipped to 0..1."""

    name = "pearson"

    @staticmethod
    def prepare(rows: np.ndarray) -> np.ndarray:
        """Rows are already normalised by the recipe: use them as they are (float32, C order)."""
        import numpy as np

        return np.ascontiguousarray(rows, dtype=np.float32)

    def pair(self, a: np.ndarray, b: np.ndarray) -> float:
        import numpy as np

        a = np.asarray(a, np.float64) - np.mean(a)
        b = np.asarray(b, np.float64) - np.mean(b)
        den = np.linalg.norm(a) * np.linalg.norm(b)
        return float(min(max(a @ b / den, 0.0), 1.0)) if den > 0 else 0.0

    def matrix(self, queries: np.ndarray, library: np.ndarray) -> np.ndarray:
        import numpy as np

        q, lib = self.prepare(queries), self.prepare(library)
        return np.clip(q @ lib.T, 0.0, 1.0)


class DerivativeSimilarity(PearsonSimilarity):
    """Pearson correlation of the first derivatives (Savitzky–Golay): insensitive to residual baseline."""

    name = "derivative"

    def __init__(self, window: int = 9, polyorder: int = 2):
        self.window, self.polyorder = window, polyorder

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        import numpy as np
        from scipy.signal import savgol_filter

        d = savgol_filter(np.asarray(rows, dtype=np.float64), self.window, self.polyorder, deriv=1, axis=-1)
        d -= d.mean(axis=-1, keepdims=True)
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        np.divide(d, norm, out=d, where=norm > 0)
        return np.ascontiguousarray(d, dtype=np.float32)

    def pair(self, a: np.ndarray, b: np.ndarray) -> float:
        import numpy as np

        pa, pb = self.prepare(np.asarray(a)[None]), self.prepare(np.asarray(b)[None])
        return float(max(0.0, float(pa[0].astype(np.float64) @ pb[0].astype(np.float64))))


#: every similarity, by name: add a new one here (the contract test in tests/search runs over all)
SIMILARITIES = {cls.name: cls for cls in (PearsonSimilarity, DerivativeSimilarity)}
#: the names accepted by ``--similarity`` and ``Identifier(similarity=...)``
MODES = tuple(SIMILARITIES)
DEFAULT = "pearson"


def similarity(name: str):
    """A new instance of the similarity called ``name`` (``ValueError`` for an unknown name)."""
    try:
        return SIMILARITIES[name]()
    except KeyError:
        raise ValueError(f"unknown similarity {name!r} (expected one of {', '.join(MODES)})") from None


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two spectra on one axis, clipped to 0..1 (the reference definition)."""
    return PearsonSimilarity().pair(a, b)
