"""Replay source: a recording (recording-format.md) played back as if it were an analyzer.

``file:REC.h5`` replays every spectrum of every entry, in the recording's entry order
and row order; ``file:REC.h5#ENTRY`` only that entry's rows. Each ``acquire()``
returns the next spectrum; past the last one it raises ``DeviceError``. A recording
cannot be reconfigured, so the settings passed to ``acquire`` are ignored: the
spectrum's metadata says what the instrument used when it was recorded.
"""

from __future__ import annotations

from fol.errors import DeviceError, FormatError
from fol.spectrum import Spectrum

from drivers.device import quality_flags


class RecordingSource:
    """Spectra of a recording, one per ``acquire()``; a context manager like the device sources."""

    def __init__(self, path: str, entry: str | None = None):
        from fol.io.recording import Recording

        self.path = str(path)
        self._recording = Recording(self.path)
        try:
            infos = [self._recording.entry(entry)] if entry else list(self._recording.entries)
            if not infos:
                raise FormatError(f"{self.path}: the recording holds no entries")
        except BaseException:
            self._recording.close()
            raise
        self._closed = False
        self._infos = infos
        self._rows = ((info, i) for info in infos for i in range(info.n_rows))
        self.total = sum(info.n_rows for info in infos)
        self.replayed = 0

    def describe(self) -> dict:
        """The first entry's instrument attributes, plus what the recording holds."""
        self._check_open()
        first = self._infos[0]
        return {**first.instrument, "technique": first.technique, "unit": first.unit, "source": self.path,
                "entries": [info.name for info in self._infos], "spectra": self.total, "replayed": self.replayed}

    def acquire(self, *, integration_ms=None, averages=None, laser_mw=None) -> Spectrum:
        """The next spectrum (settings are ignored: see the module docstring)."""
        self._check_open()
        nxt = next(self._rows, None)
        if nxt is None:
            raise DeviceError(f"{self.path}: all {self.total} spectra of the recording have been replayed")
        info, i = nxt
        chunk = self._recording.read(info, i, i + 1)
        problem = chunk.batch.invalid.get(0)
        if problem:
            raise FormatError(f"{self.path}, entry {info.name!r}{f', row {i}' if info.stacked else ''}: {problem}")
        self.replayed += 1
        s = chunk.batch[0]
        metadata = {**s.metadata, "index": i, "flags": quality_flags(chunk.device_errors)}
        return Spectrum(s.wavenumber, s.intensity, s.technique, s.unit, metadata)

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceError(f"{self.path}: the source is closed")

    def close(self) -> None:
        self._closed = True
        self._recording.close()

    def __enter__(self) -> "RecordingSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
