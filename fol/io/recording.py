"""Recordings: HDF5 files of acquired spectra, per /work/shared/docs/recording-format.md.

A recording holds entries (``NX_class = NXentry`` groups at the root). Each entry is
either one spectrum (``data/intensity`` of shape ``[n]``) or a stack of ``m`` spectra on
one axis (shape ``[m, n]``), with instrument and sample attributes, optional ground
truth (``sample/expected``) and optional results (``results/result``).

Reading (``Recording``) validates the structure of every entry when the file is opened,
so that a file that does not follow the format is refused at once with a message
naming the file, the entry and the problem. Intensities, ground truth and results are
read lazily, a slice of rows at a time, so a stack of millions of spectra is streamed
in bounded memory (``iter_chunks``).

Writing (``RecordingWriter``, in :mod:`fol.io.recording_writer`) produces files that
NeXus viewers (h5web, silx, nexpy) display without knowing ``fol`` and that the reader
round-trips exactly. Appending is crash-safe: every entry goes through a journal beside
the file and the file is only ever replaced whole (docs/formats.md, "Crash safety").

The reader refuses, in one line naming the file: directories and special files (a
FIFO would block), links out of the file (external links, external raw storage,
virtual datasets), soft-link loops, declared sizes far beyond what the file can hold,
non-UTF-8 strings, JSON nested too deeply or too long. A *damaged* file (an entry whose
HDF5 structures cannot be read) is not refused as a whole: the damaged entries are
listed in ``Recording.damaged``, reported in one line (``Recording.damage_report``,
and a ``logging`` warning), and every intact entry is read.

Project additions to the format (allowed by its "writers may add" rule; readers
ignore them): root ``creator``; entry ``default = "data"``; on stacks the NeXus
``axes = [".", "wavenumber"]`` form; data ``wavenumber_indices``; ``"null"`` as the
``expected``/``result`` string of a stack row that has none.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from fol.errors import FolError, FormatError
from fol.paths import special_kind
from fol.spectrum import MIN_POINTS, TECHNIQUES, Spectrum, SpectrumBatch

FORMAT = "fol-recording"
FORMAT_VERSION = 1
UNITS = ("counts", "absorbance", "transmittance")
AXIS_UNITS = ("1/cm", "cm-1", "cm^-1")

#: instrument attributes of the format; also the Spectrum.metadata keys that carry them
INSTRUMENT_KEYS = ("maker", "model", "serial", "firmware", "excitation_wavelength_nm", "resolution_cm1",
                   "integration_time_ms", "averages", "laser_power_mw", "detector_temperature_c")
#: sample attributes of the format; also the Spectrum.metadata keys that carry them
SAMPLE_KEYS = ("sample_id", "case_id", "operator", "description")

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_ABSENT_JSON = ("", "null")
#: wavenumbers beyond this (cm-1), steps below this, are not a spectrometer's axis
MAX_WAVENUMBER = 1e6
MIN_STEP = 1e-6
#: intensities beyond this magnitude are not a measurement (the row is marked invalid)
MAX_INTENSITY = 1e30
#: the longest axis accepted (points); longer is a corrupt or hostile file
MAX_POINTS = 1 << 20
#: the longest JSON text accepted per row (characters) and the deepest nesting
MAX_JSON_CHARS = 1 << 20
MAX_JSON_DEPTH = 64
#: an attribute with more elements than this is not metadata
MAX_ATTR_ELEMENTS = 4096
#: a dataset may declare at most this many times the file's size (compression) plus 1 MiB
MAX_EXPANSION = 1000

log = logging.getLogger(__name__)


def _short(e: BaseException) -> str:
    """An h5py/OS error as one bounded line (h5py messages can span lines and echo buffers)."""
    text = (getattr(e, "strerror", None) if isinstance(e, OSError) and not str(e) else None) or str(e) or type(e).__name__
    line = " ".join(text.split())
    return line[:200] + ("..." if len(line) > 200 else "")


def _json_depth(obj, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if ``obj`` nests no deeper than ``limit`` (iterative: no recursion to overflow)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return True


def _loads(text: str, what: str):
    """``json.loads`` bounded in size and depth; ValueError naming ``what``."""
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{what}: JSON text of {len(text)} characters (at most {MAX_JSON_CHARS})")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        # cheap pre-check; only deep texts pay for the exact one
        depth = cur = 0
        in_str = esc = False
        for ch in text:
            if in_str:
                esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
                continue
            if ch == '"':
                in_str = True
            elif ch in "[{":
                cur += 1
                depth = max(depth, cur)
            elif ch in "]}":
                cur -= 1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{what}: JSON nested {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply") from None


class _Damaged(Exception):
    """An object whose HDF5 structures cannot be read (bytes overwritten, a torn write)."""


def _member(group: h5py.Group, path: str):
    """``group[path]`` following only links inside the file; None if absent. ValueError for the rest."""
    obj = group
    for part in path.split("/"):
        try:
            link = obj.get(part, getlink=True)
        except (KeyError, RuntimeError, OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable link ({_short(e)})") from None
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(f"{path} is an external link to {link.filename!r}: refused (a recording must be "
                             "self-contained)")
        try:
            obj = obj[part]
        except (KeyError, RuntimeError, OSError, ValueError) as e:
            if isinstance(link, h5py.SoftLink):
                raise ValueError(f"{path}: soft link to {link.path!r} that cannot be resolved (a loop, or a dangling "
                                 f"target) ({_short(e)})") from None
            raise _Damaged(f"{path}: {_short(e)}") from None
    return obj


def _check_dataset(ds: h5py.Dataset, what: str, file_size: int) -> None:
    """Refuse data that lives outside the file, has no dataspace, or declares far more than the file holds."""
    try:
        external = ds.external
    except (RuntimeError, OSError) as e:
        raise ValueError(f"{what}: unreadable storage layout ({_short(e)})") from None
    if external:
        raise ValueError(f"{what} stores its data in external file(s) {external[0][0]!r}: refused (a recording must "
                         "be self-contained)")
    if ds.is_virtual:
        raise ValueError(f"{what} is a virtual dataset (data from other files): refused")
    if ds.shape is None:
        raise ValueError(f"{what} has a null dataspace (no data)")
    nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
    if nbytes > MAX_EXPANSION * file_size + (1 << 20):
        raise ValueError(f"{what} declares shape {ds.shape} ({nbytes / 2**30:.1f} GiB), far more than the file "
                         f"of {file_size} bytes can hold")


# ----------------------------------------------------------------------------- helpers


def _decode(value: Any) -> Any:
    """An HDF5 attribute value as plain Python: bytes -> str, numpy scalars -> int/float/str/bool."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace").rstrip("\x00")
    return value


