"""Reference libraries: one HDF5 file, one section per technique.

Layout (``format = "fol-library"``, ``format_version = 1``)::

    /                     attrs: format, format_version, name, created, fol_version, sha256, description
    /<technique>/         one group per technique ("raman", "ftir"); attrs: recipe (JSON),
                          calibration (JSON, optional: ``fol library calibrate``, see fol.qa.evaluation)
        grid              float64 [n]      the library grid (cm-1, increasing)
        processed         float32 [N, n]   recipe(raw spectrum): rows mean-centred, unit L2 norm (BLAS-ready)
        raw               float32 [N, n]   the reference spectra resampled onto the grid, before any other processing
        names             str [N]          catalogue names (or the imported name, class "unknown")
        classes           str [N]
        alarm             uint8 [N]        1 where the substance's class raises an alarm
        provenance        str [N]          "measured" | "computed" | "imported:<file>"
        source            str [N]          free text: where the spectrum came from, method, instrument
        meta              str [N]          optional: one JSON object per entry (imported libraries: class_source,
                                           suspected_class, suspected_probability, enfsi_id, validated, form, file, ...)
    /sticks/<name>/       optional (computed libraries): frequencies_cm1, ir_intensity_km_mol,
                          raman_activity_A4_amu; attrs smiles, method, warnings (JSON)

``sha256`` is a hash of the content (every dataset's bytes, the recipe and the
calibration if any, in a fixed order), stored at build time and checked on load: a library whose content does not
match its hash is refused unless the caller explicitly allows unverified libraries.
Loading never recomputes spectra: the processed matrix is read as stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np

from fol import __version__
from fol.errors import LibraryError
from fol.paths import default_library

FORMAT = "fol-library"
FORMAT_VERSION = 1
_STR_FIELDS = ("names", "classes", "provenance", "source")
_STICK_FIELDS = ("frequencies_cm1", "ir_intensity_km_mol", "raman_activity_A4_amu")


@dataclass
class LibrarySection:
    """The entries of one technique. ``processed`` rows are ready for a dot-product search."""

    technique: str
    grid: np.ndarray
    processed: np.ndarray
    raw: np.ndarray
    names: list[str]
    classes: list[str]
    alarm: np.ndarray
    provenance: list[str]
    source: list[str]
    recipe_json: str
    #: per-library confidence calibration and decision threshold (JSON, ``fol library calibrate``); "" if none
    calibration_json: str = ""
    #: per-entry metadata (one dict per entry; empty list when the library has none)
    meta: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def recipe(self):
        from fol.preprocess.recipe import Recipe

        return Recipe.from_json(self.recipe_json)

    def index_of(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not in the {self.technique} library") from None

    def subset(self, keep: np.ndarray) -> "LibrarySection":
        """A section with only the rows where ``keep`` (bool mask or index array) selects."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return LibrarySection(self.technique, self.grid, self.processed[idx], self.raw[idx], pick(self.names),
                              pick(self.classes), self.alarm[idx], pick(self.provenance), pick(self.source),
                              self.recipe_json, self.calibration_json, pick(self.meta) if self.meta else [])

    def entry_meta(self, j: int) -> dict:
        """Entry ``j``'s metadata (empty for libraries without any)."""
        return self.meta[j] if self.meta else {}

    def provenance_summary(self) -> dict[str, int]:
        """How many entries of each provenance kind (``imported:<file>`` counted as ``imported``)."""
        out: dict[str, int] = {}
        for p in self.provenance:
            kind = p.split(":", 1)[0]
            out[kind] = out.get(kind, 0) + 1
        return out


