"""The analyzer as the rest of ``fol`` sees it: identify, configure, acquire a ``Spectrum``.

``Analyzer`` drives the command sequence of docs/analyzer-protocol.md over a
:class:`drivers.protocol.Protocol` and returns spectra carrying every item of metadata
the page lists. It relies only on what the page promises; in particular:

* settings and device state are read back on every acquisition, never cached
  (nothing on the page says they cannot change), and ASCII values are confirmed by
  two agreeing reads, since ASCII answers carry no checksum;
* completion is awaited by polling ``STAT:ACQ?`` no faster than every 50 ms,
  starting after most of the expected acquisition time has passed;
* the errors an acquisition raised (``202``, ``203``) are drained right after it
  completes. ``*CLS`` (sent by the page's timeout recovery) empties the error queue,
  so if a resync happened between ``INIT`` and the end of that drain, or an error
  report was garbled, the quality flags can no longer be trusted: the acquisition is
  repeated (``acquire_retries`` times) rather than returned without them;
* a spectrum is only returned if both blocks (axis, intensities) passed their CRC.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from fol.errors import DeviceError, SpectrumError, UsageError
from fol.spectrum import Spectrum

from drivers.protocol import Protocol, choice, decode_floats, parse_count, parse_idn, parse_number

#: setting -> (command, lowest, highest) as the page's command table gives them
LIMITS = {
    "integration_ms": ("CONF:INT", 1.0, 60000.0),
    "averages": ("CONF:AVG", 1, 1000),
    "laser_mw": ("CONF:LAS", 0.0, 500.0),
}
#: device error code -> quality flag of the spectrum
FLAG_OF_ERROR = {202: "saturated", 203: "detector_warm"}
INTERLOCK = 201
MIN_POLL_S = 0.05
UNITS = {"COUNTS": "counts", "ABSORBANCE": "absorbance"}
TECHNIQUES = {"RAMAN": "raman", "FTIR": "ftir"}
#: temperature readings closer than this (deg C) confirm each other (a live sensor may drift)
TEMPERATURE_AGREEMENT_C = 0.5

_state = choice("IDLE", "BUSY", "DONE", "FAIL")


class _Lost(Exception):
    """This acquisition cannot be trusted (its error reports were lost); a new one may be."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds and ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quality_flags(device_errors) -> list[str]:
    """The quality flags implied by device errors: 202 -> saturated, 203 -> detector_warm."""
    codes = {int(pair[0]) for pair in device_errors or ()}
    return sorted({flag for code, flag in FLAG_OF_ERROR.items() if code in codes})


def check_settings(integration_ms=None, averages=None, laser_mw=None) -> dict:
    """The requested settings (None dropped), validated against the page's ranges."""
    given = {"integration_ms": integration_ms, "averages": averages, "laser_mw": laser_mw}
    out = {}
    for key, value in given.items():
        if value is None:
            continue
        command, low, high = LIMITS[key]
        if key == "averages" and (isinstance(value, bool) or int(value) != value):
            raise UsageError(f"averages must be a whole number, got {value!r}")
        value = int(value) if key == "averages" else float(value)
        if not low <= value <= high:
            raise UsageError(f"{key.replace('_', ' ')} {value:g} is outside {low:g}..{high:g} ({command})")
        out[key] = value
    return out


def _same_temperature(a: float, b: float) -> bool:
    return abs(a - b) <= TEMPERATURE_AGREEMENT_C


def _errors_text(errors) -> str:
    return "; ".join(f'{c},"{m}"' for c, m in errors) or "none reported"


