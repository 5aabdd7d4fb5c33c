"""Writing recordings (recording-format.md) so that a crash never loses a completed entry.

HDF5 is not crash-safe when a file is modified in place: a process killed while the
library updates the file's metadata can leave the whole file unreadable (seen: one
kill in 40 of ``fol simulate record`` destroyed 540 completed acquisitions). So the
writer never modifies the recording in place:

* **Journal.** Every entry (``add_spectrum``, ``add_stack``, ``create_stack``), every
  block of appended stack rows and every ``set_results`` is first written as its own
  small HDF5 file in ``REC.h5.journal/`` -- to a temporary name, ``fsync``'ed, then
  atomically renamed to ``NNNNNNNN.h5`` (and the directory ``fsync``'ed). When the
  method returns, the data is on disk, whole, or not at all. Journal records of kind
  ``entries`` are complete fol recordings themselves, readable by any reader.
* **Assembly.** At ``close()``, and whenever the journal holds at least as many bytes
  as the recording (8 MiB at least, or 4,096 records), the recording is rebuilt: a
  copy of it is made beside it, the records are applied to the copy, the copy is
  ``fsync``'ed and atomically renamed over the recording, then the records are
  deleted. The recording is therefore always either the old complete file or the new
  complete file. The root attribute ``fol_journal_seq`` (an addition the page allows)
  names the last record applied, so a crash between the rename and the deletion never
  applies a record twice. Copying only when the journal is as large as the file keeps
  the total work proportional to the final size.
* **Recovery.** A journal left by a killed writer is assembled by the next writer of
  the file, or by the next reader (``Recording`` calls :func:`recover`) when no writer
  holds the lock, as SQLite readers roll back a hot journal.
* **Lock.** A writer holds ``REC.h5.journal/.lock`` (``flock``); a second writer of
  the same file waits for it (``lock_timeout``, 10 s), then fails naming the file.

Other implementations read the recording as the page defines it; what is still in a
journal (a writer is running, or was killed and nobody has opened the file since) is
not in the recording yet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from fol import __version__
from fol.errors import FormatError
from fol.spectrum import TECHNIQUES, Spectrum, SpectrumBatch

from fol.io.recording import (FORMAT, FORMAT_VERSION, INSTRUMENT_KEYS, SAMPLE_KEYS, UNITS, _check_root, _nx_class,
                              _parse_time, axis_problem, utc_stamp)

JOURNAL_SUFFIX = ".journal"
SEQ_ATTR = "fol_journal_seq"
KIND_ATTR = "fol_journal"
#: assemble when the journal holds this many records ...
ASSEMBLE_RECORDS = 4096
#: ... or at least this many bytes and at least as many as the recording
ASSEMBLE_BYTES = 8 << 20


# ----------------------------------------------------------------------------- small helpers


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


def _row_chunks(m: int, n: int, target_bytes: int = 1 << 20) -> tuple[int, int] | None:
    """HDF5 chunk shape of whole rows, about 1 MiB, so row slices read only what they need."""
    if m < 2:
        return None
    return (max(1, min(m, target_bytes // (8 * n))), n)


def _fsync_path(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _root_attrs() -> dict:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"format": FORMAT, "format_version": np.int64(FORMAT_VERSION), "created": created, "NX_class": "NXroot",
            "creator": f"fol {__version__}"}


def check_target(path: str | Path) -> None:
    """Refuse, before any work, a ``--record`` target that cannot be appended to (FormatError naming it).

    The file must be a fol recording (or not exist, in a writable directory), and be
    writable; its journal directory must be creatable.
    """
    path = str(path)
    p = Path(path)
    if p.is_dir():
        raise FormatError(f"{path}: is a directory, not a recording")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FormatError(f"{path}: cannot write a recording there (no directory {str(parent)!r})")
    if p.exists():
        if not p.is_file():
            raise FormatError(f"{path}: is not a regular file")
        try:
            with h5py.File(path, "r") as f:
                _check_root(f, path)
        except FormatError:
            raise
        except (OSError, RuntimeError) as e:
            raise FormatError(f"{path}: not a readable fol recording ({str(e).splitlines()[0][:200]})") from None
        if not os.access(path, os.W_OK):
            raise FormatError(f"{path}: permission denied (cannot append to it)")
    journal = path + JOURNAL_SUFFIX
    if not (os.access(journal, os.W_OK) if os.path.isdir(journal) else os.access(parent, os.W_OK)):
        raise FormatError(f"{path}: permission denied (cannot write in {str(parent)!r})")


# ----------------------------------------------------------------------------- the journal


class _Journal:
    """The directory of records beside a recording, and its lock."""

    def __init__(self, path: str, durable: bool = True):
        self.main = path
        self.dir = path + JOURNAL_SUFFIX
        self.durable = durable
        self._lock_fd: int | None = None

    # -- lock

    def lock(self, timeout: float | None) -> bool:
        """Take the lock (create the directory if needed); False if ``timeout`` passed (0: do not wait)."""
        try:
            os.mkdir(self.dir)  # never its parents: a recording in a missing directory is an error
        except FileExistsError:
            pass
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return True
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if end is not None and time.monotonic() >= end:
                os.close(fd)
                return False
            time.sleep(0.05)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- records

    def records(self) -> list[tuple[int, str]]:
        """Complete records, in order (temporary files of an interrupted write are not records)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext == ".h5" and stem.isdigit():
                out.append((int(stem), os.path.join(self.dir, name)))
        return sorted(out)

    def size(self) -> int:
        return sum(os.path.getsize(p) for _, p in self.records() if os.path.exists(p))

    def write(self, seq: int, kind: str, build: Callable[[h5py.File], None]) -> int:
        """One record: built in a temporary file, fsync'ed, atomically renamed to ``seq``; returns its size."""
        final = os.path.join(self.dir, f"{seq:08d}.h5")
        tmp = final + f".{os.getpid()}.tmp"
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs.update({**_root_attrs(), KIND_ATTR: kind})
                build(f)
            if self.durable:
                _fsync_path(tmp)
            size = os.path.getsize(tmp)
            os.replace(tmp, final)
            if self.durable:
                _fsync_path(self.dir, directory=True)
            return size
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def clear(self) -> None:
        for _, p in self.records():
            os.unlink(p)
        for name in os.listdir(self.dir):
            if name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.dir, name))

    def remove_if_empty(self) -> None:
        """Remove the journal directory when it holds nothing but the lock (while still holding it)."""
        try:
            if set(os.listdir(self.dir)) <= {".lock"}:
                os.unlink(os.path.join(self.dir, ".lock"))
                os.rmdir(self.dir)
        except OSError:
            pass

    # -- assembly

    def assemble(self) -> int:
        """Apply every record to a copy of the recording and rename it over the recording; returns records applied."""
        records = self.records()
        for name in os.listdir(self.dir):  # temporary files of a killed write are garbage
            if name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.dir, name))
        folder = os.path.dirname(os.path.abspath(self.main))
        base = os.path.basename(self.main)
        for name in os.listdir(folder):  # copies a killed assembly left (we hold the lock: nobody else assembles)
            if name.startswith((base + ".assembling.", base + ".new.")) and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
        if not records:
            return 0
        tmp = self.main + f".assembling.{os.getpid()}.tmp"
        try:
            if os.path.exists(self.main):
                shutil.copyfile(self.main, tmp)
                f = h5py.File(tmp, "a")
            else:
                f = h5py.File(tmp, "w")
                f.attrs.update(_root_attrs())
            applied = 0
            with f:
                done = int(f.attrs.get(SEQ_ATTR, 0))
                for seq, record in records:
                    if seq <= done:
                        continue
                    with h5py.File(record, "r") as src:
                        _apply(src, f, record)
                    applied += 1
                    done = seq
                f.attrs[SEQ_ATTR] = np.int64(done)
            if self.durable:
                _fsync_path(tmp)
            os.replace(tmp, self.main)
            if self.durable:
                _fsync_path(os.path.dirname(os.path.abspath(self.main)), directory=True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        for _, record in records:
            with contextlib.suppress(OSError):
                os.unlink(record)
        return applied


def _decode_attr(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _apply(src: h5py.File, dst: h5py.File, record: str) -> None:
    """Apply one journal record to the recording being assembled (idempotent per record)."""
    kind = _decode_attr(src.attrs.get(KIND_ATTR, ""))
    for name in src:
        if kind == "entries":
            if name not in dst:
                src.copy(src[name], dst, name=name)
        elif kind == "results":
            group = dst[name]
            res = group.require_group("results")
            if "result" in res:
                del res["result"]
            src.copy(src[name]["results/result"], res, name="result")
            res.attrs.update(dict(src[name]["results"].attrs))
        elif kind == "rows":
            _apply_rows(src[name], dst[name])
        else:
            raise FormatError(f"{record}: unknown journal record kind {kind!r}")


def _apply_rows(rec: h5py.Group, group: h5py.Group) -> None:
    start = int(rec.attrs["start"])
    rows = rec["intensity"]
    k = rows.shape[0]
    ds = group["data/intensity"]
    have = ds.shape[0]
    if have >= start + k:
        return  # applied before
    if have != start:
        raise FormatError(f"{group.file.filename}, entry {group.name.lstrip('/')!r}: journal rows start at {start} "
                          f"but the stack has {have} rows")
    ds.resize((start + k, ds.shape[1]))
    ds[start:] = rows[()]
    sample = group["sample"]
    texts = rec["expected"].asstr()[()] if "expected" in rec else None
    if texts is not None and "expected" not in sample:
        chunk = ds.chunks[0] if ds.chunks else 1024
        exp = sample.create_dataset("expected", shape=(start,), maxshape=(None,), dtype=h5py.string_dtype(),
                                    chunks=(chunk,))
        if start:  # rows appended before any ground truth was given have none
            exp[:] = np.array(["null"] * start, dtype=object)
    if "expected" in sample:
        exp = sample["expected"]
        exp.resize((start + k,))
        exp[start:] = np.array(list(texts) if texts is not None else ["null"] * k, dtype=object)


def recover(path: str | Path, *, durable: bool = True) -> int:
    """Assemble a journal left beside ``path`` by a killed writer, if no writer holds it; returns records applied.

    Does nothing (returns 0) when there is no journal, a writer is running, or the
    directory is read-only.
    """
    path = str(path)
    journal = _Journal(path, durable)
    if not os.path.isdir(journal.dir) or not os.access(journal.dir, os.W_OK):
        return 0
    try:
        if not journal.lock(0):
            return 0
    except OSError:
        return 0
    try:
        return journal.assemble()
    finally:
        journal.remove_if_empty()
        journal.unlock()


# ----------------------------------------------------------------------------- the writer


class RecordingWriter:
    """Writes a recording. Mode ``"a"`` appends (creating the file if missing), ``"w"`` truncates.

    Appending to a file that exists but is not a fol recording is refused (it is never
    overwritten). Entries get unique default names ``scan_0000``, ``scan_0001``, ...
    Every entry, block of rows and result is durable when its method returns (see the
    module docstring); ``durable=False`` skips the ``fsync`` calls (a killed process
    still loses nothing; a power cut may).
    """

    def __init__(self, path: str | Path, mode: str = "a", *, durable: bool = True, lock_timeout: float = 10.0):
        if mode not in ("a", "w"):
            raise ValueError(f"mode must be 'a' or 'w', got {mode!r}")
        self.path = str(path)
        if os.path.isdir(self.path):
            raise FormatError(f"{self.path}: is a directory, not a recording")
        self._journal = _Journal(self.path, durable)
        try:
            locked = self._journal.lock(lock_timeout)
        except FileNotFoundError:
            raise FormatError(f"{self.path}: cannot open for writing (no directory "
                              f"{os.path.dirname(os.path.abspath(self.path))!r})") from None
        except OSError as e:
            raise FormatError(f"{self.path}: cannot open for writing ({e.strerror or e})") from None
        if not locked:
            raise FormatError(f"{self.path}: another process is writing this recording "
                              f"(waited {lock_timeout:g} s for {self._journal.dir}/.lock)")
        self._closed = False
        try:
            self._open(mode)
        except BaseException:
            self._journal.remove_if_empty()  # leave nothing behind beside a file we refused
            self._journal.unlock()
            raise

    def _open(self, mode: str) -> None:
        if mode == "w":
            self._journal.clear()
            tmp = self.path + f".new.{os.getpid()}.tmp"
            try:
                with h5py.File(tmp, "w") as f:
                    f.attrs.update(_root_attrs())
                if self._journal.durable:
                    _fsync_path(tmp)
                os.replace(tmp, self.path)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise FormatError(f"{self.path}: cannot open for writing ({e.strerror or e})") from None
        elif os.path.exists(self.path):
            try:
                with h5py.File(self.path, "r") as f:
                    _check_root(f, self.path)
            except FormatError:
                raise
            except (OSError, RuntimeError) as e:
                raise FormatError(f"{self.path}: cannot open for writing "
                                  f"({str(e).splitlines()[0][:200]})") from None
            if not os.access(self.path, os.W_OK):
                raise FormatError(f"{self.path}: cannot open for writing (permission denied)")
        try:
            self._journal.assemble()  # what a killed writer left behind
        except (OSError, RuntimeError, KeyError) as e:
            raise FormatError(f"{self.path}: cannot recover its journal {self._journal.dir} "
                              f"({str(e).splitlines()[0][:200]})") from None
        self._rows: dict[str, tuple[int, bool]] = {}  # entry -> (rows, stacked), for entries in the recording
        self._seq = 0
        if os.path.exists(self.path):
            with h5py.File(self.path, "r") as f:
                self._seq = int(f.attrs.get(SEQ_ATTR, 0))
                for name, group in f.items():
                    if isinstance(group, h5py.Group) and _nx_class(group) == "NXentry":
                        ds = group.get("data/intensity")
                        if isinstance(ds, h5py.Dataset):
                            self._rows[name] = (ds.shape[0] if ds.ndim == 2 else 1, ds.ndim == 2)
                        else:
                            self._rows[name] = (0, False)
                    else:
                        self._rows.setdefault(name, (0, False))
        self._next_scan = 1 + max((int(k[5:]) for k in self._rows if k.startswith("scan_") and k[5:].isdigit()),
                                  default=-1)
        self._last_time: datetime | None = None
        self._file: h5py.File | None = None  # the journal record being built
        self._pending = [0, 0]  # records and bytes in the journal since the last assembly

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Assemble the journal into the recording and release the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._journal.assemble()
        finally:
            self._journal.remove_if_empty()
            self._journal.unlock()

    # -- records

    def _record(self, kind: str, build: Callable[[h5py.File], None]) -> None:
        if self._closed:
            raise FormatError(f"{self.path}: the writer is closed")
        self._seq += 1

        def fill(f: h5py.File) -> None:
            self._file = f
            try:
                build(f)
            finally:
                self._file = None

        try:
            size = self._journal.write(self._seq, kind, fill)
        except OSError as e:
            self._seq -= 1
            raise FormatError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self._pending[0] += 1
        self._pending[1] += size
        self._maybe_assemble()

    def _maybe_assemble(self) -> None:
        records, size = self._pending
        main = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        if records >= ASSEMBLE_RECORDS or (size >= ASSEMBLE_BYTES and size >= main):
            self._journal.assemble()
            self._pending = [0, 0]

    # -- entry skeleton

    def _new_name(self, name: str | None) -> str:
        if name is None:
            while f"scan_{self._next_scan:04d}" in self._rows:
                self._next_scan += 1
            name = f"scan_{self._next_scan:04d}"
            self._next_scan += 1
            return name
        name = str(name)
        if not name or "/" in name or name in (".", ".."):
            raise FormatError(f"{self.path}: invalid entry name {name!r}")
        if name in self._rows:
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
    def _entry(self, name, start_time, technique, instrument, sample, rows: int, stacked: bool) -> Iterator[dict]:
        """A new entry, written as one journal record when the block ends (nothing is written if it fails)."""
        name = self._new_name(name)
        start_time = self._start_time(start_time)
        parts: dict = {}
        yield parts  # the caller says how to fill data (and sample/expected) in parts["fill"]

        def build(f: h5py.File) -> None:
            group = f.create_group(name)
            group.attrs.update({"NX_class": "NXentry", "start_time": start_time, "default": "data"})
            inst = group.create_group("instrument")
            inst.attrs.update({"NX_class": "NXinstrument", **_clean_attrs(instrument), "technique": technique})
            samp = group.create_group("sample")
            samp.attrs.update({"NX_class": "NXsample", **_clean_attrs(sample)})
            parts["fill"](group)

        self._record("entries", build)
        self._rows[name] = (rows, stacked)
        parts["name"] = name

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
        reported; otherwise intensities are stored as they are. The spectrum is durable
        before ``result`` is written, so a crash never leaves a result without data.
        """
        md = dict(spectrum.metadata)
        unit, y = spectrum.unit, np.asarray(spectrum.intensity)
        if raw_unit is not None and str(raw_unit).strip().lower() != unit:
            if str(raw_unit).strip().lower() not in ("transmittance", "%t") or unit != "absorbance":
                raise FormatError(f"{self.path}: cannot store a {unit} spectrum as {raw_unit!r}")
            unit, y = "transmittance", 100.0 * np.power(10.0, -y)
        errors = device_errors if device_errors is not None else md.get("device_errors")
        x = np.asarray(spectrum.wavenumber, dtype=np.float64)

        def fill(group: h5py.Group) -> None:
            data = self._data_group(group, x, stacked=False)
            data.create_dataset("intensity", data=y).attrs["units"] = unit
            if errors:
                data.create_dataset("device_errors", data=_json([list(p) for p in errors]), dtype=h5py.string_dtype())
            if expected is not None:
                group["sample"].create_dataset("expected", data=_json(expected), dtype=h5py.string_dtype())

        with self._entry(name, start_time if start_time is not None else md.get("acquired_utc"), spectrum.technique,
                         instrument if instrument is not None else _pick(md, INSTRUMENT_KEYS),
                         sample if sample is not None else _pick(md, SAMPLE_KEYS), 1, False) as parts:
            parts["fill"] = fill
        entry = parts["name"]
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
        x = np.asarray(batch.wavenumber, dtype=np.float64)

        def fill(group: h5py.Group) -> None:
            data = self._data_group(group, x, stacked=True)
            data.create_dataset("intensity", data=np.asarray(batch.intensity),
                                chunks=_row_chunks(m, len(x))).attrs["units"] = batch.unit
            if expected is not None:
                group["sample"].create_dataset("expected", data=[_json(e) for e in expected], dtype=h5py.string_dtype())

        with self._entry(name, start_time if start_time is not None else md.get("acquired_utc"), batch.technique,
                         instrument if instrument is not None else _pick(md, INSTRUMENT_KEYS),
                         sample if sample is not None else _pick(md, SAMPLE_KEYS), m, True) as parts:
            parts["fill"] = fill
        entry = parts["name"]
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
        dtype = np.dtype(dtype)

        def fill(group: h5py.Group) -> None:
            data = self._data_group(group, x, stacked=True)
            ds = data.create_dataset("intensity", shape=(0, x.size), maxshape=(None, x.size), dtype=dtype,
                                     chunks=(chunk_rows, x.size))
            ds.attrs["units"] = unit

        with self._entry(name, start_time, technique, instrument, sample, 0, True) as parts:
            parts["fill"] = fill
        return StackAppender(self, parts["name"], x.size, chunk_rows, dtype)

    def set_results(self, entry: str, results: list[dict], attrs: dict) -> None:
        """Write (or overwrite) ``results/result`` of an entry: one JSON object per row.

        ``attrs`` should give ``fol_version`` and ``library_sha256``; ``created``
        defaults to now.
        """
        if entry not in self._rows:
            raise FormatError(f"{self.path}: no entry {entry!r}")
        m, stacked = self._rows[entry]
        if len(results) != m:
            raise FormatError(f"{self.path}, entry {entry!r}: {len(results)} results for {m} rows")
        texts = [_json(r) for r in results]
        res_attrs = _clean_attrs({"created": utc_stamp(), **attrs})

        def build(f: h5py.File) -> None:
            res = f.create_group(entry).create_group("results")
            res.create_dataset("result", data=texts if stacked else texts[0], dtype=h5py.string_dtype())
            res.attrs.update(res_attrs)

        self._record("results", build)


class StackAppender:
    """Appends rows to a stacked entry made by ``RecordingWriter.create_stack``; each append is durable."""

    def __init__(self, writer: RecordingWriter, name: str, n: int, chunk_rows: int, dtype: np.dtype):
        self._writer = writer
        self.name = name
        self._n = n
        self._chunk_rows = chunk_rows
        self._dtype = dtype
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def append(self, intensity_rows, expected: list[dict | None] | None = None) -> None:
        """Append ``[k, n]`` (or one ``[n]``) rows and, optionally, their ``k`` ground-truth objects."""
        rows = np.asarray(intensity_rows)
        if rows.ndim == 1:
            rows = rows[None, :]
        where = f"{self._writer.path}, entry {self.name!r}"
        if rows.ndim != 2 or rows.shape[1] != self._n:
            raise FormatError(f"{where}: rows of shape {rows.shape} do not fit the axis of {self._n} points")
        if expected is not None and len(expected) != rows.shape[0]:
            raise FormatError(f"{where}: {len(expected)} expected objects for {rows.shape[0]} rows")
        start = self._len

        def build(f: h5py.File) -> None:
            group = f.create_group(self.name)
            group.attrs["start"] = np.int64(start)
            group.create_dataset("intensity", data=rows.astype(self._dtype, copy=False))
            if expected is not None:
                group.create_dataset("expected", data=[_json(e) for e in expected], dtype=h5py.string_dtype())

        self._writer._record("rows", build)
        self._len += rows.shape[0]
        self._writer._rows[self.name] = (self._len, True)
