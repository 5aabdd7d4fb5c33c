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

Writing (``RecordingWriter``) produces files that NeXus viewers (h5web, silx, nexpy)
display without knowing ``fol`` and that the reader round-trips exactly. Every entry is
flushed as soon as it is written, so a crash never loses the entries already written,
and a result is only written after the spectrum it belongs to.

Project additions to the format (allowed by its "writers may add" rule; readers
ignore them): root ``creator``; entry ``default = "data"``; on stacks the NeXus
``axes = [".", "wavenumber"]`` form; data ``wavenumber_indices``; ``"null"`` as the
``expected``/``result`` string of a stack row that has none.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from fol import __version__
from fol.errors import FolError, FormatError
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
    """All attributes of a group/dataset except ``NX_class``, decoded."""
    return {k: _decode(v) for k, v in obj.attrs.items() if k != "NX_class"}


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
    return None


def _read_strings(ds: h5py.Dataset, sel=()) -> np.ndarray | str:
    """Strings of a string dataset (variable or fixed length, bytes or UTF-8), decoded."""
    return ds.asstr("utf-8")[sel]


def _json_rows(texts: Iterable[str], what: str) -> list[dict | None]:
    """Parse per-row JSON objects; empty/``null`` rows are None. Raises ValueError naming the row."""
    rows: list[dict | None] = []
    for i, text in enumerate(texts):
        text = text.strip()
        if text in _ABSENT_JSON:
            rows.append(None)
            continue
        try:
            obj = json.loads(text)
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
        errors = json.loads(text) if text.strip() else []
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


def _entry_info(name: str, group: h5py.Group) -> EntryInfo:
    """Validate an entry's structure and describe it; raises ValueError with the problem."""
    data = group.get("data")
    if not isinstance(data, h5py.Group):
        raise ValueError("no data group")
    intensity, wavenumber = data.get("intensity"), data.get("wavenumber")
    if not isinstance(intensity, h5py.Dataset):
        raise ValueError("no data/intensity dataset")
    if not isinstance(wavenumber, h5py.Dataset):
        raise ValueError("no data/wavenumber dataset")
    if wavenumber.dtype.kind not in "fiu" or intensity.dtype.kind not in "fiu":
        raise ValueError(f"wavenumber and intensity must be numeric, got {wavenumber.dtype} and {intensity.dtype}")
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

    instrument_group = group.get("instrument")
    instrument = _attrs(instrument_group) if isinstance(instrument_group, h5py.Group) else {}
    technique = str(instrument.get("technique", "")).strip().lower()
    if not technique:
        raise ValueError("no instrument/technique attribute")
    if technique not in TECHNIQUES:
        raise ValueError(f"unknown technique {technique!r} (expected one of {', '.join(TECHNIQUES)})")
    instrument["technique"] = technique
    sample_group = group.get("sample")
    sample = _attrs(sample_group) if isinstance(sample_group, h5py.Group) else {}

    for path, what in (("sample/expected", "sample/expected"), ("results/result", "results/result")):
        ds = group.get(path)
        if ds is not None:
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
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise FormatError(f"{self.path}: no such file") from None
        except OSError as e:
            raise FormatError(f"{self.path}: not a readable HDF5 file ({e})") from None
        try:
            _check_root(self._file, self.path)
            infos = []
            for name, group in self._file.items():
                if isinstance(group, h5py.Group) and _nx_class(group) == "NXentry":
                    try:
                        infos.append(_entry_info(name, group))
                    except ValueError as e:
                        message = f"{self.path}, entry {name!r}: {e}"
                        if not skip_invalid:
                            raise FormatError(message) from None
                        self.skipped.append((name, message))
        except BaseException:
            self._file.close()
            raise
        self.skipped.sort()
        self.entries: list[EntryInfo] = sorted(infos, key=_entry_order)
        self._by_name = {e.name: e for e in self.entries}

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

    def _read(self, info: EntryInfo, start: int, stop: int) -> EntryChunk:
        group = self._file[info.name]
        data = group["data"]
        sel = np.s_[start:stop] if info.stacked else ()
        rows = data["intensity"][sel]
        errors_ds = data.get("device_errors")
        device_errors = _device_errors(_one_string(errors_ds)) if errors_ds is not None else []
        metadata = {**info.instrument, **info.sample, "entry": info.name, "source": self.path}
        if info.start_time:
            metadata["acquired_utc"] = info.start_time
        if device_errors:
            metadata["device_errors"] = device_errors
        batch = SpectrumBatch(data["wavenumber"][()], rows, info.technique, info.unit, metadata)
        return EntryChunk(info, start, batch, self._rows(group, "sample/expected", sel, True),
                          self._rows(group, "results/result", sel, False), device_errors)

    def _rows(self, group: h5py.Group, path: str, sel, is_expected: bool) -> list[dict | None] | None:
        ds = group.get(path)
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


