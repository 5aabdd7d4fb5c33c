"""Malformed recordings: each one refused in one line naming the file, in bounded time and memory.

Every case builds a broken file; a forked child (memory limited to 1.5 GiB more than it
already uses) opens it with ``Recording``, reads every chunk of every entry and asks
``read_spectrum`` for the first spectrum, with a timeout. The only acceptable outcomes:
a ``FormatError`` whose message is one line, starts with the path and is short, or (for
``ACCEPTED`` cases) a clean read. A hang, a traceback of any other exception, or the
memory limit is a failure.
"""

from __future__ import annotations

import os
import traceback

import h5py
import numpy as np
import pytest

from builders import run_bounded

from fol.errors import FormatError
from fol.io.recording import Recording, RecordingWriter, read_spectrum
from fol.spectrum import Spectrum

AXIS = np.linspace(200.0, 1800.0, 256)
CASE_TIMEOUT_S = 20


def _read_everything(path: str) -> tuple[str, str]:
    try:
        with Recording(path) as rec:
            for _ in rec.iter_chunks(64):
                pass
            damaged = rec.damage_report
        read_spectrum(path)
        return "ok", damaged
    except FormatError as e:
        return "FormatError", str(e)
    except BaseException as e:  # noqa: BLE001 - the test reports it
        return "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def outcome(path: str) -> tuple[str, str]:
    return run_bounded(_read_everything, str(path), timeout_s=CASE_TIMEOUT_S)


def good(path, n=3, **attrs) -> str:
    with RecordingWriter(path, "w") as w:
        for i in range(n):
            w.add_spectrum(Spectrum(AXIS, 100 + i + np.sin(AXIS / 40), "raman", "counts", {}), name=f"e{i}",
                           expected={"caffeine": 1.0})
    return str(path)


def _edit(path, fn) -> str:
    with h5py.File(path, "a") as f:
        fn(f)
    return str(path)


def _replace(group, name, **kw):
    if name in group:
        del group[name]
    group.create_dataset(name, **kw)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------- the table: name -> builder(tmp_path)


def _truncated(fraction):
    def build(tmp):
        path = good(tmp / "t.h5", n=8)
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            fh.truncate(int(size * fraction) if fraction < 1 else size - 1)
        return path
    return build


def _fifo(tmp):
    os.mkfifo(tmp / "fifo.h5")
    return str(tmp / "fifo.h5")


def _dir(tmp):
    (tmp / "adir.h5").mkdir()
    return str(tmp / "adir.h5")


def _external_link(target_fifo: bool):
    def build(tmp):
        other = tmp / "other.h5"
        if target_fifo:
            os.mkfifo(other)
        else:
            good(other)
        path = good(tmp / "x.h5")
        return _edit(path, lambda f: (f["e1"].__delitem__("data"), f["e1"].__setitem__(
            "data", h5py.ExternalLink(str(other), "/e0/data"))))
    return build


def _external_storage(target_fifo: bool):
    def build(tmp):
        raw = tmp / "raw.bin"
        if target_fifo:
            os.mkfifo(raw)
        else:
            raw.write_bytes(np.arange(256, dtype="<f8").tobytes())
        path = good(tmp / "x.h5")
        return _edit(path, lambda f: _replace(f["e0/data"], "intensity", shape=(256,), dtype="<f8",
                                              external=[(str(raw), 0, 256 * 8)]))
    return build


def _soft_loop(tmp):
    path = good(tmp / "x.h5")

    def fn(f):
        del f["e1/data"]
        f["e1"]["data"] = h5py.SoftLink("/e1/loop")
        f["e1"]["loop"] = h5py.SoftLink("/e1/data")
    return _edit(path, fn)


def _virtual(tmp):
    other = good(tmp / "other.h5")
    path = good(tmp / "x.h5")

    def fn(f):
        layout = h5py.VirtualLayout(shape=(256,), dtype="f8")
        layout[:] = h5py.VirtualSource(other, "e0/data/intensity", shape=(256,))
        del f["e0/data/intensity"]
        ds = f["e0/data"].create_virtual_dataset("intensity", layout)
        ds.attrs["units"] = "counts"
    return _edit(path, fn)


def _bitflips(seed):
    def build(tmp):
        path = good(tmp / "x.h5", n=20)
        rng = np.random.default_rng(seed)
        data = bytearray(open(path, "rb").read())
        for at in rng.integers(0, len(data), size=64):
            data[at] ^= 1 << int(rng.integers(0, 8))
        open(path, "wb").write(bytes(data))
        return path
    return build


def _attr(where, name, value):
    def build(tmp):
        return _edit(good(tmp / "x.h5"), lambda f: f[where].attrs.__setitem__(name, value) if where != "/" else
                     f.attrs.__setitem__(name, value))
    return build


def _dataset(where, name, **kw):
    def build(tmp):
        def fn(f):
            group = f[where]
            units = group[name].attrs.get("units") if name in group else None
            _replace(group, name, **kw)
            if units is not None:
                group[name].attrs["units"] = units
        return _edit(good(tmp / "x.h5"), fn)
    return build


def _string(where, name, text, dtype=None):
    return _dataset(where, name, data=text, dtype=dtype or h5py.string_dtype())


