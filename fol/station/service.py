"""The station's work, without the web: instrument, measurement jobs, recovery, regression.

``Station`` owns the library and its ``Identifier``, the case store and the instrument
source. ``start_measurement`` runs one acquisition in a worker thread (one at a time:
there is one instrument); its ``Job`` reports the phase (``connecting``,
``integrating``, ``recording``, ``analysing``, ``done``/``failed``) and the expected
integration time, for the progress bar. The order is the field-safety rule:

1. the settings are explicit: each measurement sends integration, averages and laser
   power (the station's stated defaults unless the form changed them), never relying
   on what the device kept from an earlier run;
2. the raw spectrum is written to its evidence recording (``fol.cases.evidence``,
   durable on return) before anything is analysed or shown;
3. the result and the case fields go into the database with their audit row;
4. only then is the job ``done`` and the verdict shown.

On start, ``recover`` indexes any evidence file that a killed process wrote but did
not get into the database (analysed now, audit action ``recovered``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fol.errors import FolError, ConfigError

log = logging.getLogger(__name__)


class StationError(FolError):
    """A measurement could not be completed (the message says what was and was not recorded)."""

#: settings used when the form does not change them (stated on the page)
DEFAULT_SETTINGS = {"raman": {"integration_ms": 1000.0, "averages": 3, "laser_mw": 100.0},
                    "ftir": {"integration_ms": 50.0, "averages": 16, "laser_mw": 0.0}}


@dataclass
class StationConfig:
    port: str | None = None            # serial port / URL of the analyzer
    simulate: str | None = None        # or a simulated sample spec (in-process simulator)
    library: str | None = None
    db: str = "fol-station.sqlite"
    evidence_dir: str | None = None
    required: tuple[str, ...] = ("case_no", "item_no", "operator")
    technique: str = "raman"
    seed: int | None = None
    time_scale: float = 1.0            # simulator only
    timeout: float = 5.0
    baudrate: int = 115200
    defaults: dict | None = None


@dataclass
class Job:
    id: str
    case: dict
    settings: dict
    phase: str = "queued"
    started: float = field(default_factory=time.monotonic)
    expected_s: float = 0.0
    phase_started: float = field(default_factory=time.monotonic)
    measurement_id: int | None = None
    error: str | None = None
    timings: dict = field(default_factory=dict)

    def set(self, phase: str) -> None:
        now = time.monotonic()
        self.timings[self.phase] = now - self.phase_started
        self.phase, self.phase_started = phase, now

    def public(self) -> dict:
        elapsed = time.monotonic() - self.phase_started
        return {"id": self.id, "phase": self.phase, "expected_s": round(self.expected_s, 3),
                "elapsed_s": round(elapsed, 3), "measurement_id": self.measurement_id, "error": self.error,
                "timings_s": {k: round(v, 4) for k, v in self.timings.items()}}


class Station:
    def __init__(self, config: StationConfig, *, library=None, identifier=None):
        from fol.cases.evidence import clean_temporaries
        from fol.cases.store import CaseStore
        from fol.identification.pipeline import Identifier
        from fol.io.library import load_library

        self.config = config
        self.library = library if library is not None else load_library(config.library)
        self.identifier = identifier or Identifier(self.library)
        ev = config.evidence_dir or str(Path(config.db).with_name(Path(config.db).stem + "-evidence"))
        self.store = CaseStore(config.db, evidence_dir=ev)
        clean_temporaries(self.store.evidence_dir)
        self.defaults = dict(DEFAULT_SETTINGS.get(config.technique, DEFAULT_SETTINGS["raman"]))
        self.defaults.update(config.defaults or {})
        self._source = None
        self._source_lock = threading.Lock()   # one acquisition at a time: one instrument
        self._jobs: dict[str, Job] = {}
        self._jobs_lock = threading.Lock()
        self.instrument: dict | None = None
        self.instrument_error: str | None = None
        self.recovered = self.recover()

    def warm(self) -> None:
        """Build what the first analysis would otherwise build (mixture model, class-alarm model,
        search index), so that the first verdict is as fast as the others."""
        from fol.spectrum import Spectrum

        self.identifier.warm_caches()
        section = self.library.section(self.config.technique)
        row = section.raw[0]
        self.identifier.analyse_spectrum(Spectrum(section.grid, row + 0.01 * (row.max() or 1), section.technique),
                                         source="warm-up", entry="warm-up")

    # -- the instrument

    @property
    def port_label(self) -> str:
        return self.config.port or f"simulator ({self.config.simulate})"

    def _open(self):
        from drivers import open_source

        if self.config.port:
            return open_source(self.config.port, baudrate=self.config.baudrate, timeout=self.config.timeout)
        from drivers.simulator import ReferenceSet

        return open_source(f"sim:{self.config.simulate}", seed=self.config.seed, time_scale=self.config.time_scale,
                           timeout=self.config.timeout,
                           refset=ReferenceSet.from_library(self.library.section(self.config.technique)))

    def _connected(self):
        if self._source is None:
            self._source = self._open()
            self.instrument = self._source.describe()
            self.instrument_error = None
        return self._source

    def _drop(self, why: str) -> None:
        self.instrument_error = why
        if self._source is not None:
            try:
                self._source.close()
            except Exception:  # the port may be gone already
                pass
        self._source = None

    def refresh_instrument(self) -> dict | None:
        """Connect (if not connected) and read the instrument's identity and status now."""
        if not self._source_lock.acquire(timeout=0.05):
            return self.instrument  # busy measuring: the last reading stands
        try:
            src = self._connected()
            self.instrument = src.describe()
            self.instrument_error = None
        except FolError as e:
            self._drop(str(e))
        finally:
            self._source_lock.release()
        return self.instrument

    def close(self) -> None:
        with self._source_lock:
            self._drop("closed")
        self.store.close()

    # -- settings and case fields

    def check_case(self, case: dict) -> dict:
        from fol.cases.store import CASE_FIELDS

        clean = {k: str(case.get(k) or "").strip()[:2000] for k in CASE_FIELDS}
        missing = [k for k in self.config.required if not clean[k]]
        if missing:
            raise ConfigError("required case field(s) missing: " + ", ".join(LABELS.get(k, k) for k in missing))
        return clean

    def check_settings(self, form: dict) -> dict:
        from drivers.device import check_settings

        out = {}
        for key, cast in (("integration_ms", float), ("averages", int), ("laser_mw", float)):
            value = form.get(key)
            if value in (None, ""):
                value = self.defaults[key]
            try:
                out[key] = cast(float(value)) if cast is int else cast(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{LABELS[key]}: {value!r} is not a number") from None
        from drivers.device import LIMITS

        for key, value in out.items():
            low, high = LIMITS[key][1], LIMITS[key][2]
            if not low <= value <= high:
                raise ConfigError(f"{LABELS[key]}: {value:g} is outside {low:g}..{high:g}")
        check_settings(**out)
        return out

    # -- measuring

    def job(self, job_id: str) -> Job | None:
        with self._jobs_lock:
            return self._jobs.get(job_id)

    def busy(self) -> bool:
        with self._jobs_lock:
            return any(j.phase not in ("done", "failed") for j in self._jobs.values())

    def start_measurement(self, case: dict, form_settings: dict, *, actor: str | None = None) -> Job:
        case = self.check_case(case)
        settings = self.check_settings(form_settings)
        job = Job(uuid.uuid4().hex, case, settings)
        # the driver waits the nominal time before polling (also for a time-scaled simulator)
        job.expected_s = settings["integration_ms"] * settings["averages"] / 1000.0 + 0.05
        with self._jobs_lock:
            if any(j.phase not in ("done", "failed") for j in self._jobs.values()):
                raise ConfigError("the instrument is busy with another measurement")
            self._jobs[job.id] = job
            if len(self._jobs) > 200:  # forget old finished jobs
                for k in list(self._jobs)[:100]:
                    if self._jobs[k].phase in ("done", "failed"):
                        del self._jobs[k]
        threading.Thread(target=self._run, args=(job, actor), name=f"measure-{job.id[:8]}", daemon=True).start()
        return job

    def _run(self, job: Job, actor: str | None) -> None:
        try:
            job.measurement_id = self.measure(job, actor=actor)
            job.set("done")
        except FolError as e:
            job.error = str(e)
            job.set("failed")
        except Exception as e:  # a bug must still end the job visibly, never hang the page
            log.exception("measurement failed")
            job.error = f"internal error: {e}"
            job.set("failed")

    def measure(self, job: Job, *, actor: str | None = None) -> int:
        """Acquire, record, analyse, index (the order of the module doc); returns the measurement id."""
        from fol.cases.evidence import write_evidence

        with self._source_lock:
            job.set("connecting")
            try:
                src = self._connected()
                job.set("integrating")
                s = job.settings
                spectrum = src.acquire(integration_ms=s["integration_ms"], averages=s["averages"],
                                       laser_mw=s["laser_mw"])
            except FolError as e:
                self._drop(str(e))
                raise
        job.set("recording")
        try:
            ev = write_evidence(self.store.evidence_dir, spectrum, job.case)
        except OSError as e:
            raise StationError(f"{self.store.evidence_dir}: cannot write the evidence recording "
                               f"({e.strerror or e}); nothing was recorded: fix the disk and measure again") from None
        job.set("analysing")
        try:
            return self._index(spectrum, ev, job.case, actor=actor or job.case.get("operator"))
        except Exception as e:  # the spectrum is safe in its recording; the next start indexes it
            log.exception("analysis or indexing failed")
            raise StationError(f"the spectrum was recorded ({ev['path']}) but could not be analysed or indexed: "
                               f"{e}; restart the station to index it") from None

    def _index(self, spectrum, ev: dict, case: dict, *, actor: str | None, action: str = "measurement") -> int:
        md = dict(spectrum.metadata)
        result = self.identifier.analyse_spectrum(spectrum, source=ev["recording"], entry=ev["entry"])
        result["spectrum_sha256"] = ev["spectrum_sha256"]
        instrument = {k: md.get(k) for k in ("maker", "model", "serial", "firmware", "technique",
                                            "excitation_wavelength_nm", "resolution_cm1",
                                            "detector_temperature_c", "source", "acquired_utc") if k in md}
        settings = {"integration_ms": md.get("integration_time_ms"), "averages": md.get("averages"),
                    "laser_mw": md.get("laser_power_mw"), "device_errors": md.get("device_errors") or []}
        return self.store.add_measurement(case=case, recording=ev["recording"], entry=ev["entry"],
                                          spectrum_sha256=ev["spectrum_sha256"],
                                          recording_sha256=ev["recording_sha256"], instrument=instrument,
                                          settings=settings, result=result, actor=actor, action=action,
                                          created_utc=md.get("acquired_utc"))

    def recover(self) -> list[int]:
        """Index evidence files no row names (a process killed between recording and indexing)."""
        from fol.cases.evidence import case_of, read_evidence
        from fol.cases.store import file_sha256, spectrum_sha256, unindexed

        done = []
        for path in unindexed(self.store.evidence_dir, self.store.indexed_recordings()):
            try:
                spectrum, info = read_evidence(path)
            except FolError as e:
                log.warning("evidence file %s cannot be read: %s", path, e)
                continue
            rel = path.relative_to(self.store.evidence_dir).as_posix()
            ev = {"recording": rel, "entry": info.name, "spectrum_sha256": spectrum_sha256(
                spectrum.wavenumber, spectrum.intensity), "recording_sha256": file_sha256(path)}
            md = dict(spectrum.metadata)
            md.setdefault("acquired_utc", info.start_time)
            from fol.spectrum import Spectrum

            spectrum = Spectrum(spectrum.wavenumber, spectrum.intensity, spectrum.technique, spectrum.unit,
                                {**md, **info.instrument, "integration_time_ms": info.instrument.get(
                                    "integration_time_ms"), "averages": info.instrument.get("averages"),
                                 "laser_power_mw": info.instrument.get("laser_power_mw")})
            try:
                done.append(self._index(spectrum, ev, case_of(info.sample), actor="recovery", action="recovered"))
            except Exception as e:  # never let one bad file stop the station; verify keeps naming it
                log.warning("evidence file %s could not be indexed: %s", path, e)
        return done

    # -- reading back

    def spectrum_of(self, m: dict):
        from fol.cases.evidence import read_evidence

        spectrum, _ = read_evidence(self.store.evidence_dir / m["recording"])
        return spectrum

    def plot(self, m: dict, fmt: str = "svg") -> bytes:
        from fol.station.plot import decomposition, render

        spectrum = self.spectrum_of(m)
        return render(decomposition(self.identifier, spectrum, m["result"]), spectrum, fmt)

    def regression(self, identifier=None, limit: int = 500) -> list[dict]:
        """Re-analyse stored spectra with ``identifier`` (default: the station's library) and
        list the measurements whose verdict, alarm or components changed."""
        identifier = identifier or self.identifier
        out = []
        for row in self.store.search(limit=limit):
            m = self.store.get(row["id"])
            try:
                spectrum = self.spectrum_of(m)
            except FolError as e:
                out.append({"m": m, "error": str(e)})
                continue
            new = identifier.analyse_spectrum(spectrum, source=m["recording"], entry=m["entry"])
            old = m["result"]
            key = lambda r: (r.get("verdict"), bool(r.get("alarm")),  # noqa: E731
                             tuple(sorted(c["name"] for c in r.get("components") or [])))
            if key(old) != key(new) or old.get("library", {}).get("sha256") != new["library"]["sha256"]:
                out.append({"m": m, "old": old, "new": new, "changed": key(old) != key(new)})
        return out


LABELS = {"case_no": "Case number", "item_no": "Item number", "operator": "Operator",
          "description": "Sample description", "notes": "Notes", "integration_ms": "Integration time (ms)",
          "averages": "Averages", "laser_mw": "Laser power (mW)"}


#: what to tell the officer for each quality flag
ADVICE = {
    "saturated": "The detector saturated (the strongest band is clipped): lower the laser power or the "
                 "integration time and measure again. The result of a saturated spectrum is not reliable.",
    "low_snr": "The signal is weak: increase the integration time or the number of averages (or the laser "
               "power), check the sample is at the focus, and measure again.",
    "high_fluorescence": "Strong fluorescence background: bands may be hidden. Try a lower laser power, "
                         "another spot of the sample, or confirm by FTIR.",
    "detector_warm": "The detector was not at its working temperature: wait for it to cool and measure again.",
    "axis_out_of_range": "The spectrum does not cover the library's range: check the instrument's settings.",
}
#: flags after which the page offers the Re-measure button with changed settings
REMEASURE = ("saturated", "low_snr", "detector_warm")


def suggested_settings(flags, settings: dict) -> dict:
    """Settings to propose for a re-measurement after these quality flags."""
    s = {"integration_ms": float(settings.get("integration_ms") or 1000.0),
         "averages": int(settings.get("averages") or 1), "laser_mw": float(settings.get("laser_mw") or 0.0)}
    if "saturated" in flags:
        s["integration_ms"] = max(1.0, round(s["integration_ms"] / 4.0, 1))
        if s["laser_mw"] > 50:
            s["laser_mw"] = round(s["laser_mw"] / 2.0, 1)
    elif "low_snr" in flags:
        s["integration_ms"] = min(60000.0, s["integration_ms"] * 4.0)
        s["averages"] = min(1000, s["averages"] * 2)
    return s
