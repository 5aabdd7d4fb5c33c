"""The CLI as a user meets it: exit codes, one-line errors (never a traceback), identify and
replay on real files, and a recording written by hand with h5py per the format page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fol.io.importers import read_spectra_file

from conftest import REAL
SUBSTANCES = ["fentanyl", "caffeine", "xylazine", "d_mannitol", "heroin"]


def fol(*args, env=None):
    """Run the real console entry point in a fresh process."""
    e = dict(os.environ, **(env or {}))
    e.pop("FOL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "fol", *map(str, args)], capture_output=True, text=True, env=e,
                          timeout=120)


@pytest.fixture(scope="module")
def hand_written_recording(tmp_path_factory, enfsi_library):
    """A stacked entry written with plain h5py exactly as recording-format.md shows it:
    decreasing axis, percent transmittance, float32, expected as an array of JSON strings."""
    rows, expected = [], []
    x = None
    for stem in SUBSTANCES:
        [(name, spec)] = read_spectra_file(REAL / "enfsi_ir" / f"{stem}.json")
        grid = np.arange(3990.0, 660.0, -2.0)  # decreasing, as FTIR software stores it
        a = np.interp(grid, spec.wavenumber, spec.intensity)
        rows.append(100.0 * 10 ** (-(a + 0.05)))  # %T with a small offset
        expected.append(json.dumps({name: None}))
        x = grid
    path = tmp_path_factory.mktemp("rec") / "by_hand.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "fol-recording"
        f.attrs["format_version"] = 1
        f.attrs["created"] = "2026-03-01T12:00:00Z"
        e = f.create_group("stack_a")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["start_time"] = "2026-03-01T12:00:00Z"
        ins = e.create_group("instrument")
        ins.attrs["NX_class"] = "NXinstrument"
        ins.attrs["technique"] = "ftir"
        s = e.create_group("sample")
        s.attrs["NX_class"] = "NXsample"
        s.create_dataset("expected", data=np.array(expected, dtype=object), dtype=h5py.string_dtype())
        d = e.create_group("data")
        d.attrs.update(NX_class="NXdata", signal="intensity", axes="wavenumber")
        d.create_dataset("wavenumber", data=x).attrs["units"] = "1/cm"
        d.create_dataset("intensity", data=np.array(rows, dtype=np.float32)).attrs["units"] = "transmittance"
    return path


def test_version_and_help():
    r = fol("--version")
    assert r.returncode == 0 and r.stdout.startswith("fol ")
    r = fol("--help")
    assert r.returncode == 0
    for cmd in ("identify", "replay", "simulate", "library", "devices"):
        assert cmd in r.stdout


@pytest.mark.parametrize("args,code,needle", [
    (["identify", "--file", "/nonexistent/rec.h5", "--library", "LIB"], 1, "/nonexistent/rec.h5"),
    (["identify"], 2, "one of the arguments"),
    (["identify", "--file", "x.h5", "--bogus"], 2, "unrecognized"),
    (["library", "info", "/nonexistent/lib.h5"], 1, "library file not found"),
    (["replay", "/nonexistent/a.h5", "--library", "LIB"], 0, "a.h5"),
])
def test_errors_are_one_line_without_traceback(args, code, needle, enfsi_library):
    r = fol(*[enfsi_library if a == "LIB" else a for a in args])
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert needle in r.stderr + r.stdout


def test_missing_library_is_a_clear_error(enfsi_library, hand_written_recording):
    r = fol("identify", "--file", hand_written_recording, "--library", "/nonexistent/lib.h5")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "/nonexistent/lib.h5: library file not found" in r.stderr


def test_garbage_file_is_a_clear_error(tmp_path, enfsi_library):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"\x00garbage" * 100)
    r = fol("identify", "--file", bad, "--library", enfsi_library)
    assert r.returncode == 1 and "Traceback" not in r.stderr and str(bad) in r.stderr


def test_hand_written_recording_identifies_and_replays(tmp_path, enfsi_library, hand_written_recording):
    r = fol("identify", "--file", hand_written_recording, "--index", 2, "--library", enfsi_library, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["components"][0]["name"] == "xylazine" and res["alarm"] is True
    assert res["technique"] == "ftir" and res["index"] == 2 and res["entry"] == "stack_a"
    out = tmp_path / "out.jsonl"
    r = fol("replay", hand_written_recording, "--library", enfsi_library, "--json", out)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert [x["index"] for x in lines] == list(range(len(SUBSTANCES)))
    assert [x["components"][0]["name"] for x in lines] == ["fentanyl", "caffeine", "xylazine", "mannitol", "heroin"]
    assert "top-1 accuracy on single-substance samples: 100.0% (5/5)" in r.stdout


def test_human_output_shows_alarm_and_provenance(enfsi_library, hand_written_recording):
    r = fol("identify", "--file", hand_written_recording, "--library", enfsi_library)
    assert r.returncode == 0, r.stderr
    assert "ALARM: FENTANYL-ANALOGUE" in r.stdout and "fentanyl" in r.stdout and "imported:" in r.stdout


def test_record_then_identify_file_gives_the_same_result(tmp_path, enfsi_library, hand_written_recording):
    rec = tmp_path / "rec.h5"
    r1 = fol("identify", "--file", hand_written_recording, "--index", 1, "--library", enfsi_library, "--json",
             "--record", rec)
    assert r1.returncode == 0, r1.stderr
    r2 = fol("identify", "--file", rec, "--library", enfsi_library, "--json")
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    for k in ("source", "entry", "index"):  # where the spectrum was read from differs by design
        a.pop(k), b.pop(k)
    assert a == b
    with h5py.File(rec) as f:
        [entry] = [g for g in f.values()]
        stored = json.loads(entry["results/result"][()])
    assert stored["components"] == a["components"]


def test_library_info_list_verify_export(tmp_path, enfsi_library):
    r = fol("library", "info", enfsi_library)
    assert r.returncode == 0 and "67 entries" in r.stdout and "imported" in r.stdout
    r = fol("library", "list", enfsi_library)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 67
    assert fol("library", "verify", enfsi_library).returncode == 0
    r = fol("library", "export", enfsi_library, "--format", "jcamp", "--out", tmp_path / "x")
    assert r.returncode == 0 and len(list((tmp_path / "x").glob("*.jdx"))) == 67
    # the exported JCAMP files import again, to the same names
    r = fol("library", "import", *sorted((tmp_path / "x").glob("*.jdx"))[:5], "--out", tmp_path / "re.h5")
    assert r.returncode == 0, r.stderr
    tampered = tmp_path / "tampered.h5"
    tampered.write_bytes(Path(enfsi_library).read_bytes())
    with h5py.File(tampered, "r+") as f:
        f["ftir/raw"][0, 0] += 1
    r = fol("library", "verify", tampered)
    assert r.returncode == 1 and "SHA-256" in r.stderr and "Traceback" not in r.stderr


def test_identify_through_the_simulated_analyzer_and_real_driver(tmp_path, enfsi_library):
    rec = tmp_path / "sim.h5"
    r = fol("identify", "--simulate", "caffeine:0.8,xylazine:0.2", "--technique", "ftir", "--seed", "5",
            "--library", enfsi_library, "--json", "--record", rec)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["alarm"] and "xylazine-class" in res["alarm_classes"]
    assert {c["name"] for c in res["components"]} >= {"caffeine", "xylazine"}
    with h5py.File(rec) as f:  # raw spectrum, device metadata and the result are all recorded
        [entry] = list(f.values())
        assert entry["instrument"].attrs["technique"] == "ftir" and "maker" in entry["instrument"].attrs
        assert json.loads(entry["results/result"][()])["components"] == res["components"]