class Analyzer:
    """A connected analyzer. ``identify()`` runs on construction.

    ``acquire_retries``: new acquisitions started when one cannot be trusted.
    ``completion_margin_s``: time allowed beyond integration x averages before a
    silent-but-answering device is declared stuck.
    """

    def __init__(self, protocol: Protocol, *, acquire_retries: int = 2, completion_margin_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.protocol = protocol
        self.acquire_retries = int(acquire_retries)
        self.completion_margin_s = float(completion_margin_s)
        self._sleep = sleep
        self._last_poll = -float("inf")
        self._may_be_busy = True  # until a STAT:ACQ? answer says otherwise
        self.identity = self.identify()

    @property
    def port(self) -> str:
        return self.protocol.port

    # -- reading state

    def identify(self) -> dict:
        """The four ``*IDN?`` fields and the technique (confirmed reads)."""
        maker, model, serial, firmware = self.protocol.query_stable("*IDN?", parse_idn)
        technique = self.protocol.query_stable("SYST:TECH?", choice(*TECHNIQUES))
        return {"maker": maker, "model": model, "serial": serial, "firmware": firmware,
                "technique": TECHNIQUES[technique]}

    def settings(self) -> dict:
        """Integration time, averages and laser power as the device reports them."""
        q = self.protocol.query_stable
        return {"integration_ms": q("CONF:INT?", parse_number), "averages": q("CONF:AVG?", parse_count),
                "laser_mw": q("CONF:LAS?", parse_number)}

    def _conditions(self) -> dict:
        """Unit, excitation, resolution and detector temperature, read now."""
        q = self.protocol.query_stable
        return {"unit": UNITS[q("SENS:UNIT?", choice(*UNITS))],
                "excitation_wavelength_nm": q("CONF:EXC?", parse_number),
                "resolution_cm1": q("CONF:RES?", parse_number),
                "detector_temperature_c": q("SYST:TEMP?", parse_number, _same_temperature)}

    def describe(self) -> dict:
        """Device metadata: identity, technique, unit, optics, settings, temperature, port."""
        s = self.settings()
        return {**self.identity, **self._conditions(), "integration_time_ms": s["integration_ms"],
                "averages": s["averages"], "laser_power_mw": s["laser_mw"], "port": self.port}

    # -- settings

    def configure(self, integration_ms=None, averages=None, laser_mw=None) -> dict:
        """Apply the given settings (None = leave as is); returns the device's settings afterwards.

        Settings the device refuses (an error in the queue after the ``CONF`` commands)
        raise ``DeviceError``. A value read back different from the one sent is sent
        once more (a command can be lost on the line); if the device still reports
        another value (it may round), the device's value is what gets recorded.
        """
        wanted = check_settings(integration_ms, averages, laser_mw)
        if self.identity["technique"] == "ftir":
            wanted.pop("laser_mw", None)  # the page: FTIR answers 0 and ignores it
        current = self.settings()
        todo = {k: v for k, v in wanted.items() if current[k] != v}
        for _ in range(2):  # a second round re-sends what a lost command did not set
            if not todo:
                break
            self._wait_not_busy(current)
            self.protocol.command("*CLS")
            for key, value in todo.items():
                self.protocol.command(f"{LIMITS[key][0]} {value:.10g}")
            report = self.protocol.drain_errors()
            if report.errors:
                raise DeviceError(f"port {self.port}: the analyzer refused the settings "
                                  f"{', '.join(f'{k}={v:g}' for k, v in todo.items())}: {_errors_text(report.errors)}")
            current = self.settings()
            todo = {k: v for k, v in todo.items() if current[k] != v}
        return current

    # -- acquisition

    @staticmethod
    def _expected_s(settings: dict) -> float:
        return settings["integration_ms"] * settings["averages"] / 1000.0

    def _poll(self, deadline: float, stop: Callable[[str], bool], interval: float) -> str:
        """Query ``STAT:ACQ?`` every ``interval`` until ``stop(state)`` or the deadline.

        Two polls are never closer than 50 ms, across calls too (the page's limit).
        """
        while True:
            self._sleep(max(0.0, self._last_poll + MIN_POLL_S - time.monotonic()))
            state = self.protocol.query("STAT:ACQ?", _state)
            self._last_poll = time.monotonic()
            self._may_be_busy = state == "BUSY"
            if stop(state):
                return state
            if time.monotonic() + interval > deadline:
                raise DeviceError(f"port {self.port}: acquisition not complete in time "
                                  f"(STAT:ACQ? still {state}): the analyzer seems stuck")
            self._sleep(interval)

    def _deadline(self, settings: dict) -> float:
        return time.monotonic() + 1.5 * self._expected_s(settings) + self.completion_margin_s

    def _wait_not_busy(self, settings: dict) -> None:
        """Let an acquisition that may still be running (an aborted one, another session's) finish first."""
        if self._may_be_busy:
            self._poll(self._deadline(settings), lambda s: s != "BUSY", MIN_POLL_S)

    def _wait_done(self, settings: dict) -> str:
        """Wait out most of the expected time, then poll until DONE or FAIL."""
        expected = self._expected_s(settings)
        deadline = self._deadline(settings)
        self._sleep(0.9 * expected)
        return self._poll(deadline, lambda s: s in ("DONE", "FAIL"), min(max(MIN_POLL_S, expected / 10), 0.5))

    def _axis(self) -> np.ndarray:
        x = decode_floats(self.protocol.query_block("SENS:AXIS?")).astype(np.float64)
        if x.size == 0:
            raise DeviceError(f"port {self.port}: the analyzer sent an empty wavenumber axis")
        if not np.all(np.isfinite(x)) or not np.all(np.diff(x) > 0):
            raise DeviceError(f"port {self.port}: the wavenumber axis (SENS:AXIS?) is not finite and strictly "
                              "increasing, as the protocol requires")
        return x

    def _acquire_once(self, settings: dict) -> Spectrum:
        proto = self.protocol
        self._wait_not_busy(settings)
        proto.command("*CLS")
        mark = proto.resyncs
        self._may_be_busy = True
        proto.command("INIT")
        state = self._wait_done(settings)
        acquired = utc_now()
        report = proto.drain_errors()
        if proto.resyncs != mark or not report.complete:
            raise _Lost("its error reports were lost or garbled on the line")
        errors = report.errors
        codes = {code for code, _ in errors}
        if INTERLOCK in codes:
            raise DeviceError(f"port {self.port}: laser interlock open (device error 201): "
                              "close the sample compartment or interlock and try again")
        if state == "FAIL":
            raise DeviceError(f"port {self.port}: the acquisition failed (STAT:ACQ? FAIL); "
                              f"device errors: {_errors_text(errors)}")
        if any(-299 <= code <= -200 for code in codes):
            raise DeviceError(f"port {self.port}: the analyzer could not run the acquisition: {_errors_text(errors)}")
        conditions = self._conditions()
        axis = self._axis()
        payload = proto.query_block("FETC:SPEC?")
        if not payload:
            stale = proto.drain_errors().errors
            raise _Lost(f"the analyzer had no data to send ({_errors_text(stale)})")
        y = decode_floats(payload).astype(np.float64)
        if y.size != axis.size:
            raise DeviceError(f"port {self.port}: {y.size} intensities for an axis of {axis.size} points")
        metadata = {**self.identity,
                    "excitation_wavelength_nm": conditions["excitation_wavelength_nm"],
                    "resolution_cm1": conditions["resolution_cm1"],
                    "integration_time_ms": settings["integration_ms"], "averages": settings["averages"],
                    "laser_power_mw": settings["laser_mw"],
                    "detector_temperature_c": conditions["detector_temperature_c"],
                    "unit": conditions["unit"], "device_errors": [[c, m] for c, m in errors],
                    "flags": quality_flags(errors), "acquired_utc": acquired, "source": self.port}
        try:
            return Spectrum(axis, y, self.identity["technique"], conditions["unit"], metadata)
        except SpectrumError as e:
            raise DeviceError(f"port {self.port}: the analyzer sent a spectrum that cannot be analysed: {e}") from None

    def acquire(self, *, integration_ms=None, averages=None, laser_mw=None) -> Spectrum:
        """Configure (if asked), acquire, and return a CRC-verified spectrum with full metadata.

        Raises ``DeviceError`` naming the port for an open laser interlock (201), a
        failed or stuck acquisition, a line too unreliable to get verified data
        through, or a vanished port.
        """
        settings = self.configure(integration_ms, averages, laser_mw)
        why = ""
        for _ in range(1 + self.acquire_retries):
            try:
                return self._acquire_once(settings)
            except _Lost as e:
                why = str(e)
        raise DeviceError(f"port {self.port}: {1 + self.acquire_retries} acquisitions in a row could not be "
                          f"verified (last: {why}); the serial line is unreliable")