def _attrs(obj: h5py.HLObject) -> dict:
    """All attributes of a group/dataset except ``NX_class``, decoded; oversized ones refused."""
    out = {}
    for k in obj.attrs:
        if k == "NX_class":
            continue
        shape = obj.attrs.get_id(k).shape
        if shape and int(np.prod(shape)) > MAX_ATTR_ELEMENTS:
            raise ValueError(f"attribute {k!r} of {obj.name} holds {int(np.prod(shape))} values: not metadata")
        try:
            out[k] = _decode(obj.attrs[k])
        except (OSError, TypeError) as e:  # e.g. a null dataspace
            raise ValueError(f"attribute {k!r} of {obj.name} cannot be read ({_short(e)})") from None
    return out


def _nx_class(obj: h5py.HLObject) -> str:
    return str(_decode(obj.attrs.get("NX_class", "")))


def _parse_time(text: str) -> datetime:
    """ISO 8601 time as an aware UTC datetime (naive times are taken as UTC; ``Z`` accepted)."""
    s = text.strip()
    if s[-1:] in ("Z", "z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def utc_stamp(dt: datetime | None = None) -> str:
    """``2026-03-01T12:00:00.123456Z``: UTC ISO 8601 with microseconds (sortable as text too)."""
    dt = dt or datetime.now(timezone.utc)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def axis_problem(x: np.ndarray) -> str | None:
    """Why ``x`` is not a usable wavenumber axis (1-D, finite, strictly monotonic), or None."""
    if x.ndim != 1:
        return f"wavenumber must be 1-D, got shape {x.shape}"
    if x.size < MIN_POINTS:
        return f"wavenumber has {x.size} points; at least {MIN_POINTS} are needed"
    if not np.all(np.isfinite(x)):
        return "wavenumber contains NaN or infinite values"
    d = np.diff(x)
    if not (np.all(d > 0) or np.all(d < 0)):
        kind = "repeated" if np.any(d == 0) else "non-monotonic"
        return f"wavenumber axis is {kind} (must be strictly increasing or strictly decreasing)"
    if np.abs(x).max() > MAX_WAVENUMBER:
        return f"wavenumber axis reaches {np.abs(x).max():.3g} cm-1 (beyond +-{MAX_WAVENUMBER:g}: not wavenumbers)"
    if np.abs(d).min() < MIN_STEP:
        return f"wavenumber steps as small as {np.abs(d).min():.3g} cm-1 (below {MIN_STEP:g}: not a spectrum axis)"
    return None


def _read_strings(ds: h5py.Dataset, sel=()) -> np.ndarray | str:
    """Strings of a string dataset (variable or fixed length, bytes or UTF-8), decoded."""
    try:
        return ds.asstr("utf-8")[sel]
    except UnicodeDecodeError as e:
        raise ValueError(f"{ds.name} is not UTF-8 text (byte {e.start})") from None


def _json_rows(texts: Iterable[str], what: str) -> list[dict | None]:
    """Parse per-row JSON objects; empty/``null`` rows are None. Raises ValueError naming the row."""
    rows: list[dict | None] = []
    for i, text in enumerate(texts):
        text = text.strip()
        if text in _ABSENT_JSON:
            rows.append(None)
            continue
        try:
            obj = _loads(text, f"{what} row {i}")
        except json.JSONDecodeError as e:
            raise ValueError(f"{what} row {i}: malformed JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{what} row {i}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
    return rows


def canonical_expected(expected: dict, resolve) -> dict:
    """Ground truth with names mapped to catalogue names (unknown names kept as given).

    Values must be numbers (mass fractions) or null. Two spellings of one substance
    in the same object are refused rather than silently merged.
    """
    out: dict[str, float | None] = {}
    for name, fraction in expected.items():
        if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))):
            raise ValueError(f"fraction of {name!r} must be a number or null, got {fraction!r}")
        canonical = resolve(name) or name
        if canonical in out:
            raise ValueError(f"{name!r} and another name both mean {canonical!r}")
        out[canonical] = None if fraction is None else float(fraction)
    return out


