"""Crash safety of recordings: ``kill -9`` at random moments never loses a completed entry.

A writer process (kill_writer.py) appends spectra, results and stack rows to one
recording and prints each operation once the writer method has returned; it is killed
with SIGKILL at a random moment, restarted on the same file, killed again, and so on.
After every kill the recording (with whatever journal the kill left) must open, and
every operation printed before the kill must be in it, exactly.

Also: a recording damaged by other means (bytes overwritten in one entry's HDF5
structures) is reported in one line and every intact entry is still read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from fol.errors import FormatError
from fol.io.recording import Recording, RecordingWriter
from fol.io.recording_writer import JOURNAL_SUFFIX
from fol.spectrum import Spectrum

HERE = Path(__file__).parent
AXIS = np.linspace(200.0, 1800.0, 128)


def _run_and_kill(path: str, start: int, seed: int, rng: np.random.Generator) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "kill_writer.py"), path, str(start), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    assert first.strip() == "ready", proc.stderr.read()
    time.sleep(float(rng.uniform(0.0, 0.4)))
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    lines = out.splitlines()
    return lines[:-1] if out and not out.endswith("\n") else lines  # a line cut by the kill is not complete


def _check(path: str, done: dict, results: dict, rows: dict) -> None:
    with Recording(path) as rec:
        assert not rec.damaged, rec.damage_report
        names = {e.name for e in rec.entries}
        for name, k in done.items():
            assert name in names, f"completed entry {name} lost"
            chunk = rec.read(name)
            assert np.allclose(chunk.batch.intensity[0], k + AXIS / 1000.0)
        for name, k in results.items():
            assert rec.read(name).results == [{"verdict": "identified", "k": k}], name
        for name, total in rows.items():
            info = rec.entry(name)
            assert info.n_rows >= total, f"{name}: {info.n_rows} rows, {total} were completed"
            got = rec.read(name, 0, total).batch.intensity
            assert np.allclose(got, np.arange(total)[:, None] + AXIS / 1000.0)


def campaign(tmp_path, kills: int, seed: int) -> dict:
    path = str(tmp_path / "rec.h5")
    rng = np.random.default_rng(seed)
    done: dict[str, int] = {}
    results: dict[str, int] = {}
    rows: dict[str, int] = {}
    start = 0
    for i in range(kills):
        for line in _run_and_kill(path, start, seed + i, rng):
            kind, name, value = line.split()
            {"spectrum": done, "results": results, "rows": rows}[kind][name] = int(value)
            start = max(start, int(name.split("_")[1]) + 1)
        start += 1  # the entry being written when killed may or may not be there: never reuse its name
        if i % 5 == 4 or i == kills - 1:
            _check(path, done, results, rows)
            leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
            assert not leftovers, leftovers  # the reader's recovery cleaned what the kill left
    return {"kills": kills, "entries": len(done), "results": len(results), "stacks": len(rows)}


@pytest.mark.timeout(120)
def test_kill_9_at_random_moments_loses_no_completed_entry_quick(tmp_path):
    stats = campaign(tmp_path, kills=10, seed=1)
    assert stats["entries"] > 10, stats  # the writer did get work done between kills


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kill_9_hundreds_of_times_loses_no_completed_entry(tmp_path):
    stats = campaign(tmp_path, kills=300, seed=2)
    print(stats)
    assert stats["entries"] > 300


def test_journal_left_by_a_killed_writer_is_recovered_by_the_next_reader(tmp_path):
    path = str(tmp_path / "r.h5")
    w = RecordingWriter(path, "w")
    w.add_spectrum(Spectrum(AXIS, AXIS / 10, "raman", "counts", {}), name="first")
    # the process dies here: the entry is in the journal, the lock goes with the process
    w._journal.unlock()
    assert os.listdir(path + JOURNAL_SUFFIX)
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["first"]
    assert not os.path.exists(path + JOURNAL_SUFFIX)


def test_a_second_writer_waits_for_the_first_then_fails_naming_the_file(tmp_path):
    path = str(tmp_path / "r.h5")
    with RecordingWriter(path, "w"):
        with pytest.raises(FormatError, match=r"r\.h5: another process is writing this recording"):
            RecordingWriter(path, "a", lock_timeout=0.2)


def test_recording_is_never_modified_in_place(tmp_path):
    """Appending replaces the file whole (a new inode), so a reader of the old file is undisturbed."""
    path = str(tmp_path / "r.h5")
    with RecordingWriter(path, "w") as w:
        w.add_spectrum(Spectrum(AXIS, AXIS / 10, "raman", "counts", {}), name="a")
    before = os.stat(path)
    reader = Recording(path)
    with RecordingWriter(path, "a") as w:
        w.add_spectrum(Spectrum(AXIS, AXIS / 20, "raman", "counts", {}), name="b")
    assert os.stat(path).st_ino != before.st_ino
    assert [e.name for e in reader.entries] == ["a"] and reader.read("a").batch.intensity.shape == (1, 128)
    reader.close()
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["a", "b"]
        assert rec._file.attrs["fol_journal_seq"] >= 2


def _damaged_recording(tmp_path, n: int = 12, broken=(3, 7)) -> str:
    path = str(tmp_path / "damaged.h5")
    with RecordingWriter(path, "w") as w:
        for i in range(n):
            w.add_spectrum(Spectrum(AXIS, i + AXIS / 1000, "raman", "counts", {}), name=f"e{i:02d}")
    with h5py.File(path, "r") as f:
        addrs = [h5py.h5o.get_info(f[f"e{i:02d}/data"].id).addr for i in broken]
    with open(path, "r+b") as fh:
        for addr in addrs:  # the object headers of two entries' data groups
            fh.seek(addr)
            fh.write(b"\xa5" * 64)
    return path


def test_a_damaged_recording_is_reported_in_one_line_and_every_intact_entry_read(tmp_path, caplog):
    path = _damaged_recording(tmp_path)
    with Recording(path) as rec:
        report = rec.damage_report
        assert {n for n, _ in rec.damaged} == {"e03", "e07"}
        assert [e.name for e in rec.entries] == [f"e{i:02d}" for i in range(12) if i not in (3, 7)]
        for e in rec.entries:
            i = int(e.name[1:])
            assert np.allclose(rec.read(e).batch.intensity[0], i + AXIS / 1000)
    assert "\n" not in report and report.startswith(f"{path}: damaged: 2 entries cannot be read (e03, e07")
    assert report in caplog.text


def test_cli_reads_the_intact_entries_of_a_damaged_recording(tmp_path):
    path = _damaged_recording(tmp_path)
    run = subprocess.run([sys.executable, "-m", "fol", "identify", "--file", path, "--entry", "e05", "--json"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["entry"] == "e05"
    assert "damaged: 2 entries cannot be read" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_refused_targets_leave_nothing_behind(tmp_path):
    other = tmp_path / "lib.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "fol-library"
    with pytest.raises(FormatError, match="not a fol recording"):
        RecordingWriter(other, "a")
    with pytest.raises(FormatError, match="cannot open for writing \\(no directory"):
        RecordingWriter(tmp_path / "nodir" / "r.h5", "a")
    assert sorted(os.listdir(tmp_path)) == ["lib.h5"]


def test_a_new_recording_killed_before_its_first_assembly_is_recovered(tmp_path):
    path = str(tmp_path / "new.h5")
    w = RecordingWriter(path, "a")
    w.add_spectrum(Spectrum(AXIS, AXIS / 10, "raman", "counts", {}), name="only")
    w._journal.unlock()  # killed: the file itself was never written
    assert not os.path.exists(path)
    with Recording(path) as rec:
        assert [e.name for e in rec.entries] == ["only"]
