"""The identification pipeline: Spectrum(Batch) → quality → recipe → search → decision.

``Identifier`` holds one library and, per technique, its recipe and searcher (built
once). ``analyse`` takes a whole batch so that preprocessing and search are matrix
operations; ``analyse_spectrum`` is the one-spectrum convenience used by
``fol identify``. Both return result objects as in result-format.md.
"""

from __future__ import annotations

import numpy as np

from .decide import DecisionPolicy, base_result, decide, error_result
from .errors import FolError
from .spectrum import Spectrum, SpectrumBatch


class Identifier:
    def __init__(self, library, *, mode: str = "pearson", k: int = 10, policy: DecisionPolicy | None = None):
        self.library = library
        self.mode = mode
        self.k = k
        self.policy = policy or DecisionPolicy()
        self._prepared: dict[str, tuple] = {}
        ref = library.ref()
        ref["provenance"] = {t: s.provenance_summary() for t, s in library.sections.items()}
        self.library_ref = ref

    def _prepare(self, technique: str):
        """(section, recipe, searcher) for a technique, built once."""
        if technique not in self._prepared:
            from .search import Searcher

            section = self.library.section(technique)
            self._prepared[technique] = (section, section.recipe, Searcher(section, self.mode))
        return self._prepared[technique]

    def analyse(self, batch: SpectrumBatch, *, source: str, entry: str, start_index: int = 0) -> list[dict]:
        """One result per row of ``batch``; rows listed in ``batch.invalid`` get error results."""
        from .quality import assess

        where = lambda i: dict(source=source, entry=entry, index=start_index + i,  # noqa: E731
                               technique=batch.technique, library_ref=self.library_ref)
        try:
            section, recipe, searcher = self._prepare(batch.technique)
        except FolError as e:
            return [error_result(str(e), **where(i)) for i in range(len(batch))]
        results: list[dict | None] = [None] * len(batch)
        for i, why in batch.invalid.items():
            results[i] = error_result(f"spectrum cannot be analysed: {why}", **where(i))
        valid = np.array([i for i in range(len(batch)) if i not in batch.invalid], dtype=int)
        if valid.size:
            sub = batch if valid.size == len(batch) else SpectrumBatch(
                batch.wavenumber, batch.intensity[valid], batch.technique, batch.unit, batch.metadata)
            quality = assess(sub, section.grid)
            processed = recipe.apply(sub, section.grid)
            found = searcher.search(processed.data, self.k)
            for r, i in enumerate(valid):
                hits = searcher.hits(found, r)
                second = searcher.hit(found.second[r], 0.0) if found.second[r] >= 0 else None
                results[i] = decide(base_result(**where(int(i))), hits, float(found.gap[r]), second,
                                    quality.row(r), self.policy)
        return results  # type: ignore[return-value]

    def analyse_spectrum(self, spectrum: Spectrum, *, source: str, entry: str, index: int = 0) -> dict:
        return self.analyse(spectrum.as_batch(), source=source, entry=entry, start_index=index)[0]