def _device_errors(text: str) -> list:
    """The ``device_errors`` JSON: a list of ``[code, message]`` pairs."""
    try:
        errors = _loads(text, "device_errors") if text.strip() else []
    except json.JSONDecodeError as e:
        raise ValueError(f"device_errors: malformed JSON ({e.msg})") from None
    if not isinstance(errors, list) or not all(isinstance(p, list) and len(p) == 2 for p in errors):
        raise ValueError("device_errors must be a JSON list of [code, message] pairs")
    return errors


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class EntryInfo:
    """What an entry holds, read from its structure (no intensities loaded)."""

    name: str
    start_time: str
    n_rows: int
    n_points: int
    stacked: bool
    technique: str
    unit: str  # as stored: counts | absorbance | transmittance
    instrument: dict
    sample: dict


@dataclass(frozen=True)
class EntryChunk:
    """Rows ``[start, start + len(batch))`` of one entry, with their ground truth and results."""

    entry: EntryInfo
    start: int
    batch: SpectrumBatch
    expected: list[dict | None] | None
    results: list[dict | None] | None
    device_errors: list


def _string_rows_shape(ds: h5py.Dataset, info_rows: int, stacked: bool, what: str) -> str | None:
    """Why a per-row string dataset (expected, result) does not fit its entry, or None."""
    if h5py.check_string_dtype(ds.dtype) is None:
        return f"{what} must be a string dataset, got {ds.dtype}"
    if stacked:
        if ds.ndim != 1 or ds.shape[0] != info_rows:
            return f"{what} holds {ds.shape} strings but the stack has {info_rows} rows"
    elif ds.shape not in ((), (1,)):
        return f"{what} of a single spectrum must hold one string, got shape {ds.shape}"
    return None


