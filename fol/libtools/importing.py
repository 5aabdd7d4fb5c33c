"""``fol library import``: measured spectra files in, a library out, every class decision recorded.

For every spectrum read (``fol.io.formats``), the entry's name, class and alarm are
decided in this order, and how is kept as the entry's ``class_source``:

1. the **name map** (``--name-map``): ``name,class,alarm`` rows give a class directly;
   two-column rows ``name_in_file,catalogue_name`` point at a catalogue name;
2. the **catalogue** (shipped, extended by ``--catalogue``/``$FOL_CATALOGUE``): the name or
   one of the file's aliases resolves to a catalogue substance;
3. a class written by ``fol library export`` in the file itself;
4. **name rules** for scaffolds the name carries (``...fentanyl``, ``...nitazene``, ...);
5. the **source's category** (ENFSI ``opioids`` -> opioid, ...);
6. otherwise ``unknown``. Every ``unknown`` entry is then scored by the class model
   (``fol.identification.classalarm``, trained on the new library's classified entries):
   one that looks like a fentanyl analogue (probability >= ``SUSPECT_THRESHOLD``) gets
   ``suspected_class`` and ``suspected_probability``; a match to it raises a CAUTION
   naming it (``fol.search.substances``).

``ImportReport.decisions`` is the table of every entry and how its class was decided;
``unknown()`` the entries left unknown. A batch in which some files are refused writes
nothing unless ``skip_bad`` (the report lists them). ``dedupe`` drops repeated
measurements (the same name and a processed-spectrum correlation >= ``DUPLICATE_R``)
and reports near-duplicates (different names, correlation >= ``NEAR_DUPLICATE_R``).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fol.catalogue import (
    LAB_COLUMNS,
    UNKNOWN_CLASS,
    Catalogue,
    catalogue_conflicts,
    class_from_category,
    class_from_name,
    load_catalogue,
    name_key,
)
from fol.errors import FolError, FormatError, LibraryError

SUSPECT_THRESHOLD = 0.8  # the pipeline's class_threshold (DecisionPolicy)
DUPLICATE_R = 0.9995
NEAR_DUPLICATE_R = 0.995
#: metadata kept per entry (when the file has it)
ENTRY_META = ("enfsi_id", "validated", "form", "sample_description", "cas_name", "cas", "formula", "mw",
              "category", "measurement", "model", "serial", "laser_wavelength_nm", "integration_ms", "averages",
              "spectrometer", "instrument", "operator", "vendor", "vendor_format", "technique_from", "title")


@dataclass
class NameMap:
    """``name -> catalogue name`` and ``name -> (class, alarm)`` from a name-map CSV."""

    to_name: dict[str, str] = field(default_factory=dict)
    to_class: dict[str, tuple[str, bool, str]] = field(default_factory=dict)
    source: str = ""


def read_name_map(path: str | Path) -> NameMap:
    """A name map: ``name,class,alarm`` (header required; optional ``catalogue_name``), or the
    older two columns ``name_in_file,catalogue_name`` (header optional)."""
    out = NameMap(source=str(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    except OSError as e:
        raise FormatError(f"{path}: cannot read name map ({e.strerror or e})") from None
    if not rows:
        return out
    header = [h.strip().lower() for h in rows[0]]
    if set(LAB_COLUMNS) <= set(header) or "catalogue_name" in header:
        col = {h: i for i, h in enumerate(header)}
        for n, r in enumerate(rows[1:], start=2):
            def get(k, r=r):
                return r[col[k]].strip() if k in col and col[k] < len(r) else ""
            key = name_key(get("name"))
            if get("catalogue_name"):
                out.to_name[key] = get("catalogue_name")
            if get("class"):
                alarm = get("alarm").lower()
                if alarm not in ("true", "false"):
                    raise FormatError(f"{path}, line {n}: alarm must be true or false, got {get('alarm')!r}")
                out.to_class[key] = (get("class"), alarm == "true", get("name"))
        return out
    for r in rows:
        if len(r) >= 2 and r[1].strip() and name_key(r[0]) not in ("nameinfile", "name"):
            out.to_name[name_key(r[0])] = r[1].strip()
    return out


@dataclass
class Item:
    name: str
    cls: str
    alarm: bool
    class_source: str
    technique: str
    file: str
    spectrum: object
    meta: dict


@dataclass
class ImportReport:
    path: str
    sha256: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    written: bool = False
    files: int = 0

    @property
    def skipped(self) -> list[str]:  # older name
        return self.refused

    def unknown(self) -> list[dict]:
        return [d for d in self.decisions if d["class"] == UNKNOWN_CLASS]


def decide_class(hint: str, meta: dict, catalogue: Catalogue, name_map: NameMap) -> tuple[str, str, bool, str]:
    """(entry name, class, alarm, class_source) for one spectrum's name hint and metadata."""
    aliases = [a for a in meta.get("aliases", ()) if a]
    names = (hint, *aliases)
    for n in names:
        k = name_key(n)
        if k in name_map.to_class:
            cls, alarm, _ = name_map.to_class[k]
            target = name_map.to_name.get(k)
            return (catalogue.resolve(target) or target if target else hint), cls, alarm, \
                f"name map {Path(name_map.source).name}"
        if k in name_map.to_name:
            target = name_map.to_name[k]
            found = catalogue.resolve(target)
            if found:
                s = catalogue[found]
                return s.name, s.cls, s.alarm, f"name map -> catalogue {catalogue.source}"
            hint = target
            break
    for n in (hint, *aliases):
        found = catalogue.resolve(n)
        if found:
            s = catalogue[found]
            how = "catalogue" if n == hint else f"catalogue (alias {n!r})"
            return s.name, s.cls, s.alarm, how
    if meta.get("export_class") and meta["export_class"] != UNKNOWN_CLASS:
        return hint, meta["export_class"], str(meta.get("export_alarm", "")).lower() == "true", "file (fol export)"
    rule = class_from_name(hint, *aliases)
    if rule:
        return hint, rule[0], rule[1], rule[2]
    cat = class_from_category(meta.get("category"))
    if cat:
        return hint, cat[0], cat[1], cat[2]
    return hint, UNKNOWN_CLASS, False, "none (not in the catalogue, no rule, no source class)"


