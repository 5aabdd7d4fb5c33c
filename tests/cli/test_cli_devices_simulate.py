"""``fol simulate serve|record`` and ``fol devices``, through the real command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from drivers import open_source
from drivers.simulator import AnalyzerServer, ReferenceSet, SimulatedAnalyzer
from fol.cli import main
from fol.errors import DeviceError
from fol.io.library import LibrarySection, write_library
from fol.io.recording import Recording
from fol.preprocess.recipe import default_recipe

pytestmark = pytest.mark.timeout(120)
NAMES = ["fentanyl", "mannitol", "caffeine", "cocaine"]


def _section(technique: str, lo: float, hi: float, seed: int) -> LibrarySection:
    rng = np.random.default_rng(seed)
    grid = np.arange(lo, hi, 2.0)
    raw = np.array([sum(h * np.exp(-0.5 * ((grid - c) / 5.0) ** 2)
                        for c, h in zip(rng.uniform(lo + 50, hi - 50, 6), rng.uniform(0.3, 1.0, 6)))
                    for _ in NAMES], dtype=np.float32)
    n = len(NAMES)
    return LibrarySection(technique, grid, raw, raw, list(NAMES), ["x"] * n, np.zeros(n, bool), ["computed"] * n,
                          ["synthetic test bands"] * n, default_recipe(technique).to_json())


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("lib") / "lib.h5"
    write_library(path, {"raman": _section("raman", 200, 2000, 1), "ftir": _section("ftir", 650, 3900, 2)},
                  name="cli-test")
    return str(path)


def fol(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fol", *argv], capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- record


def test_record_writes_entries_with_ground_truth_reproducibly(library, tmp_path, capsys):
    args = ["simulate", "record", "--sample", "fentanyl:0.05,D-mannitol:0.95", "--n", "4", "--seed", "3",
            "--library", library]
    assert main(args + ["--out", str(tmp_path / "a.h5")]) == 0
    assert "wrote 4 simulated raman spectra" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "b.h5")]) == 0
    with Recording(tmp_path / "a.h5") as a, Recording(tmp_path / "b.h5") as b:
        assert len(a.entries) == 4 and not a.entries[0].stacked
        first = a.read(a.entries[0])
        assert first.expected == [{"fentanyl": 0.05, "mannitol": 0.95}]
        assert first.batch.intensity.shape == (1, 1024) and first.batch.unit == "counts"
        inst = a.entries[0].instrument
        assert inst["serial"] == "SIM00003" and inst["excitation_wavelength_nm"] == 785 and inst["averages"] == 5
        for ea, eb in zip(a.entries, b.entries):
            assert np.array_equal(a.read(ea).batch.intensity, b.read(eb).batch.intensity)
        assert not np.array_equal(a.read(a.entries[0]).batch.intensity, a.read(a.entries[1]).batch.intensity)


def test_record_stack_of_ftir_spectra_in_chunks(library, tmp_path):
    out = tmp_path / "stack.h5"
    assert main(["simulate", "record", "--sample", "blank", "--n", "2500", "--stack", "--technique", "ftir",
                 "--snr", "300", "--seed", "1", "--library", library, "--out", str(out)]) == 0
    with Recording(out) as rec:
        (info,) = rec.entries
        assert info.stacked and info.n_rows == 2500 and info.unit == "absorbance" and info.n_points == 1701
        tail = rec.read(info, 2490)
        assert tail.expected == [{}] * 10 and len(tail.batch) == 10


def test_record_refuses_bad_specs_in_one_line(library, tmp_path, capsys):
    assert main(["simulate", "record", "--sample", "unobtainium:1", "--n", "2", "--library", library,
                 "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fol: error: 'unobtainium' has no raman reference") and err.count("\n") == 1
    assert main(["simulate", "record", "--sample", "blank", "--n", "0", "--library", library,
                 "--out", str(tmp_path / "x.h5")]) == 2


# ----------------------------------------------------------------------------- serve


def test_serve_on_tcp_in_a_subprocess_reached_with_socket_url(library):
    proc = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--tcp", "127.0.0.1:0",
                             "--sample", "caffeine", "--seed", "9", "--time-scale", "0", "--timeout", "60",
                             "--faults", "junk=0.05,corrupt=0.05", "--library", library],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert "serving on socket://127.0.0.1:" in banner, banner + proc.stderr.read()
        url = banner.split("serving on ")[1].split()[0]
        spectra = []
        for _ in range(10):
            try:
                with open_source(url, timeout=1.0) as source:
                    assert source.describe()["serial"] == "SIM00009"
                    spectra.append(source.acquire(integration_ms=20))
            except DeviceError as e:  # documented outcome of a faulty line; anything else fails the test
                assert str(e).startswith(f"port {url}: ")
            if len(spectra) == 3:
                break
        assert len(spectra) == 3 and all(len(s) == 1024 and s.metadata["source"] == url for s in spectra)
        assert not np.array_equal(spectra[0].intensity, spectra[1].intensity)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "fol: interrupted" in err


def test_serve_on_a_pty_link_stops_by_itself_and_cleans_up(library, tmp_path):
    link = tmp_path / "fol-analyzer"
    proc = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(link), "--technique",
                             "ftir", "--timeout", "20", "--time-scale", "0", "--library", library,
                             "--faults", "warm=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"serving on {link}" in proc.stdout.readline()
        with open_source(str(link), timeout=2.0) as source:
            s = source.acquire(integration_ms=10, averages=2, laser_mw=100)
        assert s.technique == "ftir" and s.unit == "absorbance" and s.metadata["flags"] == ["detector_warm"]
        assert s.metadata["laser_power_mw"] == 0  # FTIR ignores the laser setting
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert not os.path.lexists(link)


def test_serve_with_timeout_exits_cleanly(library, tmp_path):
    run = fol("simulate", "serve", "--link", str(tmp_path / "l"), "--timeout", "0.5", "--library", library)
    assert run.returncode == 0 and "stopped after 0 responses" in run.stdout and run.stderr == ""


def test_serve_refuses_non_loopback_and_bad_faults(library):
    run = fol("simulate", "serve", "--tcp", "0.0.0.0:5025", "--library", library)
    assert run.returncode == 2 and run.stderr.strip() == "fol: error: the simulator only listens on loopback addresses, not 0.0.0.0"
    run = fol("simulate", "serve", "--faults", "drop=2", "--library", library)
    assert run.returncode == 2 and "outside 0..1" in run.stderr and "Traceback" not in run.stderr


# ----------------------------------------------------------------------------- devices


def test_devices_lists_ports_without_tracebacks():
    run = fol("devices")
    assert run.returncode == 0 and run.stdout.strip() and run.stderr == ""


def test_devices_probe_identifies_a_simulator_and_explains_failures(tmp_path):
    grid = np.arange(200.0, 2000.0, 1.0)
    refs = ReferenceSet(grid, ["a"], np.exp(-0.5 * ((grid - 1000) / 5) ** 2)[None, :], "raman")
    with AnalyzerServer(SimulatedAnalyzer(refs, seed=77), link=str(tmp_path / "sim")) as server:
        run = fol("devices", "--port", server.url, "--port", str(tmp_path / "nothing"), "--timeout", "0.3")
    assert run.returncode == 0 and run.stderr == ""
    lines = run.stdout.strip().splitlines()[-2:]
    assert lines[0].startswith(server.url) and lines[0].endswith("fol,SIM-RAMAN-785,SIM00077,1.0.0 (raman)")
    assert lines[1].endswith(f"no analyzer: port {tmp_path / 'nothing'}: not found")