def _entry_info(name: str, group: h5py.Group, file_size: int = 1 << 62) -> EntryInfo:
    """Validate an entry's structure and describe it; raises ValueError with the problem."""
    data = _member(group, "data")
    if not isinstance(data, h5py.Group):
        raise ValueError("no data group")
    intensity, wavenumber = _member(group, "data/intensity"), _member(group, "data/wavenumber")
    if not isinstance(intensity, h5py.Dataset):
        raise ValueError("no data/intensity dataset")
    if not isinstance(wavenumber, h5py.Dataset):
        raise ValueError("no data/wavenumber dataset")
    for ds, what in ((wavenumber, "data/wavenumber"), (intensity, "data/intensity")):
        _check_dataset(ds, what, file_size)
    if wavenumber.dtype.kind not in "fiu" or intensity.dtype.kind not in "fiu":
        raise ValueError(f"wavenumber and intensity must be numeric, got {wavenumber.dtype} and {intensity.dtype}")
    if wavenumber.ndim == 1 and wavenumber.shape[0] > MAX_POINTS:
        raise ValueError(f"wavenumber has {wavenumber.shape[0]} points (at most {MAX_POINTS})")
    if wavenumber.size > MAX_POINTS:
        raise ValueError(f"wavenumber has shape {wavenumber.shape}, not a spectrum axis")
    x = np.asarray(wavenumber[()], dtype=np.float64)
    problem = axis_problem(x)
    if problem:
        raise ValueError(problem)
    axis_units = str(_decode(wavenumber.attrs.get("units", "1/cm"))).strip().lower()
    if axis_units not in AXIS_UNITS:
        raise ValueError(f"wavenumber units {axis_units!r} (expected '1/cm')")
    if intensity.ndim not in (1, 2) or intensity.shape[-1] != x.size:
        raise ValueError(f"intensity shape {intensity.shape} does not match wavenumber length {x.size}")
    stacked = intensity.ndim == 2
    n_rows = intensity.shape[0] if stacked else 1
    if "units" not in intensity.attrs:
        raise ValueError("data/intensity has no units attribute")
    unit = str(_decode(intensity.attrs["units"])).strip().lower()
    if unit not in UNITS:
        raise ValueError(f"unknown intensity unit {unit!r} (expected one of {', '.join(UNITS)})")

    for ds, what in ((_member(group, "data/device_errors"), "data/device_errors"),):
        if isinstance(ds, h5py.Dataset):
            _check_dataset(ds, what, file_size)
    instrument_group = _member(group, "instrument")
    instrument = _attrs(instrument_group) if isinstance(instrument_group, h5py.Group) else {}
    technique = str(instrument.get("technique", "")).strip().lower()
    if not technique:
        raise ValueError("no instrument/technique attribute")
    if technique not in TECHNIQUES:
        raise ValueError(f"unknown technique {technique!r} (expected one of {', '.join(TECHNIQUES)})")
    instrument["technique"] = technique
    sample_group = _member(group, "sample")
    sample = _attrs(sample_group) if isinstance(sample_group, h5py.Group) else {}

    for path, what in (("sample/expected", "sample/expected"), ("results/result", "results/result")):
        ds = _member(group, path)
        if ds is not None:
            if isinstance(ds, h5py.Dataset):
                _check_dataset(ds, what, file_size)
            problem = (_string_rows_shape(ds, n_rows, stacked, what) if isinstance(ds, h5py.Dataset)
                       else f"{what} is not a dataset")
            if problem:
                raise ValueError(problem)

    start_time = str(_decode(group.attrs.get("start_time", ""))).strip()
    if start_time:
        try:
            _parse_time(start_time)
        except ValueError:
            raise ValueError(f"start_time {start_time!r} is not an ISO 8601 time") from None
    return EntryInfo(name, start_time, n_rows, int(x.size), stacked, technique, unit, instrument, sample)