def _check_root(f: h5py.File, path: str) -> None:
    fmt = f.attrs.get("format")
    if fmt is None:
        raise FormatError(f"{path}: not a fol recording (root attribute 'format' is missing)")
    if _decode(fmt) != FORMAT:
        raise FormatError(f"{path}: not a fol recording (format is {_decode(fmt)!r}, expected {FORMAT!r})")
    version = _decode(f.attrs.get("format_version"))
    try:
        ok = int(version) == FORMAT_VERSION and float(version) == FORMAT_VERSION
    except (TypeError, ValueError):
        ok = False
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


def _clean_attrs(values: dict | None) -> dict:
    """Attribute values ready for h5py: None dropped, numpy scalars unwrapped."""
    out = {}
    for k, v in (values or {}).items():
        if v is None:
            continue
        out[str(k)] = v.item() if isinstance(v, np.generic) else v
    return out


def _pick(metadata: dict, keys: tuple[str, ...]) -> dict:
    return {k: metadata[k] for k in keys if metadata.get(k) is not None}


def _json(obj) -> str:
    return "null" if obj is None else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _result_attrs(results: list[dict]) -> dict:
    """fol_version and library_sha256 as stated by the first result (the writer's version otherwise)."""
    first = next((r for r in results if r), {})
    return {"fol_version": str(first.get("fol_version") or __version__),
            "library_sha256": str((first.get("library") or {}).get("sha256") or "")}