def _resample(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    ok = np.isfinite(y)
    return np.interp(grid, x[ok], y[ok]).astype(np.float32)


def _process_by_axis(spectra: list, recipe, grid: np.ndarray) -> np.ndarray:
    from fol.spectrum import SpectrumBatch

    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(spectra):
        groups[(s.unit, s.wavenumber.tobytes())].append(i)
    out = np.empty((len(spectra), grid.size), dtype=np.float32)
    for rows in groups.values():
        out[rows] = recipe.apply(SpectrumBatch.stack([spectra[i] for i in rows]), grid).data
    return out


def _dedupe(items: list[Item], processed: np.ndarray, report: ImportReport) -> np.ndarray:
    """Rows to keep: repeated measurements (same name, r >= DUPLICATE_R) dropped; near-duplicates reported."""
    x = processed.astype(np.float32)
    keep = np.ones(len(items), dtype=bool)
    for start in range(0, len(items), 1024):
        r = x[start:start + 1024] @ x.T
        for a in range(r.shape[0]):
            i = start + a
            if not keep[i]:
                continue
            for j in np.flatnonzero(r[a, i + 1:] >= NEAR_DUPLICATE_R) + i + 1:
                if not keep[j]:
                    continue
                same = name_key(items[i].name) == name_key(items[j].name)
                if same and r[a, j] >= DUPLICATE_R:
                    keep[j] = False
                    report.duplicates.append(f"duplicate: {items[j].file} ({items[j].name}) repeats "
                                             f"{items[i].file} (r = {r[a, j]:.4f}); dropped")
                elif not same:
                    report.duplicates.append(f"near-duplicate: {items[i].name!r} ({items[i].file}) and "
                                             f"{items[j].name!r} ({items[j].file}), r = {r[a, j]:.4f}")
    return keep


def _score_unknown(section, items: list[Item]) -> None:
    """The class model's probability for every ``unknown`` entry; suspected_class at >= SUSPECT_THRESHOLD."""
    from fol.identification.classalarm import ALARM_CLASS, train

    unknown = [i for i, c in enumerate(section.classes) if c == UNKNOWN_CLASS]
    if not unknown:
        return
    model = train(section)
    for i in unknown:
        if model is None:
            items[i].meta["class_model"] = "not available (fewer than 2 fentanyl analogues in the library)"
            continue
        p = float(model.probability(section.processed[i:i + 1])[0])
        items[i].meta["class_model_probability"] = round(p, 4)
        if p >= SUSPECT_THRESHOLD:
            items[i].meta["suspected_class"] = ALARM_CLASS
            items[i].meta["suspected_probability"] = round(p, 4)


def import_library(files, out: str | Path, *, technique: str | None = None, name_map: str | Path | None = None,
                   catalogue: Catalogue | None = None, catalogues=(), name: str | None = None,
                   skip_bad: bool = False, dedupe: bool = False,
                   progress: Callable[[int, int], None] | None = None, jobs: int | None = None) -> ImportReport:
    """Build a library from measured spectra files, folders and zips (any format of ``fol.io.formats``)."""
    from fol.io.formats import read_collection
    from fol.io.library import make_section, write_library
    from fol.preprocess.recipe import default_grid, default_recipe

    files = [str(f) for f in files]
    if catalogue is None:
        catalogue = load_catalogue(extra=tuple(str(c) for c in catalogues))
    report = ImportReport(str(out), files=len(files))
    report.warnings += catalogue_conflicts(extra=tuple(str(c) for c in catalogues))
    mapping = read_name_map(name_map) if name_map else NameMap()
    per_tech: dict[str, list[Item]] = defaultdict(list)
    done = 0
    total = len(files)
    for path in files:
        def sub_progress(k, n, _done=done):  # one container (zip, folder): its members are the progress
            if progress and total == 1:
                progress(k, n)
        try:
            spectra, refused = read_collection(path, technique, progress=sub_progress, jobs=jobs)
        except FolError as e:
            report.refused.append(str(e))
            spectra, refused = [], []
        report.refused += refused
        for hint, spec in spectra:
            meta = dict(spec.metadata)
            entry_name, cls, alarm, how = decide_class(hint, meta, catalogue, mapping)
            kept = {k: meta[k] for k in ENTRY_META if meta.get(k) not in (None, "", [])}
            kept["file"] = Path(str(meta.get("file") or path)).name
            kept["class_source"] = how
            if entry_name != hint:
                kept["name_in_file"] = hint
            per_tech[spec.technique].append(Item(entry_name, cls, alarm, how, spec.technique, kept["file"], spec, kept))
        done += 1
        if progress and total > 1:
            progress(done, total)
    if report.refused and not skip_bad:
        return report  # nothing written: the caller reports the refusals
    if not per_tech:
        raise LibraryError(f"{out}: no spectra could be imported" +
                           (f" ({len(report.refused)} refused; first: {report.refused[0]})" if report.refused else ""))
    sections = {}
    for tech, items in per_tech.items():
        grid, recipe = default_grid(tech), default_recipe(tech)
        processed = _process_by_axis([it.spectrum for it in items], recipe, grid)
        if dedupe:
            keep = _dedupe(items, processed, report)
            items = [it for it, k in zip(items, keep) if k]
            processed = processed[keep]
        raw = np.vstack([_resample(it.spectrum.wavenumber, it.spectrum.intensity, grid) for it in items])
        src = [str(it.spectrum.metadata.get("source") or it.file) for it in items]
        section = make_section(tech, grid, raw, [it.name for it in items], [it.cls for it in items],
                               [it.alarm for it in items], [f"imported:{it.file}" for it in items], src, recipe,
                               processed=processed, meta=[it.meta for it in items])
        _score_unknown(section, items)
        section.meta = [it.meta for it in items]
        sections[tech] = section
        report.counts[tech] = len(items)
        by_name: dict[str, list[str]] = defaultdict(list)
        for it in items:
            by_name[it.name].append(it.file)
            report.decisions.append({"technique": tech, "name": it.name, "file": it.file, "class": it.cls,
                                     "alarm": it.alarm, "class_source": it.class_source,
                                     "suspected_class": it.meta.get("suspected_class"),
                                     "class_model_probability": it.meta.get("class_model_probability")})
        for n, fs in by_name.items():
            ids = {str(it.meta.get("enfsi_id")) for it in items if it.name == n}
            if len(fs) > 1 and not (len(ids) == len(fs) and "None" not in ids):
                report.warnings.append(f"{tech}: {len(fs)} entries are named {n!r} ({', '.join(sorted(set(fs))[:5])}"
                                       f"{', ...' if len(set(fs)) > 5 else ''}): several measurements of one "
                                       "substance, or files whose titles do not name the substance?")
    report.sha256 = write_library(out, sections, name=name or Path(out).stem,
                                  description=f"imported from {len(files)} path(s): measured spectra")
    report.written = True
    return report
