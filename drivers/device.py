"""The analyzer as the rest of ``fol`` sees it: identify, configure, acquire a ``Spectrum``.

``Analyzer`` drives the command sequence of docs/analyzer-protocol.md over a
:class:`drivers.protocol.Protocol` and returns spectra carrying every item of metadata
the page lists. It relies only on what the page promises; in particular:

* **every setting is set on every acquisition**: the options given, or the documented
  defaults of the technique (``DEFAULT_SETTINGS``), never what an earlier session left
  on the device; the settings are then read back (two clean, agreeing passes) before
  ``INIT``, read back again with the device state after the acquisition, and a change
  in between makes the acquisition untrusted;
* device state is read on every acquisition, never cached, with
  :meth:`Protocol.read_confirmed` (ASCII answers carry no checksum, and a late answer
  must never be taken for the answer to a later question); every value, the detector
  temperature included, must read *the same* in two clean passes (a tolerance would
  accept a flipped last digit);
* **a spectrum must belong to the INIT that preceded it**: ``STAT:ACQ?`` must be seen
  ``BUSY`` after ``INIT`` and then ``DONE`` twice in a row on a clean line (a single
  stale ``DONE`` is not believed), and a payload identical to one this session already
  received (or to the axis) is stale -- real detector noise never repeats;
* completion is awaited by polling ``STAT:ACQ?`` no faster than every 50 ms;
* the errors an acquisition raised (``202``, ``203``) are drained right after it
  completes. ``*CLS`` (sent by the page's timeout recovery) empties the error queue,
  so if the line was not clean during that drain the quality flags can no longer be
  trusted: the acquisition is repeated (``acquire_retries`` times) rather than
  returned without them;
* a spectrum is only returned if both blocks (axis, intensities) passed their CRC.

``progress(event)`` (optional) receives an :class:`AcquisitionEvent` while the
instrument integrates and whenever an acquisition is repeated, and every
:class:`drivers.protocol.ProtocolEvent` (timeouts, resyncs, re-queries) of the line.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from fol.errors import DeviceError, SpectrumError, ConfigError
from fol.spectrum import Spectrum

from drivers.protocol import Protocol, choice, decode_floats, parse_count, parse_idn, parse_number

#: setting -> (command, lowest, highest) as the page's command table gives them
LIMITS = {
    "integration_ms": ("CONF:INT", 1.0, 60000.0),
    "averages": ("CONF:AVG", 1, 1000),
    "laser_mw": ("CONF:LAS", 0.0, 500.0),
}
#: settings every acquisition uses unless told otherwise (docs/driver.md); FTIR has no laser
DEFAULT_SETTINGS = {
    "raman": {"integration_ms": 100.0, "averages": 5, "laser_mw": 100.0},
    "ftir": {"integration_ms": 50.0, "averages": 16, "laser_mw": 0.0},
}
#: device error code -> quality flag of the spectrum
FLAG_OF_ERROR = {202: "saturated", 203: "detector_warm"}
INTERLOCK = 201
MIN_POLL_S = 0.05
UNITS = {"COUNTS": "counts", "ABSORBANCE": "absorbance"}
TECHNIQUES = {"RAMAN": "raman", "FTIR": "ftir"}

_state = choice("IDLE", "BUSY", "DONE", "FAIL")


class _Lost(Exception):
    """This acquisition cannot be trusted (its error reports were lost, its data stale); a new one may be."""


@dataclass(frozen=True)
class AcquisitionEvent:
    """Progress of an acquisition: ``phase`` is configuring, integrating, reading or retry."""

    phase: str
    port: str
    elapsed_s: float = 0.0
    expected_s: float = 0.0
    detail: str = ""

    def __str__(self) -> str:
        if self.phase == "integrating":
            return f"port {self.port}: integrating {self.elapsed_s:.1f} of {self.expected_s:.1f} s"
        return f"port {self.port}: {self.detail or self.phase}"


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
            raise ConfigError(f"averages must be a whole number, got {value!r}")
        value = int(value) if key == "averages" else float(value)
        if not low <= value <= high:
            raise ConfigError(f"{key.replace('_', ' ')} {value:g} is outside {low:g}..{high:g} ({command})")
        out[key] = value
    return out


def _errors_text(errors) -> str:
    return "; ".join(f'{c},"{m}"' for c, m in errors) or "none reported"


class Analyzer:
    """A connected analyzer. ``identify()`` runs on construction.

    ``acquire_retries``: new acquisitions started when one cannot be trusted.
    ``completion_margin_s``: time allowed beyond integration x averages before a
    silent-but-answering device is declared stuck. ``progress``: see the module docstring.
    """

    def __init__(self, protocol: Protocol, *, acquire_retries: int = 2, completion_margin_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep, progress: Callable[[object], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.protocol = protocol
        self.acquire_retries = int(acquire_retries)
        self.completion_margin_s = float(completion_margin_s)
        self.progress = progress
        if progress is not None and protocol.notify is None:
            protocol.notify = progress
        self._sleep = sleep
        self._clock = clock
        self._last_poll = -float("inf")
        self._may_be_busy = True  # until a STAT:ACQ? answer says otherwise
        self._seen: deque[bytes] = deque(maxlen=4096)  # digests of payloads received: a repeat is stale
        self.counters = protocol.counters
        self.identity = self.identify()

    @property
    def port(self) -> str:
        return self.protocol.port

    def _event(self, phase: str, **kw) -> None:
        if self.progress is not None:
            self.progress(AcquisitionEvent(phase, self.port, **kw))

    # -- reading state

    def identify(self) -> dict:
        """The four ``*IDN?`` fields and the technique (confirmed reads)."""
        got = self.protocol.read_confirmed({"idn": ("*IDN?", parse_idn), "tech": ("SYST:TECH?", choice(*TECHNIQUES))})
        maker, model, serial, firmware = got["idn"]
        return {"maker": maker, "model": model, "serial": serial, "firmware": firmware,
                "technique": TECHNIQUES[got["tech"]]}

    _SETTINGS = {"integration_ms": ("CONF:INT?", parse_number), "averages": ("CONF:AVG?", parse_count),
                 "laser_mw": ("CONF:LAS?", parse_number)}
    _CONDITIONS = {"unit": ("SENS:UNIT?", choice(*UNITS)), "excitation_wavelength_nm": ("CONF:EXC?", parse_number),
                   "resolution_cm1": ("CONF:RES?", parse_number),
                   # compared exactly, like every other value: a tolerance would let one flipped digit
                   # through (-10.1 -> -10.5 is one bit); a sensor that flickers between two readings
                   # repeats one of them within a few passes (read_confirmed matches any earlier pass)
                   "detector_temperature_c": ("SYST:TEMP?", parse_number)}

    def settings(self) -> dict:
        """Integration time, averages and laser power as the device reports them (confirmed)."""
        return self.protocol.read_confirmed(self._SETTINGS)

    def _snapshot(self) -> dict:
        """Settings, unit, excitation, resolution and detector temperature, read now (confirmed together)."""
        got = self.protocol.read_confirmed({**self._SETTINGS, **self._CONDITIONS})
        got["unit"] = UNITS[got["unit"]]
        return got

    def _conditions(self) -> dict:
        got = self._snapshot()
        return {k: got[k] for k in self._CONDITIONS}

    def describe(self) -> dict:
        """Device metadata: identity, technique, unit, optics, settings, temperature, port."""
        s = self._snapshot()
        return {**self.identity, **{k: s[k] for k in self._CONDITIONS}, "integration_time_ms": s["integration_ms"],
                "averages": s["averages"], "laser_power_mw": s["laser_mw"], "port": self.port}

    # -- settings

    def defaults(self) -> dict:
        """The settings an acquisition uses when none are given (``DEFAULT_SETTINGS`` of the technique)."""
        return dict(DEFAULT_SETTINGS[self.identity["technique"]])

    def configure(self, integration_ms=None, averages=None, laser_mw=None) -> dict:
        """Set **every** setting (the values given, the technique's defaults for the others); return the device's.

        Settings the device refuses (an error in the queue after the ``CONF`` commands)
        raise ``DeviceError``. The settings are read back; a value different from the
        one sent is sent once more (a command can be lost on the line); if the device
        still reports another value (it may round), the device's value is what gets
        recorded.
        """
        wanted = {**self.defaults(), **check_settings(integration_ms, averages, laser_mw)}
        ftir = self.identity["technique"] == "ftir"
        if ftir:
            wanted["laser_mw"] = 0.0  # the page: FTIR answers 0 and ignores it
        self._event("configuring", detail="setting integration {integration_ms:g} ms, {averages} averages, "
                                          "laser {laser_mw:g} mW".format(**wanted))
        todo = {k: v for k, v in wanted.items() if not (ftir and k == "laser_mw")}
        current = wanted
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

    def _poll_once(self) -> str:
        """One ``STAT:ACQ?``, never closer than 50 ms to the previous one (the page's limit)."""
        self._sleep(max(0.0, self._last_poll + MIN_POLL_S - self._clock()))
        state = self.protocol.query("STAT:ACQ?", _state)
        self._last_poll = self._clock()
        self._may_be_busy = state == "BUSY"
        return state

    def _poll(self, deadline: float, stop: Callable[[str], bool], interval: float) -> str:
        """Query ``STAT:ACQ?`` every ``interval`` until ``stop(state)`` or the deadline."""
        while True:
            state = self._poll_once()
            if stop(state):
                return state
            if self._clock() + interval > deadline:
                raise DeviceError(f"port {self.port}: acquisition not complete in time "
                                  f"(STAT:ACQ? still {state}): the analyzer seems stuck")
            self._sleep(interval)

    def _deadline(self, settings: dict) -> float:
        return self._clock() + 1.5 * self._expected_s(settings) + self.completion_margin_s

    def _wait_not_busy(self, settings: dict) -> None:
        """Let an acquisition that may still be running (an aborted one, another session's) finish first."""
        if self._may_be_busy:
            self._poll(self._deadline(settings), lambda s: s != "BUSY", MIN_POLL_S)

    def _wait_until(self, until: float, started: float, expected: float) -> None:
        """Sleep until ``until`` (monotonic), telling ``progress`` how the integration goes."""
        while (left := until - self._clock()) > 0:
            self._event("integrating", elapsed_s=self._clock() - started, expected_s=expected)
            self._sleep(min(left, 0.25))

    def _wait_done(self, settings: dict, started: float) -> str:
        """After ``INIT``: see ``BUSY``, wait out most of the expected time, then poll until DONE/FAIL is confirmed.

        A terminal state is believed only when two consecutive polls on a clean line
        report it; ``DONE`` without a ``BUSY`` first cannot be told from the previous
        acquisition, so it makes the acquisition untrusted.
        """
        expected = self._expected_s(settings)
        deadline = self._deadline(settings)
        interval = min(max(MIN_POLL_S, expected / 10), 0.5)
        seen_busy = False
        early_done = self.counters["done_without_busy"]
        state = self._poll_once()  # right after INIT: a new acquisition is running
        while True:
            if state == "BUSY":
                if not seen_busy:
                    seen_busy = True
                    self._wait_until(started + 0.9 * expected, started, expected)
            elif state == "IDLE":
                raise _Lost("STAT:ACQ? said IDLE after INIT (the INIT was lost)")
            elif state == "DONE" and not seen_busy:
                self.counters["done_without_busy"] += 1  # stale, or the INIT was lost: ask again, a few times
                if self.counters["done_without_busy"] - early_done >= 3:
                    raise _Lost("STAT:ACQ? said DONE without BUSY after INIT: the data could be the previous "
                                "acquisition's")
            else:  # DONE after BUSY, or FAIL: believe it when the next clean poll says the same
                mark = self.protocol.anomalies
                again = self._poll_once()
                if again == state and self.protocol.anomalies == mark:
                    return state
                if state == "DONE" and again == "BUSY":
                    self.counters["stale_done"] += 1
                    self._event("retry", detail="STAT:ACQ? said DONE, then BUSY again: a stale DONE was ignored")
                state = again
                continue
            if self._clock() + interval > deadline:
                raise DeviceError(f"port {self.port}: acquisition not complete in time "
                                  f"(STAT:ACQ? still {state}): the analyzer seems stuck")
            self._event("integrating", elapsed_s=self._clock() - started, expected_s=expected)
            self._sleep(interval)
            state = self._poll_once()

    def _axis(self) -> np.ndarray:
        payload = self.protocol.query_block("SENS:AXIS?")
        x = decode_floats(payload).astype(np.float64)
        if x.size == 0:
            raise DeviceError(f"port {self.port}: the analyzer sent an empty wavenumber axis")
        if not np.all(np.isfinite(x)) or not np.all(np.diff(x) > 0):
            raise DeviceError(f"port {self.port}: the wavenumber axis (SENS:AXIS?) is not finite and strictly "
                              "increasing, as the protocol requires")
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        if digest not in self._seen:
            self._seen.append(digest)
        return x

    def _acquire_once(self, settings: dict) -> Spectrum:
        proto = self.protocol
        self._wait_not_busy(settings)
        proto.command("*CLS")
        self._may_be_busy = True
        proto.command("INIT")
        started = self._clock()
        state = self._wait_done(settings, started)
        acquired = utc_now()
        self._event("reading", detail="reading the spectrum")
        report = proto.drain_errors()
        if not report.complete:
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
        snap = self._snapshot()
        changed = [k for k in settings if snap[k] != settings[k]]
        if changed:
            raise _Lost(f"the settings changed during the acquisition ({', '.join(changed)})")
        axis = self._axis()
        payload = proto.query_block("FETC:SPEC?")
        if not payload:
            stale = proto.drain_errors().errors
            raise _Lost(f"the analyzer had no data to send ({_errors_text(stale)})")
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        if digest in self._seen:
            self.counters["stale_payloads"] += 1
            raise _Lost("the data sent is identical to data received earlier (stale)")
        self._seen.append(digest)
        y = decode_floats(payload).astype(np.float64)
        if y.size != axis.size:
            raise DeviceError(f"port {self.port}: {y.size} intensities for an axis of {axis.size} points")
        metadata = {**self.identity,
                    "excitation_wavelength_nm": snap["excitation_wavelength_nm"],
                    "resolution_cm1": snap["resolution_cm1"],
                    "integration_time_ms": snap["integration_ms"], "averages": snap["averages"],
                    "laser_power_mw": snap["laser_mw"],
                    "detector_temperature_c": snap["detector_temperature_c"],
                    "unit": snap["unit"], "device_errors": [[c, m] for c, m in errors],
                    "flags": quality_flags(errors), "acquired_utc": acquired, "source": self.port}
        try:
            return Spectrum(axis, y, self.identity["technique"], snap["unit"], metadata)
        except SpectrumError as e:
            raise DeviceError(f"port {self.port}: the analyzer sent a spectrum that cannot be analysed: {e}") from None

    def acquire(self, *, integration_ms=None, averages=None, laser_mw=None) -> Spectrum:
        """Set every setting, acquire, and return a CRC-verified spectrum with full metadata.

        Settings not given take the technique's ``DEFAULT_SETTINGS``. Raises
        ``DeviceError`` naming the port for an open laser interlock (201), a failed or
        stuck acquisition, a line too unreliable to get verified data through, or a
        vanished port.
        """
        settings = self.configure(integration_ms, averages, laser_mw)
        why = ""
        for attempt in range(1 + self.acquire_retries):
            try:
                return self._acquire_once(settings)
            except _Lost as e:
                why = str(e)
                self.counters["lost_acquisitions"] += 1
                if attempt < self.acquire_retries:
                    self._event("retry", detail=f"acquisition not trusted ({why}); measuring again")
        raise DeviceError(f"port {self.port}: {1 + self.acquire_retries} acquisitions in a row could not be "
                          f"verified (last: {why}); the serial line is unreliable")
