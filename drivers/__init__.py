"""Spectrum sources: analyzers on a serial line, simulated analyzers, and recordings.

``open_source(uri, **options)`` returns a source, a context manager with
``describe() -> dict`` (device metadata) and
``acquire(*, integration_ms=None, averages=None, laser_mw=None) -> Spectrum`` and
``close()``. Settings not given take the technique's documented defaults (device
sources set every setting on every acquisition). After ``close()`` every method raises
``DeviceError`` naming the source; closing twice is harmless.

URIs:

* a serial device path or pyserial URL -- ``/dev/ttyUSB0``, ``/tmp/fol-analyzer``
  (a pty), ``socket://127.0.0.1:5025``, ``rfc2217://host:port``, ``loop://``: the real
  driver (docs/driver.md). Options: ``baudrate`` (115200), ``timeout`` (2 s per read),
  ``retries`` (3 re-queries of a garbled answer or block), ``acquire_retries`` (2),
  ``completion_margin_s`` (10 s beyond integration x averages), ``progress`` (a callable
  receiving ``AcquisitionEvent`` and ``ProtocolEvent`` objects: integration progress,
  retries on a faulty line);
* ``sim:SPEC`` -- an in-process simulated analyzer on a fresh pty, measuring the sample
  ``SPEC`` (``"fentanyl:0.05,mannitol:0.95"``, ``"blank"``, a name), reached through
  the same real driver. Options: ``technique`` ("raman"), ``seed``, ``faults`` (a fault
  spec, docs/simulator.md), ``library`` (path; default the shipped library) or
  ``refset`` (a ``ReferenceSet``), ``time_scale`` (1.0), plus the serial options;
* ``file:REC.h5`` or ``file:REC.h5#ENTRY`` -- replay of a recording, one spectrum per
  ``acquire()``. Serial options are accepted and ignored.

Every failure is a ``fol.errors.FolError`` (``DeviceError`` for ports and devices)
whose message names the port or file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

from fol.errors import DeviceError, ConfigError

from drivers.device import Analyzer
from drivers.protocol import Protocol
from drivers.transport import DEFAULT_BAUDRATE, Transport

SERIAL_OPTIONS = ("baudrate", "timeout", "retries", "acquire_retries", "completion_margin_s", "progress")
SIM_OPTIONS = ("technique", "seed", "faults", "library", "refset", "time_scale")


class DeviceSource:
    """An analyzer reached through pyserial (a device path or URL)."""

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout: float = 2.0, retries: int = 3,
                 acquire_retries: int = 2, completion_margin_s: float = 10.0, progress=None):
        self.port = str(url)
        self._closed = False
        self._transport = Transport(self.port, baudrate=baudrate, timeout=timeout)
        try:
            protocol = Protocol(self._transport, timeout=timeout, retries=retries, notify=progress)
            self.analyzer = Analyzer(protocol, acquire_retries=acquire_retries,
                                     completion_margin_s=completion_margin_s, progress=progress)
        except BaseException:
            self._transport.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError(f"port {self.port}: the source is closed")

    def describe(self) -> dict:
        self._check_open()
        return self.analyzer.describe()

    def acquire(self, *, integration_ms=None, averages=None, laser_mw=None):
        self._check_open()
        return self.analyzer.acquire(integration_ms=integration_ms, averages=averages, laser_mw=laser_mw)

    def close(self) -> None:
        self._closed = True
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SimulatorSource:
    """A simulated analyzer on a private pty, driven by the real driver (``DeviceSource``).

    ``device`` and ``server`` are the simulator objects (tests compare against them).
    """

    def __init__(self, sample: str, *, technique: str | None = None, seed: int | None = None, faults=None,
                 library=None, refset=None, time_scale: float = 1.0, **serial_options):
        from drivers.simulator import AnalyzerServer, FaultSpec, ReferenceSet, SimulatedAnalyzer

        if refset is None:
            from fol.io.library import load_library

            refset = ReferenceSet.from_library(load_library(library).section(technique or "raman"))
        elif technique and technique != refset.technique:
            raise ConfigError(f"the references given are {refset.technique}, not {technique}")
        faults = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.device = SimulatedAnalyzer(refset, sample=sample, seed=seed, faults=faults, time_scale=time_scale)
        self._dir = tempfile.mkdtemp(prefix="fol-sim-")
        try:
            self.server = AnalyzerServer(self.device, link=os.path.join(self._dir, "analyzer"), seed=seed).start()
            try:
                self._source = DeviceSource(self.server.url, **serial_options)
            except BaseException:
                self.server.stop()
                raise
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.port = self.server.url
        # stop the server and remove the link even if the caller never closes the source
        self._cleanup = weakref.finalize(self, _stop_simulator, self.server, self._dir)

    @property
    def analyzer(self):
        return self._source.analyzer

    def describe(self) -> dict:
        return self._source.describe()

    def acquire(self, *, integration_ms=None, averages=None, laser_mw=None):
        return self._source.acquire(integration_ms=integration_ms, averages=averages, laser_mw=laser_mw)

    def close(self) -> None:
        self._source.close()
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop_simulator(server, directory: str) -> None:
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _check_options(kind: str, options: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to {kind} sources "
                         f"(allowed: {', '.join(allowed)})")


def _split_file_uri(rest: str) -> tuple[str, str | None]:
    """``REC.h5#entry`` -> (path, entry); a path that exists as given is never split."""
    if rest.startswith("//"):
        rest = rest[2:]
    if "#" in rest and not os.path.exists(rest):
        path, _, entry = rest.rpartition("#")
        return path, entry or None
    return rest, None


def open_source(uri: str, **options):
    """Open a spectrum source (see the module docstring). Options set to None take their defaults."""
    uri = str(uri).strip()
    options = {k: v for k, v in options.items() if v is not None}
    if not uri:
        raise ConfigError("no source given (a serial port, sim:SPEC or file:REC.h5)")
    if uri.startswith("file:"):
        _check_options("file:", options, SERIAL_OPTIONS)  # accepted and ignored
        from drivers.hdf5 import RecordingSource

        return RecordingSource(*_split_file_uri(uri[len("file:"):]))
    if uri.startswith("sim:"):
        _check_options("sim:", options, SERIAL_OPTIONS + SIM_OPTIONS)
        return SimulatorSource(uri[len("sim:"):], **options)
    _check_options("serial", options, SERIAL_OPTIONS)
    return DeviceSource(uri, **options)


__all__ = ["DeviceSource", "SimulatorSource", "open_source"]