@dataclass
class Library:
    path: str
    name: str
    sha256: str
    created: str
    description: str
    sections: dict[str, LibrarySection]
    verified: bool = True
    sticks: dict[str, dict] = field(default_factory=dict)
    #: True when the arrays are memory-mapped from the library cache (``map_library``)
    mapped: bool = False

    @property
    def techniques(self) -> tuple[str, ...]:
        return tuple(self.sections)

    def section(self, technique: str) -> LibrarySection:
        try:
            return self.sections[technique]
        except KeyError:
            raise LibraryError(f"{self.path}: library {self.name!r} has no {technique} spectra "
                               f"(it has: {', '.join(self.techniques) or 'none'})") from None

    __getitem__ = section

    def info(self) -> dict:
        return {
            "name": self.name, "path": self.path, "sha256": self.sha256, "created": self.created,
            "description": self.description, "verified": self.verified,
            "sections": {t: {"entries": len(s), "grid": [float(s.grid[0]), float(s.grid[-1]), int(s.grid.size)],
                             "provenance": s.provenance_summary(), "recipe": json.loads(s.recipe_json)}
                         for t, s in self.sections.items()},
        }

    def ref(self) -> dict:
        """The ``library`` object of a result."""
        return {"name": self.name, "sha256": self.sha256}


# ---------------------------------------------------------------------------- hashing