def _entry_order(info: EntryInfo) -> tuple:
    return (_parse_time(info.start_time) if info.start_time else _EPOCH, info.name)


class Recording:
    """A recording opened read-only. Use as a context manager or call ``close()``.

    ``entries`` lists the entries in ``start_time`` order (ties by name); groups that
    are not ``NXentry`` are ignored. Opening validates every entry's structure and
    raises ``FormatError`` naming the file, the entry and the problem.
    ``catalogue`` (optional) resolves ground-truth names; default: the shipped one.
    With ``skip_invalid=True`` (QA replay) a structurally invalid entry is left out of
    ``entries`` instead of refusing the file, and listed in ``skipped`` as
    ``(entry name, message)``; a file that is not a readable recording still raises.
    """

    def __init__(self, path: str | Path, *, catalogue=None, skip_invalid: bool = False):
        self.path = str(path)
        self._catalogue = catalogue
        self.skipped: list[tuple[str, str]] = []
        #: entries whose HDF5 structures cannot be read: (name or "#index", message)
        self.damaged: list[tuple[str, str]] = []
        if os.path.isdir(self.path + ".journal") and not os.path.isdir(self.path):
            from fol.io.recording_writer import recover

            try:
                recover(self.path)  # entries a killed writer left in the journal (maybe the file's first ones)
            except (OSError, RuntimeError, KeyError, ValueError, FolError) as e:
                log.warning("%s: its journal could not be recovered: %s", self.path, _short(e))
        size = _check_regular_file(self.path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise FormatError(f"{self.path}: no such file") from None
        except (OSError, RuntimeError) as e:
            raise FormatError(f"{self.path}: not a readable HDF5 file ({_short(e)})") from None
        try:
            _check_root(self._file, self.path)
            infos = []
            for name in self._names():
                try:
                    group = _member(self._file, name)
                    if not (isinstance(group, h5py.Group) and _nx_class(group) == "NXentry"):
                        continue
                    infos.append(_entry_info(name, group, size))
                except ValueError as e:
                    message = f"{self.path}, entry {name!r}: {e}"
                    if not skip_invalid:
                        raise FormatError(message) from None
                    self.skipped.append((name, message))
                except (_Damaged, RuntimeError, OSError, KeyError, TypeError) as e:
                    self.damaged.append((name, _short(e)))
        except BaseException:
            self._file.close()
            raise
        self.skipped.sort()
        self.entries: list[EntryInfo] = sorted(infos, key=_entry_order)
        self._by_name = {e.name: e for e in self.entries}
        if self.damaged:
            log.warning("%s", self.damage_report)

    def _names(self) -> list[str]:
        """Names of the root's members; on a damaged root, every one that can still be read by index."""
        try:
            return list(self._file.keys())
        except (RuntimeError, OSError, KeyError) as e:
            first = _short(e)
        names: list[str] = []
        gid = self._file.id
        try:
            count = gid.get_num_objs()
        except (RuntimeError, OSError, KeyError) as e:
            raise FormatError(f"{self.path}: damaged beyond reading (the root group cannot be listed: "
                              f"{_short(e)})") from None
        for i in range(min(count, 10_000_000)):
            try:
                names.append(gid.get_objname_by_idx(i).decode("utf-8", "replace"))
            except (RuntimeError, OSError, KeyError, ValueError):
                self.damaged.append((f"#{i}", first))
        if not names:
            raise FormatError(f"{self.path}: damaged beyond reading ({first})")
        return names

    @property
    def damage_report(self) -> str:
        """One line saying which entries are damaged ('' for an intact file)."""
        if not self.damaged:
            return ""
        names = ", ".join(n for n, _ in self.damaged[:5]) + (" ..." if len(self.damaged) > 5 else "")
        return (f"{self.path}: damaged: {len(self.damaged)} entr{'y' if len(self.damaged) == 1 else 'ies'} cannot be "
                f"read ({names}: {self.damaged[0][1]}); the {len(self.entries)} intact entries are read")

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, entry: str | EntryInfo) -> EntryInfo:
        """The EntryInfo for a name (FormatError if the file has no such entry)."""
        name = entry.name if isinstance(entry, EntryInfo) else str(entry)
        try:
            return self._by_name[name]
        except KeyError:
            names = ", ".join(e.name for e in self.entries[:10]) + (" ..." if len(self.entries) > 10 else "")
            raise FormatError(f"{self.path}: no entry {name!r} (entries: {names or 'none'})") from None

    def _resolve(self, name: str) -> str | None:
        if self._catalogue is None:
            from fol.catalogue import load_catalogue

            self._catalogue = load_catalogue()
        return self._catalogue.resolve(name)

    def read(self, entry: str | EntryInfo, start: int = 0, stop: int | None = None) -> EntryChunk:
        """Rows ``[start, stop)`` of an entry (all rows by default) as an EntryChunk."""
        info = self.entry(entry)
        stop = info.n_rows if stop is None else min(int(stop), info.n_rows)
        start = int(start)
        if not 0 <= start < stop:
            raise FormatError(f"{self.path}, entry {info.name!r}: rows [{start}, {stop}) are outside 0..{info.n_rows}")
        try:
            return self._read(info, start, stop)
        except (ValueError, FolError) as e:
            raise FormatError(f"{self.path}, entry {info.name!r}: {e}") from None
        except (_Damaged, OSError, RuntimeError, KeyError, TypeError) as e:
            raise FormatError(f"{self.path}, entry {info.name!r}: damaged, cannot be read ({_short(e)})") from None

    def _read(self, info: EntryInfo, start: int, stop: int) -> EntryChunk:
        group = _member(self._file, info.name)
        data = _member(group, "data")
        sel = np.s_[start:stop] if info.stacked else ()
        rows = data["intensity"][sel]
        errors_ds = _member(group, "data/device_errors")
        device_errors = _device_errors(_one_string(errors_ds)) if errors_ds is not None else []
        metadata = {**info.instrument, **info.sample, "entry": info.name, "source": self.path}
        if info.start_time:
            metadata["acquired_utc"] = info.start_time
        if device_errors:
            metadata["device_errors"] = device_errors
        batch = SpectrumBatch(data["wavenumber"][()], rows, info.technique, info.unit, metadata)
        with np.errstate(invalid="ignore"):
            peak = np.nanmax(np.abs(np.where(np.isfinite(batch.intensity), batch.intensity, 0.0)), axis=1)
        for i in np.flatnonzero(peak > MAX_INTENSITY):
            batch.invalid.setdefault(int(i), f"intensities reach {peak[i]:.3g} (beyond +-{MAX_INTENSITY:g}: "
                                             "not a measurement)")
        return EntryChunk(info, start, batch, self._rows(group, "sample/expected", sel, True),
                          self._rows(group, "results/result", sel, False), device_errors)

    def _rows(self, group: h5py.Group, path: str, sel, is_expected: bool) -> list[dict | None] | None:
        ds = _member(group, path)
        if ds is None:
            return None
        texts = _read_strings(ds, sel)
        texts = [texts] if isinstance(texts, str) else list(np.atleast_1d(texts))
        rows = _json_rows(texts, path)
        if is_expected:
            try:
                rows = [None if r is None else canonical_expected(r, self._resolve) for r in rows]
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
        return rows

    def iter_chunks(self, chunk_rows: int = 4096,
                    entries: Iterable[str | EntryInfo] | None = None) -> Iterator[EntryChunk]:
        """Every entry (or the given ones, in the given order) in chunks of at most ``chunk_rows`` rows.

        Only one chunk of intensities, ground truth and results is in memory at a time.
        """
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        for info in (self.entries if entries is None else [self.entry(e) for e in entries]):
            for start in range(0, info.n_rows, chunk_rows):
                yield self.read(info, start, start + chunk_rows)


