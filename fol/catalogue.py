"""The substance catalogue: names, classes, alarm flags and synonyms.

Library entries and result labels use catalogue names. ``Catalogue.resolve`` maps any
spelling a user or a foreign file may use (case, spaces, hyphens, underscores,
brackets, synonyms) to the catalogue name, or returns None.

A **lab catalogue** extends the shipped one (``--catalogue``, ``$FOL_CATALOGUE``): a CSV
with at least ``name,class,alarm`` (``formula``, ``smiles``, ``cas``, ``synonyms`` optional).
``merge`` adds its substances and reports every conflict with the shipped catalogue: a
lab entry for a shipped substance replaces its class and adds its synonyms, but never
switches an alarm off (an alarm downgrade is refused and reported: a lab file must not be
able to silence fentanyl by a typo), and a synonym that names another substance is
dropped and reported.

**Name rules** (``class_from_name``) give a class to names the catalogue does not know
when the name carries the scaffold: ``...fentanyl``/``...fentanil`` (fentanyl analogue),
``...nitazene``/``...nitazepyne``/``...nitazepipne`` (nitazene). **Source hints**
(``class_from_category``) map a source's own category (ENFSI ``opioids``, ``stimulants``,
...) to a catalogue class. Both are recorded as the entry's ``class_source``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fol.errors import FormatError

REQUIRED_COLUMNS = ("name", "class", "alarm", "formula", "smiles", "cas", "synonyms")
#: the columns a lab catalogue (and a name map with classes) must have
LAB_COLUMNS = ("name", "class", "alarm")
UNKNOWN_CLASS = "unknown"

#: scaffold name rules: (regex on the spelling-insensitive key, class, alarm, rule text)
NAME_RULES = (
    (re.compile(r"fentan[iy]l"), "fentanyl-analogue", True, "name rule: ...fentanyl/...fentanil"),
    (re.compile(r"nitaze(ne|n|pyne|pipne)"), "nitazene", True, "name rule: ...nitazene/...nitazepyne/...nitazepipne"),
)
#: source categories (ENFSI DWG library ``category``) -> (class, alarm)
CATEGORY_CLASSES = {
    "opioids": ("opioid", True), "opioid": ("opioid", True),
    "stimulants": ("stimulant", True), "stimulant": ("stimulant", True),
    "dissociatives": ("dissociative", True), "dissociative": ("dissociative", True),
    "cutting-agents": ("cutting-agent", False), "cutting agents": ("cutting-agent", False),
    "cutting-agent": ("cutting-agent", False), "adulterants": ("adulterant", False),
    "precursors": ("fentanyl-precursor", True),
}


def class_from_name(*names: str) -> tuple[str, bool, str] | None:
    """(class, alarm, rule) when one of the names carries a scaffold (fentanyl, nitazene), else None."""
    for name in names:
        key = name_key(name)
        for rx, cls, alarm, rule in NAME_RULES:
            if rx.search(key):
                return cls, alarm, f"{rule} ({name!r})"
    return None


def class_from_category(category) -> tuple[str, bool, str] | None:
    """(class, alarm, how) from a source's category (ENFSI ``opioids`` -> opioid), else None."""
    if not category:
        return None
    hit = CATEGORY_CLASSES.get(str(category).strip().lower())
    return (hit[0], hit[1], f"source category {str(category)!r}") if hit else None

_KEY_JUNK = re.compile(r"[\s\-_,()\[\]'.:;/]+")


def name_key(name: str) -> str:
    """Spelling-insensitive key: ``"4-Fluoro Methoxyacetyl_Fentanyl"`` -> ``"4fluoromethoxyacetylfentanyl"``."""
    s = str(name).casefold().replace("α", "alpha").replace("β", "beta")
    return _KEY_JUNK.sub("", s)


@dataclass(frozen=True)
class Substance:
    name: str
    cls: str
    alarm: bool
    formula: str = ""
    smiles: str = ""
    cas: str = ""
    synonyms: tuple[str, ...] = ()


