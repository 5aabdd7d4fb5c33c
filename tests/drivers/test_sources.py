"""The contract every spectrum source of ``open_source`` keeps, run over a registry of sources.

``file:`` (a recording), ``sim:`` (in-process simulator), a serial device path (a real
pty served by the simulator) and ``socket://`` (the simulator on loopback TCP): each
``describe()``s itself, ``acquire()``s a Spectrum whose metadata names the source, is a
context manager that closes itself, raises ``DeviceError`` naming the source after
``close()`` (closing twice is harmless), and refuses options that do not apply. A new
kind of source is added to SOURCES and cannot escape these tests.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from drivers import open_source
from drivers.simulator import AnalyzerServer, ReferenceSet, SimulatedAnalyzer
from fol.errors import DeviceError, FolError, ConfigError
from fol.io.recording import RecordingWriter
from fol.spectrum import Spectrum

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def refset():
    grid = np.arange(200.0, 2000.0, 1.0)
    rows = [np.exp(-0.5 * ((grid - c) / 5.0) ** 2) for c in (500.0, 1000.0, 1500.0)]
    return ReferenceSet(grid, ["a", "b", "c"], np.array(rows), "raman")


@contextlib.contextmanager
def _file(refset, tmp_path):
    path = tmp_path / "rec.h5"
    axis = np.linspace(200.0, 1800.0, 256)
    with RecordingWriter(path, "w") as w:
        for i in range(3):
            w.add_spectrum(Spectrum(axis, 100.0 + i + np.sin(axis / 50.0), "raman", "counts",
                                    {"serial": "R1", "integration_time_ms": 100.0, "averages": 2}), name=f"e{i}")
    yield f"file:{path}", str(path), {}


@contextlib.contextmanager
def _sim(refset, tmp_path):
    yield "sim:a:0.5,b:0.5", None, {"refset": refset, "seed": 2, "time_scale": 0.0, "timeout": 1.0}


@contextlib.contextmanager
def _pty(refset, tmp_path):
    with AnalyzerServer(SimulatedAnalyzer(refset, sample="b", seed=3, time_scale=0.0),
                        link=str(tmp_path / "port")) as server:
        yield server.url, server.url, {"timeout": 1.0}


@contextlib.contextmanager
def _socket(refset, tmp_path):
    with AnalyzerServer(SimulatedAnalyzer(refset, sample="c", seed=4, time_scale=0.0),
                        tcp=("127.0.0.1", 0)) as server:
        yield server.url, server.url, {"timeout": 1.0}


SOURCES = {"file": _file, "sim": _sim, "pty": _pty, "socket": _socket}


@pytest.fixture(params=sorted(SOURCES))
def source_spec(request, refset, tmp_path):
    with SOURCES[request.param](refset, tmp_path) as spec:
        yield request.param, *spec


def test_describe_acquire_close(source_spec):
    kind, uri, name, options = source_spec
    src = open_source(uri, **options)
    try:
        d = src.describe()
        assert isinstance(d, dict) and d["technique"] == "raman"
        s = src.acquire()
        assert isinstance(s, Spectrum) and s.technique == "raman" and len(s) >= 64
        assert np.all(np.isfinite(s.intensity)) and np.all(np.diff(s.wavenumber) > 0)
        if name is not None:
            assert s.metadata["source"] == name
        assert s.metadata["integration_time_ms"] > 0 and s.metadata["averages"] >= 1
        second = src.acquire()
        assert not np.array_equal(second.intensity, s.intensity)  # a new measurement (or the next row)
    finally:
        src.close()
    src.close()  # closing twice is harmless


def test_context_manager_closes_and_use_after_close_raises_naming_the_source(source_spec):
    kind, uri, name, options = source_spec
    with open_source(uri, **options) as src:
        src.acquire()
    for call in (src.acquire, src.describe):
        with pytest.raises(DeviceError) as e:
            call()
        if name is not None:
            assert name in str(e.value)
        assert "closed" in str(e.value)


def test_context_manager_closes_on_error(source_spec):
    kind, uri, name, options = source_spec
    with pytest.raises(RuntimeError):
        with open_source(uri, **options) as src:
            raise RuntimeError("boom")
    with pytest.raises(DeviceError, match="closed"):
        src.acquire()


def test_options_that_do_not_apply_are_refused(source_spec):
    kind, uri, name, options = source_spec
    with pytest.raises(ConfigError, match="do not apply"):
        open_source(uri, **options, nonsense=1)


def test_bad_settings_are_refused_by_device_sources(source_spec):
    kind, uri, name, options = source_spec
    with open_source(uri, **options) as src:
        if kind == "file":
            assert src.acquire(integration_ms=1e9) is not None  # a recording cannot be reconfigured: ignored
        else:
            with pytest.raises(ConfigError, match="outside 1..60000"):
                src.acquire(integration_ms=0)


def test_every_failure_is_a_fol_error_naming_the_source(tmp_path):
    for uri, where in ((f"file:{tmp_path / 'none.h5'}", "none.h5"), (str(tmp_path / "nothing"), "nothing"),
                       ("socket://127.0.0.1:1", "127.0.0.1:1")):
        with pytest.raises(FolError, match=where):
            open_source(uri, timeout=0.2)