def _one_string(ds: h5py.Dataset) -> str:
    """A dataset that holds one string (scalar or one-element array)."""
    if h5py.check_string_dtype(ds.dtype) is None or ds.shape not in ((), (1,)):
        raise ValueError(f"{ds.name} must hold one string")
    value = _read_strings(ds)
    return value if isinstance(value, str) else str(value[0])


def _check_regular_file(path: str) -> int:
    """The size of ``path`` if it is a regular file; FormatError for a directory, FIFO, device, ..."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot be read ({e.strerror})") from None
    kind = special_kind(st.st_mode)
    if kind == "a directory":
        raise FormatError(f"{path}: is a directory, not a recording")
    if kind:
        raise FormatError(f"{path}: is {kind}, not a regular file")
    return st.st_size


def _check_root(f: h5py.File, path: str) -> None:
    try:
        fmt = f.attrs.get("format")
        version_raw = f.attrs.get("format_version")
    except (OSError, RuntimeError, TypeError) as e:
        raise FormatError(f"{path}: not a fol recording (root attributes unreadable: {_short(e)})") from None
    if isinstance(fmt, np.ndarray) and fmt.size != 1 or isinstance(version_raw, np.ndarray) and version_raw.size != 1:
        raise FormatError(f"{path}: not a fol recording (root attribute 'format' or 'format_version' is an array)")
    if fmt is None:
        raise FormatError(f"{path}: not a fol recording (root attribute 'format' is missing)")
    if _decode(fmt) != FORMAT:
        raise FormatError(f"{path}: not a fol recording (format is {_decode(fmt)!r}, expected {FORMAT!r})")
    version = _decode(f.attrs.get("format_version"))
    # the page says int: a number equal to 1, never the text "1" or a boolean
    ok = (isinstance(version, (int, float)) and not isinstance(version, bool)
          and int(version) == FORMAT_VERSION and float(version) == FORMAT_VERSION)
    if not ok:
        raise FormatError(f"{path}: unsupported format_version {version!r} "
                          f"(this reader reads version {FORMAT_VERSION})")


def read_spectrum(path: str | Path, entry: str | None = None, index: int = 0) -> tuple[Spectrum, EntryInfo]:
    """One spectrum from a recording: row ``index`` of ``entry`` (default: the first entry).

    Unlike a stack read, a row that cannot be analysed (all NaN, all zero) is an error.
    """
    with Recording(path) as rec:
        if not rec.entries:
            raise FormatError(f"{path}: the recording holds no entries")
        info = rec.entry(entry) if entry is not None else rec.entries[0]
        if not 0 <= index < info.n_rows:
            raise FormatError(f"{path}, entry {info.name!r}: no row {index} (the entry has {info.n_rows})")
        chunk = rec.read(info, index, index + 1)
    problem = chunk.batch.invalid.get(0)
    if problem:
        where = f", row {index}" if info.stacked else ""
        raise FormatError(f"{path}, entry {info.name!r}{where}: {problem}")
    return chunk.batch[0], info


# ----------------------------------------------------------------------------- writing
# (fol/io/recording_writer.py: crash-safe appending through a journal beside the file)


def __getattr__(name: str):
    """``RecordingWriter``, ``StackAppender`` and ``recover`` live in fol.io.recording_writer (imported lazily)."""
    if name in ("RecordingWriter", "StackAppender", "recover", "check_target"):
        from fol.io import recording_writer

        return getattr(recording_writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