CASES = {
    "empty file": lambda tmp: (open(tmp / "e.h5", "wb").close(), str(tmp / "e.h5"))[1],
    "truncated at 8 bytes": _truncated(8 / 1e9),
    "truncated at 10%": _truncated(0.1),
    "truncated at 50%": _truncated(0.5),
    "truncated at 90%": _truncated(0.9),
    "truncated by 1 byte": _truncated(1.0),
    "a FIFO": _fifo,
    "a directory": _dir,
    "not HDF5 (text)": lambda tmp: ((tmp / "t.h5").write_text("wavenumber,intensity\n1,2\n"), str(tmp / "t.h5"))[1],
    "format missing": _attr("/", "format", "fol-library"),
    "format_version as text": _attr("/", "format_version", "1"),
    "format_version as bool": _attr("/", "format_version", True),
    "format_version array": _attr("/", "format_version", np.array([1, 1])),
    "intensity as strings": _dataset("e0/data", "intensity", data=np.array([b"x"] * 256)),
    "intensity as booleans": _dataset("e0/data", "intensity", data=np.ones(256, bool)),
    "intensity complex": _dataset("e0/data", "intensity", data=np.ones(256, complex)),
    "intensity 3-D": _dataset("e0/data", "intensity", data=np.ones((2, 2, 256))),
    "intensity wrong length": _dataset("e0/data", "intensity", data=np.ones(255)),
    "intensity null dataspace": _dataset("e0/data", "intensity", data=h5py.Empty("f8")),
    "wavenumber null dataspace": _dataset("e0/data", "wavenumber", data=h5py.Empty("f8")),
    "wavenumber 2-D": _dataset("e0/data", "wavenumber", data=np.ones((2, 128))),
    "wavenumber with NaN": _dataset("e0/data", "wavenumber", data=np.r_[AXIS[:-1], np.nan]),
    "wavenumber with inf": _dataset("e0/data", "wavenumber", data=np.r_[AXIS[:-1], np.inf]),
    "wavenumber near 1e300": _dataset("e0/data", "wavenumber", data=AXIS * 1e297),
    "wavenumber subnormal": _dataset("e0/data", "wavenumber", data=AXIS * 1e-320),
    "wavenumber huge declared": _dataset("e0/data", "wavenumber", shape=(1 << 33,), dtype="f8", chunks=(1 << 16,)),
    "stack huge declared": _dataset("e0/data", "intensity", shape=(1 << 30, 256), dtype="f4", chunks=(64, 256)),
    "intensities all NaN": _dataset("e0/data", "intensity", data=np.full(256, np.nan)),
    "intensities inf": _dataset("e0/data", "intensity", data=np.r_[np.ones(255), np.inf]),
    "intensities near 1e300": _dataset("e0/data", "intensity", data=np.full(256, 1e300) * np.linspace(0.5, 1, 256)),
    "unit as array": _attr("e0/data/intensity", "units", np.array([b"counts", b"counts"])),
    "technique not text": _attr("e0/instrument", "technique", 7),
    "huge attribute": _attr("e0/instrument", "serial", np.arange(5000, dtype=np.int8)),
    "expected deeply nested": _string("e0/sample", "expected", '{"a": ' + _nested(100_000) + "}"),
    "expected nested in objects": _string("e0/sample", "expected", '{"a":' * 50_000 + "1" + "}" * 50_000),
    "expected 2 MB": _string("e0/sample", "expected", '{"a": "' + "x" * (2 << 20) + '"}'),
    "expected not UTF-8": _string("e0/sample", "expected", np.array(b'{"caf\xe9ine": 1}'), dtype="S20"),
    "expected not JSON": _string("e0/sample", "expected", "{caffeine}"),
    "expected wrong type": _dataset("e0/sample", "expected", data=np.ones(3)),
    "device_errors deeply nested": _string("e0/data", "device_errors", _nested(200_000)),
    "start_time garbage": _attr("e0", "start_time", "yesterday"),
    "soft-link loop": _soft_loop,
    "external link": _external_link(False),
    "external link to a FIFO": _external_link(True),
    "external storage": _external_storage(False),
    "external storage on a FIFO": _external_storage(True),
    "virtual dataset": _virtual,
}
#: cases that may be read (the damage is in bytes HDF5 does not check) but must not crash or hang
MAY_READ = {"bit flips 1", "bit flips 2", "bit flips 3"}
CASES.update({f"bit flips {i}": _bitflips(i) for i in (1, 2, 3)})
#: cases whose broken part is a row: the file opens, read_spectrum of that row refuses it
WORDING = {"a FIFO": "is a FIFO", "a directory": "is a directory", "external link": "external link",
           "external link to a FIFO": "external link", "external storage": "external file",
           "external storage on a FIFO": "external file", "virtual dataset": "virtual dataset",
           "soft-link loop": "soft link", "format_version as text": "unsupported format_version",
           "format_version as bool": "unsupported format_version", "huge attribute": "not metadata",
           "wavenumber huge declared": "wavenumber", "stack huge declared": "far more than the file",
           "expected deeply nested": "nested", "expected nested in objects": "nested",
           "device_errors deeply nested": "nested", "expected not UTF-8": "not UTF-8",
           "intensities near 1e300": "not a measurement", "wavenumber subnormal": "not a spectrum axis",
           "wavenumber near 1e300": "not wavenumbers", "expected 2 MB": "characters"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_recording_is_refused_in_one_line(tmp_path, case):
    path = CASES[case](tmp_path)
    kind, message = outcome(path)
    if case in MAY_READ and kind == "ok":
        return
    assert kind == "FormatError", f"{case}: {kind}: {message}"
    assert message.startswith(str(path)), message
    assert "\n" not in message and len(message) < 600, message
    if case in WORDING:
        assert WORDING[case] in message, message


def test_the_good_file_of_the_table_is_read(tmp_path):
    assert outcome(good(tmp_path / "g.h5")) == ("ok", "")
