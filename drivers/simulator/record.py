"""Writing simulated recordings with ground truth: the one place that turns the measurement
model's spectra into recording entries (used by ``fol simulate record`` and the accuracy and
calibration benches of ``fol.qa.evaluation``)."""

from __future__ import annotations

import numpy as np

from drivers.simulator.model import ReferenceSet, parse_sample, simulate_batch

#: spectra simulated (and held) at once
CHUNK_ROWS = 2048


def record_simulated(writer, refset: ReferenceSet, sample: str, n: int, rng: np.random.Generator, *,
                     stack: bool = False, expected: dict | None = None, description: str | None = None,
                     chunk_rows: int = CHUNK_ROWS, dtype: str = "float32", **conditions) -> list[str]:
    """Simulate ``n`` spectra of ``sample`` and write them to ``writer`` (a ``RecordingWriter``).

    ``stack``: one stacked entry, appended ``chunk_rows`` rows at a time, intensities stored as
    ``dtype``; otherwise one entry per spectrum, a saturated one carrying device error 202 as a
    real analyzer reports it. Every row gets ``expected`` (default: the parsed ``sample``) as its
    ground truth and the instrument attributes of the measurement model. ``conditions`` go to
    ``simulate_batch`` (``instrument``, ``integration_ms``, ``averages``, ``laser_mw``, ``snr``, ...).
    The same ``rng`` state gives the same spectra. Returns the entry names written.
    """
    from fol.io.recording import INSTRUMENT_KEYS

    expected = parse_sample(sample, refset) if expected is None else expected
    sample_attrs = {"description": description or f"simulated: {sample}"}
    entries: list[str] = []
    appender = None
    for start in range(0, n, chunk_rows):
        batch = simulate_batch(refset, sample, min(chunk_rows, n - start), rng, **conditions)
        attrs = {k: batch.metadata[k] for k in INSTRUMENT_KEYS if k in batch.metadata}
        if stack:
            if appender is None:
                appender = writer.create_stack(None, batch.wavenumber, batch.technique, batch.unit,
                                               instrument=attrs, sample=sample_attrs, dtype=dtype)
                entries.append(appender.name)
            appender.append(np.asarray(batch.intensity, dtype=dtype), expected=[expected] * len(batch))
            continue
        saturated = set(batch.metadata.get("saturated_rows", ()))
        for i in range(len(batch)):
            errors = [[202, "Detector saturated"]] if i in saturated else []
            entries.append(writer.add_spectrum(batch[i], instrument=attrs, sample=sample_attrs, expected=expected,
                                               device_errors=errors))
    return entries