class RecordingWriter:
    """Writes a recording. Mode ``"a"`` appends (creating the file if missing), ``"w"`` truncates.

    Appending to a file that exists but is not a fol recording is refused (it is never
    overwritten). Entries get unique default names ``scan_0000``, ``scan_0001``, ...
    Every entry is flushed to disk as soon as it is complete.
    """

    def __init__(self, path: str | Path, mode: str = "a"):
        if mode not in ("a", "w"):
            raise ValueError(f"mode must be 'a' or 'w', got {mode!r}")
        self.path = str(path)
        existed = mode == "a" and Path(self.path).exists()
        try:
            self._file = h5py.File(self.path, mode)
        except OSError as e:
            raise FormatError(f"{self.path}: cannot open for writing ({e})") from None
        try:
            if existed:
                _check_root(self._file, self.path)
            else:
                created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                self._file.attrs.update({"format": FORMAT, "format_version": np.int64(FORMAT_VERSION),
                                         "created": created, "NX_class": "NXroot", "creator": f"fol {__version__}"})
                self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._next_scan = 1 + max((int(k[5:]) for k in self._file if k.startswith("scan_") and k[5:].isdigit()),
                                  default=-1)
        self._last_time: datetime | None = None

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    # -- entry skeleton

    def _new_name(self, name: str | None) -> str:
        if name is None:
            while f"scan_{self._next_scan:04d}" in self._file:
                self._next_scan += 1
            name = f"scan_{self._next_scan:04d}"
            self._next_scan += 1
            return name
        name = str(name)
        if not name or "/" in name or name in (".", ".."):
            raise FormatError(f"{self.path}: invalid entry name {name!r}")
        if name in self._file:
            raise FormatError(f"{self.path}: entry {name!r} already exists")
        return name

    def _start_time(self, start_time: str | datetime | None) -> str:
        """The given time (validated) or now, strictly after the previous default so order is stable."""
        if isinstance(start_time, datetime):
            return utc_stamp(start_time.replace(tzinfo=start_time.tzinfo or timezone.utc))
        if start_time is not None:
            try:
                _parse_time(str(start_time))
            except ValueError:
                raise FormatError(f"{self.path}: start_time {start_time!r} is not an ISO 8601 time") from None
            return str(start_time)
        now = datetime.now(timezone.utc)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(microseconds=1)
        self._last_time = now
        return utc_stamp(now)

    @contextlib.contextmanager
    def _entry(self, name, start_time, technique, instrument, sample) -> Iterator[h5py.Group]:
        """A new entry group with instrument and sample; removed again if filling it fails."""
        name = self._new_name(name)
        start_time = self._start_time(start_time)
        group = self._file.create_group(name)
        try:
            group.attrs.update({"NX_class": "NXentry", "start_time": start_time, "default": "data"})
            inst = group.create_group("instrument")
            inst.attrs.update({"NX_class": "NXinstrument", **_clean_attrs(instrument), "technique": technique})
            samp = group.create_group("sample")
            samp.attrs.update({"NX_class": "NXsample", **_clean_attrs(sample)})
            yield group
        except BaseException:
            del self._file[name]
            raise
        self._file.flush()

    def _axis(self, wavenumber) -> np.ndarray:
        x = np.asarray(wavenumber, dtype=np.float64)
        problem = axis_problem(x)
        if problem:
            raise FormatError(f"{self.path}: {problem}")
        return x

    @staticmethod
    def _data_group(group: h5py.Group, x: np.ndarray, stacked: bool) -> h5py.Group:
        data = group.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "intensity",
                           "axes": [".", "wavenumber"] if stacked else "wavenumber",
                           "wavenumber_indices": np.int64(1 if stacked else 0)})
        data.create_dataset("wavenumber", data=x).attrs["units"] = "1/cm"
        return data

    # -- public writers

    def add_spectrum(self, spectrum: Spectrum, *, name: str | None = None, start_time: str | datetime | None = None,
                     instrument: dict | None = None, sample: dict | None = None, expected: dict | None = None,
                     result: dict | None = None, device_errors: list | None = None, raw_unit: str | None = None) -> str:
        """Write one spectrum as a 1-D entry and return its name.

        Instrument/sample attributes, start time and device errors default to the
        spectrum's metadata (``acquired_utc``, ``device_errors`` and the format's
        attribute names). ``raw_unit="transmittance"`` stores the absorbance spectrum
        back in percent transmittance (``T = 100 * 10**-A``), the unit the instrument
        reported; otherwise intensities are stored as they are. The spectrum is written
        and flushed before ``result``, so a crash never leaves a result without data.
        """
        md = dict(spectrum.metadata)
        unit, y = spectrum.unit, np.asarray(spectrum.intensity)
        if raw_unit is not None and str(raw_unit).strip().lower() != unit:
            if str(raw_unit).strip().lower() not in ("transmittance", "%t") or unit != "absorbance":
                raise FormatError(f"{self.path}: cannot store a {unit} spectrum as {raw_unit!r}")
            unit, y = "transmittance", 100.0 * np.power(10.0, -y)
        errors = device_errors if device_errors is not None else md.get("device_errors")
        with self._entry(name, start_time if start_time is not None else md.get("acquired_utc"), spectrum.technique,
                         instrument if instrument is not None else _pick(md, INSTRUMENT_KEYS),
                         sample if sample is not None else _pick(md, SAMPLE_KEYS)) as group:
            data = self._data_group(group, spectrum.wavenumber, stacked=False)
            data.create_dataset("intensity", data=y).attrs["units"] = unit
            if errors:
                data.create_dataset("device_errors", data=_json([list(p) for p in errors]), dtype=h5py.string_dtype())
            if expected is not None:
                group["sample"].create_dataset("expected", data=_json(expected), dtype=h5py.string_dtype())
        entry = group.name.lstrip("/")
        if result is not None:
            self.set_results(entry, [result], _result_attrs([result]))
        return entry

    def add_stack(self, batch: SpectrumBatch, *, name: str | None = None, start_time: str | datetime | None = None,
                  instrument: dict | None = None, sample: dict | None = None,
                  expected: list[dict | None] | None = None, results: list[dict] | None = None) -> str:
        """Write a SpectrumBatch as one stacked entry (``[m, n]``) and return its name."""
        m = len(batch)
        for what, rows in (("expected", expected), ("results", results)):
            if rows is not None and len(rows) != m:
                raise FormatError(f"{self.path}: {what} has {len(rows)} rows but the stack has {m}")
        md = dict(batch.metadata)
        with self._entry(name, start_time if start_time is not None else md.get("acquired_utc"), batch.technique,
                         instrument if instrument is not None else _pick(md, INSTRUMENT_KEYS),
                         sample if sample is not None else _pick(md, SAMPLE_KEYS)) as group:
            data = self._data_group(group, batch.wavenumber, stacked=True)
            data.create_dataset("intensity", data=np.asarray(batch.intensity),
                                chunks=_row_chunks(m, len(batch.wavenumber))).attrs["units"] = batch.unit
            if expected is not None:
                group["sample"].create_dataset("expected", data=[_json(e) for e in expected], dtype=h5py.string_dtype())
        entry = group.name.lstrip("/")
        if results is not None:
            self.set_results(entry, results, _result_attrs(results))
        return entry

    def create_stack(self, name: str | None, wavenumber, technique: str, unit: str, *,
                     start_time: str | datetime | None = None, instrument: dict | None = None,
                     sample: dict | None = None, dtype: str = "float32", chunk_rows: int = 1024) -> "StackAppender":
        """Start a stacked entry whose rows are appended later (``StackAppender.append``).

        For stacks too large to hold in memory. ``wavenumber`` may be increasing or
        decreasing and ``unit`` any of the format's units: rows are stored as given.
        """
        technique = str(technique).strip().lower()
        unit = str(unit).strip().lower()
        if technique not in TECHNIQUES:
            raise FormatError(f"{self.path}: unknown technique {technique!r}")
        if unit not in UNITS:
            raise FormatError(f"{self.path}: unknown intensity unit {unit!r}")
        x = self._axis(wavenumber)
        chunk_rows = max(1, int(chunk_rows))
        with self._entry(name, start_time, technique, instrument, sample) as group:
            data = self._data_group(group, x, stacked=True)
            ds = data.create_dataset("intensity", shape=(0, x.size), maxshape=(None, x.size), dtype=np.dtype(dtype),
                                     chunks=(chunk_rows, x.size))
            ds.attrs["units"] = unit
        return StackAppender(self, group, chunk_rows)

    def set_results(self, entry: str, results: list[dict], attrs: dict) -> None:
        """Write (or overwrite) ``results/result`` of an entry: one JSON object per row.

        ``attrs`` should give ``fol_version`` and ``library_sha256``; ``created``
        defaults to now.
        """
        group = self._file.get(entry)
        if not isinstance(group, h5py.Group) or _nx_class(group) != "NXentry":
            raise FormatError(f"{self.path}: no entry {entry!r}")
        intensity = group["data/intensity"]
        stacked = intensity.ndim == 2
        m = intensity.shape[0] if stacked else 1
        if len(results) != m:
            raise FormatError(f"{self.path}, entry {entry!r}: {len(results)} results for {m} rows")
        res = group.require_group("results")
        if "result" in res:
            del res["result"]
        texts = [_json(r) for r in results]
        res.create_dataset("result", data=texts if stacked else texts[0], dtype=h5py.string_dtype())
        res.attrs.update(_clean_attrs({"created": utc_stamp(), **attrs}))
        self._file.flush()


