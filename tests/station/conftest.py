"""Fixtures of the station tests: the shipped library, simulated spectra, a station on a real pty."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def library():
    from fol.io.library import load_library

    return load_library(None)


@pytest.fixture(scope="session")
def identifier(library):
    from fol.identification.pipeline import Identifier

    return Identifier(library)


@pytest.fixture(scope="session")
def refset(library):
    from drivers.simulator import ReferenceSet

    return ReferenceSet.from_library(library.section("raman"))


@pytest.fixture(scope="session")
def measure(refset):
    """``measure(sample, **settings)`` -> a Spectrum acquired through the real driver from a simulator on a pty."""
    from drivers import open_source

    def run(sample: str, seed: int = 3, **settings):
        with open_source(f"sim:{sample}", refset=refset, seed=seed, time_scale=0.0) as src:
            return src.acquire(**{"integration_ms": 200, "averages": 2, "laser_mw": 100, **settings})

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Running:
    """A ``fol simulate serve`` on a pty link and a ``fol station --port LINK`` beside it (subprocesses)."""

    def __init__(self, tmp: Path, sample: str, time_scale: float, extra=()):
        self.tmp = tmp
        self.link = tmp / "analyzer"
        self.db = tmp / "cases.sqlite"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sim = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(self.link),
                                     "--sample", sample, "--seed", "5", "--time-scale", str(time_scale)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        line = self.sim.stdout.readline()
        assert "serving on" in line, line + self.sim.stderr.read()
        self.station = None
        self.start_station(extra)

    def start_station(self, extra=()):
        self.station = subprocess.Popen([sys.executable, "-m", "fol", "station", "--port", str(self.link), "--db",
                                         str(self.db), "--listen", f"127.0.0.1:{self.port}", *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.station.poll() is not None:
                raise AssertionError("station exited: " + self.station.stderr.read())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("station did not start")

    def kill_station(self):
        self.station.send_signal(signal.SIGKILL)
        self.station.wait(timeout=10)

    def stop(self):
        for proc in (self.station, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


@pytest.fixture
def running_station(tmp_path):
    """Factory: ``running_station(sample, time_scale=0.02)``; stopped at teardown."""
    made = []

    def start(sample="fentanyl:0.2,mannitol:0.8", time_scale=0.02, extra=()):
        r = Running(tmp_path, sample, time_scale, extra)
        made.append(r)
        return r

    yield start
    for r in made:
        r.stop()