class Catalogue:
    """An ordered set of substances with name resolution."""

    def __init__(self, substances: list[Substance], source: str = "<memory>"):
        self.source = source
        self.substances = list(substances)
        self._by_name = {s.name: s for s in self.substances}
        self._keys: dict[str, str] = {}
        for s in self.substances:
            for alias in (s.name, *s.synonyms):
                k = name_key(alias)
                if not k:
                    continue
                other = self._keys.get(k)
                if other is not None and other != s.name:
                    raise FormatError(f"{source}: name {alias!r} of {s.name!r} collides with {other!r}")
                self._keys[k] = s.name

    @classmethod
    def load(cls, path: str | Path | None = None, required=REQUIRED_COLUMNS) -> Catalogue:
        path = Path(path) if path else shipped_catalogue()
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in required if c not in (reader.fieldnames or [])]
                if missing:
                    raise FormatError(f"{path}: catalogue lacks columns {', '.join(missing)}")
                rows = list(reader)
        except OSError as e:
            raise FormatError(f"{path}: cannot read catalogue ({e.strerror or e})") from None
        subs = []
        for i, r in enumerate(rows, start=2):
            name = (r["name"] or "").strip()
            if not name:
                raise FormatError(f"{path}, line {i}: empty substance name")
            alarm = (r["alarm"] or "").strip().lower()
            if alarm not in ("true", "false"):
                raise FormatError(f"{path}, line {i}: alarm must be true or false, got {r['alarm']!r}")
            syn = tuple(t.strip() for t in (r.get("synonyms") or "").split(";") if t.strip())
            cls_name = (r["class"] or "").strip()
            if not cls_name:
                raise FormatError(f"{path}, line {i}: empty class for {name!r}")
            subs.append(Substance(name, cls_name, alarm == "true", (r.get("formula") or "").strip(),
                                  (r.get("smiles") or "").strip(), (r.get("cas") or "").strip(), syn))
        return cls(subs, str(path))

    def __len__(self) -> int:
        return len(self.substances)

    def __iter__(self):
        return iter(self.substances)

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None

    def __getitem__(self, name: str) -> Substance:
        canonical = self.resolve(name)
        if canonical is None:
            raise KeyError(name)
        return self._by_name[canonical]

    def resolve(self, name: str) -> str | None:
        """The catalogue name for ``name`` (any case/spelling/synonym), or None."""
        if name in self._by_name:
            return name
        return self._keys.get(name_key(name))


def shipped_catalogue() -> Path:
    """The catalogue that ships with fol (``spectra_library/substances.csv``)."""
    from fol.paths import shipped_data_dir

    return shipped_data_dir() / "substances.csv"


def merge(base: Catalogue, lab: Catalogue) -> tuple[Catalogue, list[str]]:
    """``base`` extended by ``lab``; also the conflicts, one line each (see the module doc)."""
    conflicts: list[str] = []
    subs = {s.name: s for s in base}
    order = [s.name for s in base]
    keys = dict(base._keys)
    for s in lab:
        target = base.resolve(s.name) or next((base.resolve(a) for a in s.synonyms if base.resolve(a)), None)
        if target is not None:
            old = subs[target]
            alarm = old.alarm or s.alarm
            if old.alarm and not s.alarm:
                conflicts.append(f"{lab.source}: {s.name!r} would switch off the alarm of {target!r} "
                                 f"(class {old.cls}): kept alarm=true")
            if s.cls != old.cls:
                conflicts.append(f"{lab.source}: {s.name!r} gives class {s.cls!r} to {target!r} "
                                 f"(shipped: {old.cls!r}): lab class used")
            syn = list(old.synonyms)
            for a in (s.name, *s.synonyms):
                k = name_key(a)
                if keys.get(k, target) != target:
                    conflicts.append(f"{lab.source}: synonym {a!r} of {target!r} already names {keys[k]!r}: dropped")
                    continue
                if k not in keys and a != target:
                    syn.append(a)
                    keys[k] = target
            subs[target] = Substance(target, s.cls, alarm, old.formula or s.formula, old.smiles or s.smiles,
                                     old.cas or s.cas, tuple(syn))
            continue
        syn = []
        for a in s.synonyms:
            k = name_key(a)
            if k in keys and keys[k] != s.name:
                conflicts.append(f"{lab.source}: synonym {a!r} of {s.name!r} already names {keys[k]!r}: dropped")
                continue
            syn.append(a)
            keys[k] = s.name
        keys[name_key(s.name)] = s.name
        subs[s.name] = Substance(s.name, s.cls, s.alarm, s.formula, s.smiles, s.cas, tuple(syn))
        order.append(s.name)
    merged = Catalogue([subs[n] for n in order], f"{base.source} + {lab.source}")
    return merged, conflicts


@lru_cache(maxsize=8)
def _cached(path: str, extra: tuple[str, ...]) -> tuple[Catalogue, tuple[str, ...]]:
    cat = Catalogue.load(path)
    conflicts: list[str] = []
    for e in extra:
        cat, c = merge(cat, Catalogue.load(e, LAB_COLUMNS))
        conflicts += c
    return cat, tuple(conflicts)


def _extra(path, extra) -> tuple[str, ...]:
    import os

    out = [str(e) for e in (extra or ()) if e]
    env = os.environ.get("FOL_CATALOGUE")
    if path is None and env and Path(env).resolve() != shipped_catalogue().resolve():
        out.insert(0, env)
    return tuple(out)


def load_catalogue(path: str | Path | None = None, extra=None) -> Catalogue:
    """The catalogue at ``path`` (default: the shipped one) extended by lab catalogues, once per process.

    Lab catalogues: ``extra`` (paths) and, when ``path`` is not given, ``$FOL_CATALOGUE``.
    """
    return _cached(str(Path(path) if path else shipped_catalogue()), _extra(path, extra))[0]


def catalogue_conflicts(path: str | Path | None = None, extra=None) -> list[str]:
    """The conflicts ``load_catalogue`` found merging the lab catalogues (one line each)."""
    return list(_cached(str(Path(path) if path else shipped_catalogue()), _extra(path, extra))[1])