def content_sha256(sections: dict[str, LibrarySection], sticks: dict[str, dict] | None = None) -> str:
    """SHA-256 over the library content in a fixed order (independent of HDF5 layout details)."""
    h = hashlib.sha256()

    def put(tag: str, data: bytes):
        h.update(tag.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    for t in sorted(sections):
        s = sections[t]
        put("technique", t.encode())
        put("recipe", s.recipe_json.encode())
        put("grid", np.ascontiguousarray(s.grid, dtype="<f8").tobytes())
        put("processed", np.ascontiguousarray(s.processed, dtype="<f4").tobytes())
        put("raw", np.ascontiguousarray(s.raw, dtype="<f4").tobytes())
        put("alarm", np.ascontiguousarray(s.alarm, dtype="u1").tobytes())
        for f in _STR_FIELDS:
            put(f, "\x1f".join(getattr(s, f)).encode())
        if s.calibration_json:  # hashed only when present: files without one keep their hash
            put("calibration", s.calibration_json.encode())
        if s.meta:  # likewise
            put("meta", "\x1f".join(json.dumps(m, sort_keys=True) for m in s.meta).encode())
    for name in sorted(sticks or {}):
        st = sticks[name]
        put("sticks", name.encode())
        for f in _STICK_FIELDS:
            put(f, np.ascontiguousarray(st[f], dtype="<f8").tobytes())
        put("meta", json.dumps({k: st[k] for k in sorted(st) if k not in _STICK_FIELDS}, sort_keys=True).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- writing


def make_section(technique: str, grid: np.ndarray, raw: np.ndarray, names: list[str], classes: list[str],
                 alarm: Iterable[bool], provenance: list[str], source: list[str], recipe,
                 processed: np.ndarray | None = None, meta: list[dict] | None = None) -> LibrarySection:
    """A section from raw reference spectra on ``grid``; ``processed`` defaults to ``recipe(raw)``.

    Pass ``processed`` when it was computed from the original spectra (e.g. imported files on
    their own axes) rather than from ``raw`` on the grid.
    """
    from fol.spectrum import SpectrumBatch

    grid = np.asarray(grid, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != grid.size:
        raise LibraryError(f"raw matrix shape {raw.shape} does not match grid length {grid.size}")
    n = raw.shape[0]
    if not (len(names) == len(classes) == len(provenance) == len(source) == n):
        raise LibraryError("names, classes, provenance and source must have one item per spectrum")
    if processed is None:
        processed = recipe.apply(SpectrumBatch(grid, raw, technique), grid).data
    processed = np.ascontiguousarray(processed, dtype=np.float32)
    if meta is not None and len(meta) != n:
        raise LibraryError("meta must have one item per spectrum")
    return LibrarySection(technique, grid, processed, raw, list(names), list(classes),
                          np.asarray(list(alarm), dtype=bool), list(provenance), list(source), recipe.to_json(),
                          meta=[dict(m) for m in meta] if meta else [])


def write_library(path: str | Path, sections: dict[str, LibrarySection], *, name: str, description: str = "",
                  sticks: dict[str, dict] | None = None) -> str:
    """Write a library file; returns its content SHA-256. Writes to a temp file, then renames."""
    import h5py

    path = Path(path)
    sha = content_sha256(sections, sticks)
    tmp = path.with_name(path.name + ".tmp")
    str_dt = h5py.string_dtype("utf-8")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, name=name, sha256=sha, description=description,
                       created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), fol_version=__version__)
        for t, s in sections.items():
            g = f.create_group(t)
            g.attrs["recipe"] = s.recipe_json
            if s.calibration_json:
                g.attrs["calibration"] = s.calibration_json
            g.create_dataset("grid", data=s.grid.astype("<f8"))
            g.create_dataset("processed", data=s.processed.astype("<f4"), compression="gzip", shuffle=True)
            g.create_dataset("raw", data=s.raw.astype("<f4"), compression="gzip", shuffle=True)
            g.create_dataset("alarm", data=s.alarm.astype("u1"))
            for fld in _STR_FIELDS:
                g.create_dataset(fld, data=np.array(getattr(s, fld), dtype=object), dtype=str_dt)
            if s.meta:
                g.create_dataset("meta", data=np.array([json.dumps(m, sort_keys=True) for m in s.meta], dtype=object),
                                 dtype=str_dt)
        if sticks:
            sg = f.create_group("sticks")
            for sub_name, st in sticks.items():
                g = sg.create_group(sub_name.replace("/", "_"))
                g.attrs["name"] = sub_name
                for fld in _STICK_FIELDS:
                    g.create_dataset(fld, data=np.asarray(st[fld], dtype="<f8"))
                for k, v in st.items():
                    if k not in _STICK_FIELDS:
                        g.attrs[k] = json.dumps(v)
    tmp.replace(path)
    return sha


# ---------------------------------------------------------------------------- reading


def _strings(ds) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message as one bounded line (h5py's can span lines and echo buffers)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _scalar_attr(obj, name: str):
    """A root attribute as a plain Python scalar (str, int, float), or None if absent or not scalar."""
    try:
        value = obj.attrs.get(name)
    except (OSError, RuntimeError, TypeError, ValueError):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None if not isinstance(value, bool) else value
    return value


def load_library(path: str | Path | None = None, *, allow_unverified: bool = False) -> Library:
    """Load a library file (default: the shipped library). Checks the content hash."""
    import h5py

    path = Path(path) if path else default_library()
    if not path.exists():
        raise LibraryError(f"{path}: library file not found")
    if path.is_dir():
        raise LibraryError(f"{path}: is a directory, not a library file")
    if not path.is_file():
        raise LibraryError(f"{path}: not a regular file")
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as e:
        raise LibraryError(f"{path}: not a readable HDF5 library ({_one_line(e)})") from None
    with f:
        fmt, version = _scalar_attr(f, "format"), _scalar_attr(f, "format_version")
        if fmt != FORMAT:
            raise LibraryError(f"{path}: not a fol library (format attribute is {_short(fmt)})")
        if type(version) is not int or version != FORMAT_VERSION:
            raise LibraryError(f"{path}: unsupported library format_version {_short(version)}")
        sections = {}
        try:
            for t in f:
                if t == "sticks":
                    continue
                g = f[t]
                sections[t] = LibrarySection(
                    t, g["grid"][()], np.ascontiguousarray(g["processed"][()]), g["raw"][()],
                    *(_strings(g[fld]) for fld in ("names", "classes")), g["alarm"][()].astype(bool),
                    *(_strings(g[fld]) for fld in ("provenance", "source")), str(g.attrs["recipe"]),
                    str(g.attrs.get("calibration", "")),
                    [json.loads(m) for m in _strings(g["meta"])] if "meta" in g else [])
            sticks = {}
            if "sticks" in f:
                for g in f["sticks"].values():
                    st = {fld: g[fld][()] for fld in _STICK_FIELDS}
                    st.update({k: json.loads(v) for k, v in g.attrs.items() if k != "name"})
                    sticks[str(g.attrs["name"])] = st
            for t, s in sections.items():
                try:
                    s.recipe
                except ValueError as e:
                    raise LibraryError(f"{path}: {t} section: bad recipe ({_one_line(e)})") from None
        except (KeyError, ValueError, TypeError, OSError, RuntimeError, AttributeError) as e:
            raise LibraryError(f"{path}: malformed library ({_one_line(e)})") from None
        stored = str(f.attrs.get("sha256", ""))
        lib = Library(str(path), str(f.attrs.get("name", path.stem)), stored, str(f.attrs.get("created", "")),
                      str(f.attrs.get("description", "")), sections, True, sticks)
    actual = content_sha256(sections, sticks)
    if actual != stored:
        if not allow_unverified:
            raise LibraryError(f"{path}: content does not match its SHA-256 (stored {stored[:12]}…, "
                               f"actual {actual[:12]}…): the file was modified or damaged. "
                               "Rebuild it, or pass --allow-unverified to use it anyway")
        lib.verified = False
        lib.sha256 = actual
    return lib


# ---------------------------------------------------------------------------- calibration


def with_calibrations(library, calibrations: dict[str, dict]):
    """A copy of ``library`` (in memory) whose sections carry ``calibrations`` (technique → record)."""
    sections = {t: replace(s, calibration_json=json.dumps(calibrations[t], sort_keys=True))
                if t in calibrations else s for t, s in library.sections.items()}
    return replace(library, sections=sections, sha256=content_sha256(sections, library.sticks))


def store_calibrations(path: str | Path, calibrations: dict[str, dict]) -> str:
    """Write calibration records (``fol library calibrate``) into a library file in place
    (attribute ``calibration`` per technique).

    The content SHA-256 covers the calibration: it is recomputed and stored. Returns it.
    """
    import h5py

    lib = load_library(path)  # refuses a file that does not match its hash before we re-sign it
    updated = with_calibrations(lib, calibrations)
    with h5py.File(path, "r+") as f:
        for t in calibrations:
            f[t].attrs["calibration"] = updated.sections[t].calibration_json
        f.attrs["sha256"] = updated.sha256
    return load_library(path).sha256  # read back: the stored hash matches the content


# ---------------------------------------------------------------------------- mapped cache
#
# A replay's worker processes each used to decompress the library file and hash its content
# again before their first task (seconds for a 10,000-entry library). Instead, the parent,
# which has loaded and checked the library once, writes its arrays uncompressed to
# ``cache_dir()/library-v<N>-<sha256>/`` (plain ``.npy`` files and one ``library.json``; no
# pickle), and the workers memory-map them: the pages are shared between processes through
# the OS page cache, nothing is decompressed, copied or hashed again. The directory is named
# after the content hash the parent verified, written under a temporary name and renamed
# into place, so a reader sees a complete cache or none. A cache that is absent, incomplete
# or does not describe the hash asked for is ignored: ``map_library`` then loads the file.

CACHE_VERSION = 1
_ARRAYS = ("grid", "processed", "raw", "alarm")
_ARRAY_DTYPES = {"grid": "<f8", "processed": "<f4", "raw": "<f4", "alarm": "|b1"}


def library_cache_path(sha256: str) -> Path:
    """The directory of the mapped cache of the library with content hash ``sha256``."""
    from fol.paths import cache_dir

    key = "".join(c for c in sha256 if c.isalnum())[:64]
    return cache_dir() / f"library-v{CACHE_VERSION}-{key}"


def write_library_cache(library: Library) -> Path | None:
    """Write the mapped cache of a verified, loaded library (once: an existing one is kept).

    Returns the cache directory, or None when nothing was written (an unverified library,
    whose hash the caller did not check, or a cache directory that cannot be written).
    """
    import os
    import shutil

    if not library.verified:
        return None
    final = library_cache_path(library.sha256)
    if (final / "library.json").exists():
        if _mapped(final, library.sha256) is not None:
            return final
        shutil.rmtree(final, ignore_errors=True)  # damaged (or of another cache version): made again
    tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        doc = {"format": "fol-library-cache", "cache_version": CACHE_VERSION, "sha256": library.sha256,
               "path": library.path, "name": library.name, "created": library.created,
               "description": library.description, "sections": {}, "sticks": {}}
        for i, (t, s) in enumerate(library.sections.items()):
            for a in _ARRAYS:
                np.save(tmp / f"s{i}.{a}.npy", np.ascontiguousarray(getattr(s, a), dtype=_ARRAY_DTYPES[a]),
                        allow_pickle=False)
            doc["sections"][t] = {"file": f"s{i}", "rows": len(s), "points": int(s.grid.size),
                                  "recipe": s.recipe_json, "calibration": s.calibration_json,
                                  **{f: list(getattr(s, f)) for f in _STR_FIELDS}, "meta": list(s.meta)}
        for i, (name, st) in enumerate(library.sticks.items()):
            for f in _STICK_FIELDS:
                np.save(tmp / f"k{i}.{f}.npy", np.asarray(st[f], dtype="<f8"), allow_pickle=False)
            doc["sticks"][name] = {"file": f"k{i}", "attrs": {k: v for k, v in st.items() if k not in _STICK_FIELDS}}
        (tmp / "library.json").write_text(json.dumps(doc), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process put it there first (or a stale partial one): keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not (final / "library.json").exists():
                return None
    except (OSError, TypeError, ValueError):
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    return final


def _mapped(directory: Path, sha256: str) -> Library | None:
    """The library of a cache directory, its arrays memory-mapped read-only; None unless it is
    a complete cache of the library ``sha256``."""
    try:
        doc = json.loads((directory / "library.json").read_text(encoding="utf-8"))
        if (doc.get("format") != "fol-library-cache" or doc.get("cache_version") != CACHE_VERSION
                or doc.get("sha256") != sha256):
            return None
        sections = {}
        for t, d in doc["sections"].items():
            arr = {a: np.load(directory / f"{d['file']}.{a}.npy", mmap_mode="r", allow_pickle=False) for a in _ARRAYS}
            rows, points = d["rows"], d["points"]
            shapes = {"grid": (points,), "processed": (rows, points), "raw": (rows, points), "alarm": (rows,)}
            if any(arr[a].shape != shapes[a] or arr[a].dtype != np.dtype(_ARRAY_DTYPES[a]) for a in _ARRAYS):
                return None
            if any(len(d[f]) != rows for f in _STR_FIELDS) or (d["meta"] and len(d["meta"]) != rows):
                return None
            sections[t] = LibrarySection(t, arr["grid"], arr["processed"], arr["raw"], d["names"], d["classes"],
                                         arr["alarm"], d["provenance"], d["source"], d["recipe"],
                                         d["calibration"], d["meta"])
        sticks = {}
        for name, d in doc["sticks"].items():
            st = {f: np.load(directory / f"{d['file']}.{f}.npy", allow_pickle=False) for f in _STICK_FIELDS}
            st.update(d["attrs"])
            sticks[name] = st
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Library(doc["path"], doc["name"], sha256, doc["created"], doc["description"], sections, True, sticks)


def map_library(path: str | Path, sha256: str, *, allow_unverified: bool = False) -> Library:
    """The library ``sha256`` (whose hash a parent process checked), memory-mapped from its cache
    (``write_library_cache``) without decompressing or hashing it again; when there is no
    usable cache, ``load_library(path)``, which must then have that hash (LibraryError if not).

    ``Library.path`` is ``path``; a mapped library has ``mapped`` set (``False`` when loaded).
    """
    lib = _mapped(library_cache_path(sha256), sha256) if sha256 else None
    if lib is not None:
        lib.path = str(path)
        lib.mapped = True
        return lib
    lib = load_library(path, allow_unverified=allow_unverified)
    if lib.sha256 != sha256:
        raise LibraryError(f"{path}: library content {lib.sha256[:12]} differs from the "
                           f"{sha256[:12]} this run started with (changed, or another file at that path)")
    return lib
