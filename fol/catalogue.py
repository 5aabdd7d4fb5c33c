"""The substance catalogue: names, classes, alarm flags and synonyms.

Library entries and result labels use catalogue names. ``Catalogue.resolve`` maps any
spelling a user or a foreign file may use (case, spaces, hyphens, underscores,
brackets, synonyms) to the catalogue name, or returns None.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fol.errors import FormatError
from fol.paths import default_catalogue

REQUIRED_COLUMNS = ("name", "class", "alarm", "formula", "smiles", "cas", "synonyms")
UNKNOWN_CLASS = "unknown"

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
    def load(cls, path: str | Path | None = None) -> "Catalogue":
        path = Path(path) if path else default_catalogue()
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
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
            syn = tuple(t.strip() for t in (r["synonyms"] or "").split(";") if t.strip())
            subs.append(Substance(name, (r["class"] or "").strip(), alarm == "true", (r["formula"] or "").strip(),
                                  (r["smiles"] or "").strip(), (r["cas"] or "").strip(), syn))
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


@lru_cache(maxsize=4)
def _cached(path: str) -> Catalogue:
    return Catalogue.load(path)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue at ``path`` (default: the shipped one), loaded once per process."""
    return _cached(str(Path(path) if path else default_catalogue()))