def _row_chunks(m: int, n: int, target_bytes: int = 1 << 20) -> tuple[int, int] | None:
    """HDF5 chunk shape of whole rows, about 1 MiB, so row slices read only what they need."""
    if m < 2:
        return None
    return (max(1, min(m, target_bytes // (8 * n))), n)


class StackAppender:
    """Appends rows to a stacked entry made by ``RecordingWriter.create_stack``; flushes after each append."""

    def __init__(self, writer: RecordingWriter, group: h5py.Group, chunk_rows: int):
        self._writer = writer
        self._group = group
        self._intensity = group["data/intensity"]
        self._chunk_rows = chunk_rows
        self.name = group.name.lstrip("/")

    def __len__(self) -> int:
        return self._intensity.shape[0]

    def append(self, intensity_rows, expected: list[dict | None] | None = None) -> None:
        """Append ``[k, n]`` (or one ``[n]``) rows and, optionally, their ``k`` ground-truth objects."""
        rows = np.asarray(intensity_rows)
        if rows.ndim == 1:
            rows = rows[None, :]
        n = self._intensity.shape[1]
        where = f"{self._writer.path}, entry {self.name!r}"
        if rows.ndim != 2 or rows.shape[1] != n:
            raise FormatError(f"{where}: rows of shape {rows.shape} do not fit the axis of {n} points")
        if expected is not None and len(expected) != rows.shape[0]:
            raise FormatError(f"{where}: {len(expected)} expected objects for {rows.shape[0]} rows")
        old = len(self)
        sample = self._group["sample"]
        if expected is not None and "expected" not in sample:
            ds = sample.create_dataset("expected", shape=(old,), maxshape=(None,), dtype=h5py.string_dtype(),
                                       chunks=(self._chunk_rows,))
            if old:  # rows appended before any ground truth was given have none
                ds[:] = np.array(["null"] * old, dtype=object)
        if "expected" in sample:
            ds = sample["expected"]
            ds.resize((old + rows.shape[0],))
            texts = [_json(e) for e in expected] if expected is not None else ["null"] * rows.shape[0]
            ds[old:] = np.array(texts, dtype=object)
        self._intensity.resize((old + rows.shape[0], n))
        self._intensity[old:] = rows
        self._writer._file.flush()
