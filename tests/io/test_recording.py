"""Recordings: round trips, files written by other tools, malformed files, streaming, appending."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import h5py
import numpy as np
import pytest

from fol.errors import FormatError
from fol.io.recording import Recording, RecordingWriter, read_spectrum
from fol.spectrum import Spectrum, SpectrumBatch

N = 300
AXIS = np.linspace(200.0, 1800.0, N)


def _peaks(centres, x=AXIS, width=12.0):
    return sum(np.exp(-0.5 * ((x - c) / width) ** 2) for c in centres) + 0.05


# ----------------------------------------------------------------------------- round trips


def test_single_spectrum_round_trip(tmp_path):
    path = tmp_path / "rec.h5"
    rng = np.random.default_rng(1)
    y = 1000 * _peaks([400, 1000, 1600]) + rng.normal(0, 3, N)
    meta = {"maker": "Acme", "model": "R1", "serial": "SN7", "firmware": "2.1", "excitation_wavelength_nm": 785.0,
            "averages": 4, "integration_time_ms": 250.0, "acquired_utc": "2026-03-01T12:00:00.000001Z",
            "device_errors": [[202, "Detector saturated"]], "not_an_attribute": "dropped"}
    spectrum = Spectrum(AXIS, y, "raman", "counts", meta)
    result = {"format_version": 1, "verdict": "identified", "fol_version": "9.9", "library": {"sha256": "abc"}}
    with RecordingWriter(path, "w") as w:
        name = w.add_spectrum(spectrum, sample={"sample_id": "S-1", "case_id": "C-9"},
                              expected={"Diamorphine": 0.25, "MANNITOL": 0.75, "unobtainium": None}, result=result)
    assert name == "scan_0000"

    with Recording(path) as rec:
        (info,) = rec.entries
        assert (info.name, info.n_rows, info.n_points, info.stacked, info.technique, info.unit) == \
            ("scan_0000", 1, N, False, "raman", "counts")
        assert info.start_time == "2026-03-01T12:00:00.000001Z"
        assert info.instrument == {"maker": "Acme", "model": "R1", "serial": "SN7", "firmware": "2.1",
                                   "excitation_wavelength_nm": 785.0, "averages": 4, "integration_time_ms": 250.0,
                                   "technique": "raman"}
        assert info.sample == {"sample_id": "S-1", "case_id": "C-9"}
        chunk = rec.read("scan_0000")
    assert chunk.start == 0 and len(chunk.batch) == 1
    np.testing.assert_array_equal(chunk.batch.wavenumber, AXIS)
    np.testing.assert_array_equal(chunk.batch.intensity[0], spectrum.intensity)
    assert chunk.expected == [{"heroin": 0.25, "mannitol": 0.75, "unobtainium": None}]
    assert chunk.results == [result]
    assert chunk.device_errors == [[202, "Detector saturated"]]

    back, info2 = read_spectrum(path)
    assert info2 == info
    np.testing.assert_array_equal(back.intensity, spectrum.intensity)
    assert back.metadata["entry"] == "scan_0000" and back.metadata["source"] == str(path)
    assert back.metadata["acquired_utc"] == "2026-03-01T12:00:00.000001Z"
    assert back.metadata["device_errors"] == [[202, "Detector saturated"]]
    assert back.metadata["serial"] == "SN7" and back.metadata["sample_id"] == "S-1"

    with h5py.File(path, "r") as f:  # what a NeXus viewer needs, and the creation time
        assert f.attrs["created"].endswith("Z") and f.attrs["format_version"] == 1
        data = f["scan_0000/data"]
        assert (data.attrs["NX_class"], data.attrs["signal"], data.attrs["axes"]) == ("NXdata", "intensity", "wavenumber")
        assert data["wavenumber"].attrs["units"] == "1/cm" and data["wavenumber"].dtype == np.float64
        assert f["scan_0000/results"].attrs["library_sha256"] == "abc"


def test_stack_round_trip_keeps_invalid_rows_and_missing_truth(tmp_path):
    path = tmp_path / "stack.h5"
    rows = np.stack([_peaks([300 + 100 * i]) for i in range(6)])
    rows[3] = np.nan  # a dead row must not lose the stack
    batch = SpectrumBatch(AXIS, rows, "ftir", "absorbance", {"model": "F2"})
    expected = [{"fentanyl": 0.1, "lactose": 0.9}, None, {}, {"Xylazine": None}, None, {"caffeine": 1}]
    results = [{"index": i, "verdict": "mixture"} for i in range(6)]
    with RecordingWriter(path, "w") as w:
        name = w.add_stack(batch, name="qa_run", start_time="2026-03-02T08:00:00Z", expected=expected, results=results)
    assert name == "qa_run"
    with Recording(path) as rec:
        chunk = rec.read("qa_run")
        info = rec.entries[0]
    assert info.stacked and info.n_rows == 6 and info.instrument == {"model": "F2", "technique": "ftir"}
    np.testing.assert_array_equal(chunk.batch.intensity, batch.intensity)
    assert chunk.batch.invalid == {3: "intensities are all NaN"}
    assert chunk.expected == [{"fentanyl": 0.1, "lactose": 0.9}, None, {}, {"xylazine": None}, None, {"caffeine": 1.0}]
    assert chunk.results == results
    with h5py.File(path, "r") as f:
        assert list(f["qa_run/data"].attrs["axes"]) == [".", "wavenumber"]
    with pytest.raises(FormatError, match=r"stack\.h5, entry 'qa_run', row 3: intensities are all NaN"):
        read_spectrum(path, "qa_run", 3)
    assert read_spectrum(path, "qa_run", 4)[0].intensity.shape == (N,)


def test_raw_transmittance_is_stored_as_transmittance(tmp_path):
    path = tmp_path / "t.h5"
    spectrum = Spectrum(AXIS, 100 * 10 ** -_peaks([700, 1200]), "ftir", "transmittance")
    with RecordingWriter(path) as w:
        w.add_spectrum(spectrum, raw_unit="transmittance")
        with pytest.raises(FormatError, match="cannot store a absorbance spectrum as 'counts'"):
            w.add_spectrum(spectrum, raw_unit="counts")
    with Recording(path) as rec:
        assert rec.entries[0].unit == "transmittance"
    back, _ = read_spectrum(path)
    np.testing.assert_allclose(back.intensity, spectrum.intensity, rtol=1e-12)


def test_set_results_overwrites_and_checks_length(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path) as w:
        name = w.add_stack(SpectrumBatch(AXIS, np.stack([_peaks([500]), _peaks([900])]), "raman", "counts"))
        w.set_results(name, [{"v": 1}, {"v": 2}], {"fol_version": "0.1.0", "library_sha256": "aa"})
        w.set_results(name, [{"v": 3}, {"v": 4}], {"fol_version": "0.1.0", "library_sha256": "bb"})
        with pytest.raises(FormatError, match="1 results for 2 rows"):
            w.set_results(name, [{"v": 5}], {})
    with Recording(path) as rec:
        assert rec.read(name).results == [{"v": 3}, {"v": 4}]
    with h5py.File(path, "r") as f:
        assert f[f"{name}/results"].attrs["library_sha256"] == "bb"


# ----------------------------------------------------------------------------- files written by other tools


def _write_foreign(path, *, transmittance=None, entry_attrs=None):
    """A recording written with plain h5py the way another tool might: bytes attributes,
    fixed-length strings, decreasing axis, percent transmittance, float32 stack."""
    x = AXIS[::-1].copy()
    t = (100 * 10 ** -np.stack([_peaks([600]), _peaks([1100]), _peaks([1500])])[:, ::-1]).astype(np.float32)
    if transmittance is not None:
        t = transmittance
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_(b"fol-recording")
        f.attrs["format_version"] = np.int32(1)
        f.attrs["created"] = np.bytes_(b"2026-03-01T00:00:00Z")
        f.create_group("calibration").attrs["NX_class"] = np.bytes_(b"NXcollection")  # not an entry: ignored
        for name, start in (("b_late", "2026-03-01T12:00:00Z"), ("a_stack", "2026-03-01T10:00:00+00:00"),
                            ("c_tie", "2026-03-01T12:00:00Z")):
            e = f.create_group(name)
            e.attrs["NX_class"] = np.bytes_(b"NXentry")
            e.attrs["start_time"] = np.bytes_(start.encode())
            inst = e.create_group("instrument")
            inst.attrs["NX_class"] = np.bytes_(b"NXinstrument")
            inst.attrs["technique"] = np.bytes_(b"FTIR")
            inst.attrs["maker"] = np.bytes_(b"OtherCo")
            inst.attrs["resolution_cm1"] = np.float32(4.0)
            sample = e.create_group("sample")
            sample.attrs["operator"] = "J. Doe"
            data = e.create_group("data")
            data.attrs["NX_class"] = np.bytes_(b"NXdata")
            data.create_dataset("wavenumber", data=x).attrs["units"] = np.bytes_(b"1/cm")
            if name == "a_stack":
                data.create_dataset("intensity", data=t).attrs["units"] = np.bytes_(b"transmittance")
                sample.create_dataset("expected", data=np.array(
                    [b'{"Diamorphine": 0.3, "Lactose": 0.7}', b"{}", b'{"FENTANYL": null}'], dtype="S64"))
                data.create_dataset("device_errors", data=np.bytes_(b'[[203, "Detector not at temperature"]]'))
            else:
                data.create_dataset("intensity", data=t[0].astype(np.float64)).attrs["units"] = "Transmittance"
                sample.create_dataset("expected", data=np.bytes_(b'{"caffeine": 1.0}'))
            e.attrs.update(entry_attrs or {})


def test_reads_file_written_by_another_tool(tmp_path):
    path = tmp_path / "foreign.h5"
    _write_foreign(path)
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["a_stack", "b_late", "c_tie"]  # start_time order, ties by name
        info = rec.entries[0]
        assert (info.stacked, info.n_rows, info.n_points, info.technique, info.unit) == (True, 3, N, "ftir", "transmittance")
        assert info.instrument == {"technique": "ftir", "maker": "OtherCo", "resolution_cm1": 4.0}
        assert info.sample == {"operator": "J. Doe"}
        chunk = rec.read("a_stack")
        single = rec.read("b_late")
    np.testing.assert_array_equal(chunk.batch.wavenumber, AXIS)  # flipped to increasing
    expected_a = -np.log10(np.float32(100 * 10 ** -_peaks([600])).astype(np.float64) / 100)
    np.testing.assert_allclose(chunk.batch.intensity[0], expected_a, rtol=1e-12)
    np.testing.assert_allclose(chunk.batch.intensity[1], _peaks([1100]), rtol=1e-6)
    assert chunk.batch.unit == "absorbance" and chunk.batch.metadata["maker"] == "OtherCo"
    assert chunk.expected == [{"heroin": 0.3, "lactose": 0.7}, {}, {"fentanyl": None}]
    assert chunk.results is None
    assert chunk.device_errors == [[203, "Detector not at temperature"]]
    assert single.expected == [{"caffeine": 1.0}] and single.entry.unit == "transmittance"
    spectrum, info = read_spectrum(path, "c_tie")
    np.testing.assert_allclose(spectrum.intensity, _peaks([600]), rtol=1e-6)


# ----------------------------------------------------------------------------- malformed files


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def _replace(group, name, data, **attrs):
    del group[name]
    group.create_dataset(name, data=data).attrs.update(attrs)


MALFORMED = {
    "no intensity": (lambda f: f["a_stack/data"].__delitem__("intensity"), "no data/intensity"),
    "no wavenumber": (lambda f: f["a_stack/data"].__delitem__("wavenumber"), "no data/wavenumber"),
    "shape mismatch": (lambda f: _replace(f["a_stack/data"], "intensity", np.ones((3, N - 1)), units="counts"),
                       "does not match wavenumber length"),
    "3-D intensity": (lambda f: _replace(f["a_stack/data"], "intensity", np.ones((2, 3, N)), units="counts"),
                      "does not match wavenumber length"),
    "2-D axis": (lambda f: _replace(f["a_stack/data"], "wavenumber", np.ones((2, N)), units="1/cm"), "must be 1-D"),
    "non-monotonic axis": (lambda f: _replace(f["a_stack/data"], "wavenumber", np.r_[AXIS[:100], AXIS[150:], AXIS[100:150]]),
                           "non-monotonic"),
    "repeated axis": (lambda f: _replace(f["a_stack/data"], "wavenumber", np.r_[AXIS[:10], AXIS[9:-1]]), "repeated"),
    "short axis": (lambda f: (_replace(f["a_stack/data"], "wavenumber", AXIS[:20]),
                              _replace(f["a_stack/data"], "intensity", np.ones((3, 20)), units="counts")), "at least 64"),
    "missing technique": (lambda f: f["a_stack/instrument"].attrs.__delitem__("technique"), "no instrument/technique"),
    "unknown technique": (lambda f: f["a_stack/instrument"].attrs.__setitem__("technique", "nmr"), "unknown technique"),
    "unknown unit": (lambda f: f["a_stack/data/intensity"].attrs.__setitem__("units", "volts"), "unknown intensity unit"),
    "missing unit": (lambda f: f["a_stack/data/intensity"].attrs.__delitem__("units"), "no units attribute"),
    "expected length": (lambda f: _replace(f["a_stack/sample"], "expected", np.array([b"{}", b"{}"])), "but the stack has 3"),
    "bad start_time": (lambda f: f["a_stack"].attrs.__setitem__("start_time", "yesterday"), "not an ISO 8601"),
}

MALFORMED_ON_READ = {
    "malformed expected JSON": (lambda f: _replace(f["a_stack/sample"], "expected", np.array([b"{}", b"{'a': 1", b"{}"])),
                                "sample/expected row 1: malformed JSON"),
    "expected not an object": (lambda f: _replace(f["a_stack/sample"], "expected", np.array([b"{}", b"{}", b"[1, 2]"])),
                               "row 2: expected a JSON object"),
    "bad fraction": (lambda f: _replace(f["a_stack/sample"], "expected", np.array([b"{}", b'{"caffeine": "lots"}', b"{}"])),
                     "must be a number or null"),
    "two spellings": (lambda f: _replace(f["a_stack/sample"], "expected", np.array([b'{"heroin": 0.5, "Diamorphine": 0.5}', b"{}", b"{}"])),
                      "both mean 'heroin'"),
    "malformed result JSON": (lambda f: f["a_stack"].create_group("results").create_dataset("result", data=np.array([b"{}", b"{}", b"nope"])),
                              "results/result row 2: malformed JSON"),
    "malformed device_errors": (lambda f: _replace(f["a_stack/data"], "device_errors", np.bytes_(b"[[1, 2, 3]]")),
                                "device_errors must be a JSON list"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_entry_is_refused_naming_file_and_entry(tmp_path, case):
    path = tmp_path / "bad.h5"
    _write_foreign(path)
    _edit(path, MALFORMED[case][0])
    with pytest.raises(FormatError) as err:
        Recording(path)
    msg = str(err.value)
    assert str(path) in msg and "entry 'a_stack'" in msg and MALFORMED[case][1] in msg


@pytest.mark.parametrize("case", sorted(MALFORMED)[:3])
def test_skip_invalid_leaves_the_bad_entry_out_and_says_why(tmp_path, case):
    path = tmp_path / "bad.h5"
    _write_foreign(path)
    _edit(path, MALFORMED[case][0])
    with Recording(path, skip_invalid=True) as rec:
        assert "a_stack" not in [e.name for e in rec.entries]
        [(name, msg)] = rec.skipped
        assert name == "a_stack" and str(path) in msg and MALFORMED[case][1] in msg


@pytest.mark.parametrize("case", sorted(MALFORMED_ON_READ))
def test_malformed_json_is_refused_on_read(tmp_path, case):
    path = tmp_path / "bad.h5"
    _write_foreign(path)
    _edit(path, MALFORMED_ON_READ[case][0])
    with Recording(path) as rec:
        with pytest.raises(FormatError) as err:
            list(rec.iter_chunks())
    msg = str(err.value)
    assert str(path) in msg and "entry 'a_stack'" in msg and MALFORMED_ON_READ[case][1] in msg


@pytest.mark.parametrize("attrs, problem", [
    ({}, "root attribute 'format' is missing"),
    ({"format": "fol-library", "format_version": 1}, "format is 'fol-library'"),
    ({"format": "fol-recording", "format_version": 2}, "unsupported format_version 2"),
    ({"format": "fol-recording"}, "unsupported format_version None"),
])
def test_wrong_root_attributes_are_refused(tmp_path, attrs, problem):
    path = tmp_path / "root.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
    with pytest.raises(FormatError, match=problem) as err:
        Recording(path)
    assert str(path) in str(err.value)


def test_not_hdf5_and_missing_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(FormatError, match="not a readable HDF5 file"):
        Recording(text)
    with pytest.raises(FormatError, match="no such file"):
        Recording(tmp_path / "absent.h5")


def test_single_entry_that_is_all_nan_or_zero_is_an_error_for_read_spectrum(tmp_path):
    path = tmp_path / "dead.h5"
    zeros = np.zeros(N, dtype=np.float32)
    _write_foreign(path, transmittance=np.full((3, N), np.nan, dtype=np.float32))
    _edit(path, lambda f: _replace(f["b_late/data"], "intensity", zeros, units="counts"))
    with Recording(path) as rec:
        assert rec.read("a_stack").batch.invalid == {0: "intensities are all NaN", 1: "intensities are all NaN",
                                                      2: "intensities are all NaN"}
        assert rec.read("b_late").batch.invalid == {0: "intensities are all zero"}
    with pytest.raises(FormatError, match=r"dead\.h5, entry 'b_late': intensities are all zero"):
        read_spectrum(path, "b_late")
    with pytest.raises(FormatError, match="no entry 'nope'"):
        read_spectrum(path, "nope")


# ----------------------------------------------------------------------------- streaming


def test_iter_chunks_streams_a_large_stack_in_order_with_bounded_memory(tmp_path):
    path = tmp_path / "big.h5"
    m, n = 10_000, 512
    x = np.linspace(100.0, 3200.0, n)
    with RecordingWriter(path, "w") as w:
        appender = w.create_stack("big", x, "raman", "counts", chunk_rows=500)
        for start in range(0, m, 1500):  # appends that do not line up with the chunks
            k = min(1500, m - start)
            rows = np.arange(start, start + k, dtype=np.float32)[:, None] + 1 + np.zeros((k, n), np.float32)
            appender.append(rows, expected=[{"caffeine": (start + i) / m} for i in range(k)] if start else None)
        assert len(appender) == m
    full_bytes = m * n * 8
    seen, starts, sizes, truth = [], [], [], []
    tracemalloc.start()
    with Recording(path) as rec:
        assert rec.entries[0].n_rows == m
        for chunk in rec.iter_chunks(chunk_rows=128):
            starts.append(chunk.start)
            sizes.append(len(chunk.batch))
            seen.append(chunk.batch.intensity[:, 0] - 1)
            truth += [None if e is None else e["caffeine"] * m for e in chunk.expected]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(m))
    assert truth[:1500] == [None] * 1500  # rows appended before any ground truth have none
    np.testing.assert_allclose(truth[1500:], np.arange(1500, m))
    assert starts == list(range(0, m, 128)) and max(sizes) == 128 and sizes[-1] == m % 128 and sum(sizes) == m
    assert peak < full_bytes / 8, f"peak {peak / 1e6:.1f} MB for a {full_bytes / 1e6:.0f} MB stack"


# ----------------------------------------------------------------------------- appending and crashes


def test_append_keeps_earlier_entries_and_w_truncates(tmp_path):
    path = tmp_path / "day.h5"
    with RecordingWriter(path) as w:  # "a" creates a missing file
        assert w.add_spectrum(Spectrum(AXIS, _peaks([500]), "raman")) == "scan_0000"
        assert w.add_spectrum(Spectrum(AXIS, _peaks([600]), "raman")) == "scan_0001"
    with RecordingWriter(path, "a") as w:
        assert w.add_spectrum(Spectrum(AXIS, _peaks([700]), "raman")) == "scan_0002"
        with pytest.raises(FormatError, match="entry 'scan_0001' already exists"):
            w.add_spectrum(Spectrum(AXIS, _peaks([700]), "raman"), name="scan_0001")
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["scan_0000", "scan_0001", "scan_0002"]
        peaks = [AXIS[np.argmax(rec.read(e).batch.intensity[0])] for e in rec.entries]
    np.testing.assert_allclose(peaks, [500, 600, 700], atol=6)
    with RecordingWriter(path, "w") as w:
        w.add_spectrum(Spectrum(AXIS, _peaks([800]), "raman"))
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["scan_0000"]


def test_append_refuses_a_file_that_is_not_a_recording(tmp_path):
    other = tmp_path / "library.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "fol-library"
    with pytest.raises(FormatError, match="not a fol recording"):
        RecordingWriter(other, "a")
    with h5py.File(other, "r") as f:
        assert f.attrs["format"] == "fol-library" and len(f) == 0
    text = tmp_path / "notes.txt"
    text.write_text("keep me")
    with pytest.raises(FormatError, match="cannot open for writing"):
        RecordingWriter(text, "a")
    assert text.read_text() == "keep me"


CRASHING_WRITER = """
import os, sys, numpy as np
from fol.io.recording import RecordingWriter
from fol.spectrum import Spectrum
x = np.linspace(200, 1800, 300)
w = RecordingWriter(sys.argv[1], "w")
w.add_spectrum(Spectrum(x, np.exp(-((x - 900) / 20) ** 2) + 0.1, "raman"), result={"verdict": "identified"})
app = w.create_stack("stream", x, "raman", "counts")
app.append(np.ones((5, 300)))
os._exit(3)  # dies without closing the file
"""


def test_a_crash_leaves_a_valid_file_with_everything_flushed(tmp_path):
    path = tmp_path / "crash.h5"
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    with Recording(path) as rec:
        assert [(e.name, e.n_rows) for e in rec.entries] == [("scan_0000", 1), ("stream", 5)]
        assert rec.read("scan_0000").results == [{"verdict": "identified"}]


def test_default_start_times_keep_write_order(tmp_path):
    path = tmp_path / "order.h5"
    with RecordingWriter(path) as w:
        names = [w.add_spectrum(Spectrum(AXIS, _peaks([500]), "raman"), name=n) for n in ("z", "y", "x", "w")]
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == names
        times = [e.start_time for e in rec.entries]
    assert times == sorted(set(times)) and all(t.endswith("Z") and "." in t for t in times)


def test_expected_written_as_json_strings(tmp_path):
    """The stored strings are plain JSON, one object per row, readable without fol."""
    path = tmp_path / "j.h5"
    batch = SpectrumBatch(AXIS, np.stack([_peaks([500]), _peaks([900])]), "raman", "counts")
    with RecordingWriter(path) as w:
        w.add_stack(batch, name="s", expected=[{"fentanyl": 0.05, "mannitol": 0.95}, None])
    with h5py.File(path, "r") as f:
        texts = f["s/sample/expected"].asstr()[()]
    assert [json.loads(t) for t in texts] == [{"fentanyl": 0.05, "mannitol": 0.95}, None]


def test_a_failed_add_leaves_no_partial_entry(tmp_path):
    path = tmp_path / "partial.h5"
    with RecordingWriter(path) as w:
        w.add_spectrum(Spectrum(AXIS, _peaks([500]), "raman"))
        with pytest.raises(FormatError, match="repeated"):
            w.create_stack("bad_axis", np.r_[AXIS[:10], AXIS[9:]], "raman", "counts")
        with pytest.raises(TypeError):
            w.add_spectrum(Spectrum(AXIS, _peaks([600]), "raman"), name="bad_attr", instrument={"maker": {"a": 1}})
        appender = w.create_stack("stream", AXIS, "raman", "counts")
        appender.append(np.ones((2, N)))
        with pytest.raises(FormatError, match="rows of shape"):
            appender.append(np.ones((2, N - 1)))
        with pytest.raises(FormatError, match="1 expected objects for 2 rows"):
            appender.append(np.ones((2, N)), expected=[{}])
    with Recording(path) as rec:
        assert [(e.name, e.n_rows) for e in rec.entries] == [("scan_0000", 1), ("stream", 2)]
