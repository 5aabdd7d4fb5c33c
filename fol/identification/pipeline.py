"""The identification pipeline: Spectrum(Batch) → quality → recipe → search → mixture → decision.

``Identifier`` holds one library and, per technique, its recipe, searcher and mixture
model (built once). ``analyse`` takes a whole batch so that preprocessing and search
are matrix operations; mixture analysis (``fol.identification.mixture``) then fits each spectrum as a
combination of library entries, each component gets a calibrated confidence
(``fol.identification.confidence``), and when no fentanyl analogue of the library is among the
components but what the components leave unexplained looks like one, the class alarm
(``fol.identification.classalarm``, trained from the library on first need) adds an ``unlisted
fentanyl-class compound``. ``analyse_spectrum`` is the one-spectrum convenience used
by ``fol identify``. Both return result objects as in result-format.md. A library
section's own calibration (``fol library calibrate``) replaces the default confidence
model and ``min_confidence`` for that technique (``Identifier.settings``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fol.identification.decide import DecisionPolicy, base_result, decide, error_result
from fol.errors import FolError
from fol.search import substances
from fol.spectrum import Spectrum, SpectrumBatch


#: single-substance hits tried first by the mixture fit
START_HITS = 3


def confident_analogue(comps: list[dict], min_confidence: float) -> bool:
    """Whether a library fentanyl analogue with confidence ≥ ``min_confidence`` is among ``comps``."""
    from fol.identification.classalarm import ALARM_CLASS

    return any(c["class"] == ALARM_CLASS and c["confidence"] >= min_confidence for c in comps)


class Identifier:
    """Analyses batches against one library.

    ``policy`` and ``calibration``, when given, apply to every technique; otherwise a
    library section that carries a calibration (``fol library calibrate``) supplies its
    confidence model and ``min_confidence``, and the defaults (``DecisionPolicy()``,
    ``fol.identification.confidence.DEFAULT``) apply to sections without one.
    """

    def __init__(self, library, *, similarity: str = "pearson", top: int = 10, policy: DecisionPolicy | None = None,
                 mixture: bool = True, class_alarm: bool = True, mixture_policy=None, calibration=None):
        self.library = library
        self.similarity = similarity
        self.top = top
        self.policy = policy
        self.mixture = mixture
        self.class_alarm = class_alarm
        self.mixture_policy = mixture_policy
        self.calibration = calibration
        self._prepared: dict[str, tuple] = {}
        self._settings: dict[str, tuple] = {}
        ref = library.ref()
        ref["provenance"] = {t: s.provenance_summary() for t, s in library.sections.items()}
        self.library_ref = ref

    def warm_caches(self) -> None:
        """Put what is derived from the library into the cache directory now, once.

        The class-alarm model of every section, the search index of sections large
        enough to have one and the mixture model's screening matrix are otherwise made on
        first need by every process; replay
        calls this before starting workers, so that they read them from the cache
        instead of each training and building them. Nothing is cached for unverified
        libraries (their hash does not name their content).
        """
        if not self.library.verified:
            return
        from fol.identification import classalarm
        from fol.search.searcher import INDEX_MIN_ROWS, Searcher, index_cache_path

        for technique, section in self.library.sections.items():
            if self.class_alarm and self.mixture:
                classalarm.for_section(self.library.sha256, section)
            if (len(section) >= INDEX_MIN_ROWS and technique not in self._prepared
                    and not index_cache_path(technique, self.similarity, self.library.sha256).exists()):
                Searcher(section, self.similarity, cache_key=self.library.sha256)  # built and cached, then dropped
            if self.mixture and technique not in self._prepared:
                from fol.identification.mixture import MixtureModel

                MixtureModel(section, self.mixture_policy, cache_key=self.library.sha256)  # its screening cached

    def _prepare(self, technique: str):
        """(section, recipe, searcher, mixture model or None) for a technique, built once."""
        if technique not in self._prepared:
            from fol.search.searcher import Searcher

            section = self.library.section(technique)
            model = None
            cache_key = self.library.sha256 if self.library.verified else None
            if self.mixture:
                from fol.identification.mixture import MixtureModel

                model = MixtureModel(section, self.mixture_policy, cache_key=cache_key)
            self._prepared[technique] = (section, section.recipe, Searcher(section, self.similarity, cache_key=cache_key),
                                         model)
        return self._prepared[technique]

    def settings(self, technique: str):
        """(decision policy, confidence calibration) used for ``technique``: explicit, the section's, or default."""
        if technique not in self._settings:
            from fol.identification.confidence import (DEFAULT_POLICY_BY_TECHNIQUE, default_calibration,
                                                       section_calibration)

            stored = section_calibration(self.library.section(technique))
            policy = self.policy
            if policy is None:
                overrides = stored[1] if stored else (DEFAULT_POLICY_BY_TECHNIQUE.get(technique, {})
                                                      if self.calibration is None else {})
                policy = replace(DecisionPolicy(), **overrides)
            self._settings[technique] = (policy, self.calibration or (stored[0] if stored else default_calibration(technique)))
        return self._settings[technique]

    def _components(self, section, calibration, fits: dict) -> dict:
        """Components (result-format dicts, most abundant first) of every row's mixture fit, ``{row: [...]}``:
        the confidences of all components of the batch in one ``calibration.probability`` call (row by
        row the same numbers: its reduction does not depend on the batch)."""
        from fol.identification.confidence import ALL_FEATURES, features

        rows = [(r, i, c) for r, fit in fits.items() for i, c in enumerate(fit.components)]
        x = np.array([features(c, fits[r], i == 0) for r, i, c in rows]).reshape(len(rows), len(ALL_FEATURES))
        conf = calibration.probability(x) if rows else np.empty(0)
        out: dict = {r: [] for r in fits}
        for (r, _, c), p in zip(rows, conf):
            j = c.row
            out[r].append({"name": section.names[j], "class": section.classes[j], "score": round(c.score, 4),
                           "alarm": bool(section.alarm[j]), "provenance": section.provenance[j],
                           "fraction": round(c.fraction, 4), "confidence": round(float(p), 4)})
        return out

    def _class_alarm(self, section, recipe, pol, gate, raw, fits: dict, comps: dict) -> dict:
        """The ``unlisted fentanyl-class compound`` component of each row whose class model calls what is
        left, ``{row: component}`` (rows without one are absent).

        Asked only of rows with no library analogue of confidence ≥ ``gate`` among their
        components (``gate`` None: asked regardless, see ``evidence``) whose components leave
        a real signal unexplained: at least ``class_min_unexplained`` of the spectrum and an
        rms residual of at least ``class_min_excess`` times the noise. The remainders of all
        rows asked go through the recipe and the class model together (row by row the same
        numbers as alone: the recipe and the model's reduction are per row).
        """
        from fol.identification import classalarm
        from fol.identification.quality import noise_sigma
        from fol.spectrum import SpectrumBatch

        asked = []
        for r, fit in fits.items():
            if (gate is not None and confident_analogue(comps[r], gate)) or fit.corrected is None:
                continue
            sigma = float(noise_sigma(raw[r][None, :])[0])
            excess = np.sqrt(fit.rss / max(fit.residual.size, 1)) / sigma if sigma > 0 else np.inf
            if 1.0 - fit.explained >= pol.class_min_unexplained and excess >= pol.class_min_excess:
                asked.append(r)
        if not asked:
            return {}
        model = classalarm.for_section(self.library.sha256, section, persist=self.library.verified)
        if model is None:
            return {}
        left = np.stack([fits[r].remainder() for r in asked])
        x = recipe.apply(SpectrumBatch(section.grid, left, section.technique), section.grid).data
        out = {}
        for r, p in zip(asked, model.probability(x)):
            if p >= pol.class_threshold:
                out[r] = {"name": classalarm.COMPONENT_NAME, "class": classalarm.ALARM_CLASS, "score": round(float(p), 4),
                          "alarm": True, "provenance": "class-model", "fraction": None, "confidence": round(float(p), 4),
                          "class_only": True}
        return out

    def evidence(self, batch: SpectrumBatch, *, source: str, entry: str, start_index: int = 0,
                 gate: float | None | bool = True) -> list[dict]:
        """Per row of ``batch``, what the decision is made from (``decide_row`` makes it).

        A dict with ``where`` (result location keys) and either ``error`` or ``hits``,
        ``gap``, ``second``, ``quality``, ``components`` (mixture components with
        confidence, or None) and ``unlisted`` (the class alarm's component, or None).
        The class alarm is asked as ``analyse`` does (``gate`` True: gated by the
        policy's ``min_confidence``) or, with ``gate=None``, whatever the components'
        confidence, so that one pass serves every threshold (``fol.qa.evaluation``).
        """
        from fol.identification.quality import assess

        where = lambda i: dict(source=source, entry=entry, index=start_index + i,  # noqa: E731
                               technique=batch.technique, library_ref=self.library_ref)
        try:
            section, recipe, searcher, model = self._prepare(batch.technique)
            pol, calibration = self.settings(batch.technique)
        except FolError as e:
            return [{"where": where(i), "error": str(e)} for i in range(len(batch))]
        if gate is True:
            gate = pol.min_confidence
        out: list[dict | None] = [None] * len(batch)
        for i, why in batch.invalid.items():
            out[i] = {"where": where(i), "error": f"spectrum cannot be analysed: {why}"}
        valid = np.array([i for i in range(len(batch)) if i not in batch.invalid], dtype=int)
        if valid.size:
            sub = batch if valid.size == len(batch) else SpectrumBatch(
                batch.wavenumber, batch.intensity[valid], batch.technique, batch.unit, batch.metadata)
            quality = assess(sub, section.grid)
            processed = recipe.apply(sub, section.grid)
            found = searcher.search(processed.data, self.top)
            fits, raw = {}, None
            if model is not None:  # mixture analysis of every analysable row, screened together
                raw, mask = model.prepare(sub)
                todo = [r for r in range(valid.size) if r not in processed.invalid]
                fits = dict(zip(todo, model.fit_many(raw[todo], mask, [found.indices[r, :START_HITS] for r in todo])))
            all_comps = self._components(section, calibration, fits)
            unlisted_of = self._class_alarm(section, recipe, pol, gate, raw, fits, all_comps) if self.class_alarm else {}
            for r, i in enumerate(valid):
                second = searcher.hit(found.second[r], 0.0) if found.second[r] >= 0 else None
                comps, unlisted = all_comps.get(r), unlisted_of.get(r)
                hits, comps = substances.apply(section, searcher.hits(found, r), found.indices[r], comps,
                                               [c.row for c in fits[r].components] if r in fits else [])
                out[i] = {"where": where(int(i)), "hits": hits, "gap": float(found.gap[r]),
                          "second": second, "quality": quality.row(r), "components": comps, "unlisted": unlisted}
        return out  # type: ignore[return-value]

    def decide_row(self, ev: dict, policy: DecisionPolicy | None = None) -> dict:
        """The result object for one row's ``evidence`` under ``policy`` (default: the technique's)."""
        if "error" in ev:
            return self._mark(error_result(ev["error"], **ev["where"]))
        pol = policy or self.settings(ev["where"]["technique"])[0]
        comps = ev["components"]
        if comps is not None and ev["unlisted"] and not confident_analogue(comps, pol.min_confidence):
            comps = comps + [ev["unlisted"]]
        return self._mark(substances.caution(decide(base_result(**ev["where"]), ev["hits"], ev["gap"], ev["second"],
                                                    ev["quality"], pol, comps)))

    def _mark(self, result: dict) -> dict:
        """Flag a result from a library whose content hash did not verify (``--allow-unverified``)."""
        if not self.library.verified and "unverified_library" not in result["flags"]:
            result["flags"].append("unverified_library")
        return result

    def analyse(self, batch: SpectrumBatch, *, source: str, entry: str, start_index: int = 0) -> list[dict]:
        """One result per row of ``batch``; rows listed in ``batch.invalid`` get error results."""
        return [self.decide_row(ev) for ev in self.evidence(batch, source=source, entry=entry,
                                                             start_index=start_index)]

    def analyse_spectrum(self, spectrum: Spectrum, *, source: str, entry: str, index: int = 0) -> dict:
        return self.analyse(spectrum.as_batch(), source=source, entry=entry, start_index=index)[0]
