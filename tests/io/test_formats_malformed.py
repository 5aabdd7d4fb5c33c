"""Broken spectrum files of every import format: each read, or refused in one line naming the file,
in bounded time and memory (issue 14.18 for the import formats).

Each case starts from a real file of ``../shared/data/real`` (one per format) and breaks it:
truncated at several offsets, bytes flipped, non-UTF-8 bytes, numbers replaced by NaN, inf and
huge values, emptied, and a sparse file far larger than any spectrum. A forked child (memory
limited to 1.5 GiB more than it already uses) reads it with ``read_spectra_file`` under a
timeout. Acceptable outcomes: spectra with a finite axis and no infinite intensity (NaN marks a
dead pixel, which the recipe fills), or a ``FormatError`` whose message is one line, starts with
the path and is short. A hang, another exception or the
memory limit is a failure.
"""

from __future__ import annotations

import os
import re
import traceback
import zlib

import numpy as np
import pytest

from builders import REAL, run_bounded
from fol.errors import FormatError
from fol.io.formats import read_spectra_file

CASE_TIMEOUT_S = 30

#: one real file per format, with the technique to pass where the file does not say
SOURCES = {
    "jcamp": ("jcamp/infrared_spectra/chloroform.jdx", None),
    "text": ("raman_wasatch_enlighten/set3_legacy_2024-12-06/acetone.csv", "raman"),
    "enlighten": ("raman_wasatch_enlighten/set1_WP-01990_WP-785XS_2026-04-06/1-Butanol.csv", None),
    "enfsi-json": (None, None),  # the first ENFSI record (found below)
    "opus": ("vendor_formats/openspecy/ftir_ps.0", None),
    "spc": ("vendor_formats/spectrochempy/galacticdata/BENZENE.SPC", "ftir"),
}
TEXT_FORMATS = ("jcamp", "text", "enlighten", "enfsi-json")


def _source(kind: str):
    rel, technique = SOURCES[kind]
    path = next(iter(sorted((REAL / "enfsi_ir").glob("*.json"))), None) if rel is None else REAL / rel
    if path is None or not path.exists():
        pytest.skip(f"real file for {kind} not present under {REAL}")
    return path, technique


def _read(path: str, technique) -> tuple[str, str]:
    try:
        spectra = read_spectra_file(path, technique)
        # NaN intensities are dead pixels (the recipe fills them); infinities and a broken axis are not
        bad = [name for name, s in spectra if np.isinf(s.intensity).any() or not np.isfinite(s.wavenumber).all()
               or np.isnan(s.intensity).all()]
        return ("ok", "") if not bad else ("crash", f"non-finite values accepted in {bad}")
    except FormatError as e:
        return "FormatError", str(e)
    except BaseException as e:  # noqa: BLE001 - the test reports it
        return "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def outcome(path, technique) -> tuple[str, str]:
    return run_bounded(_read, str(path), technique, timeout_s=CASE_TIMEOUT_S)


def _mutations(data: bytes, text: bool, rng: np.random.Generator) -> dict[str, bytes]:
    out = {f"truncated at {int(f * 100)} %": data[: int(len(data) * f)] for f in (0.05, 0.33, 0.66, 0.95)}
    out["empty"] = b""
    flipped = bytearray(data)
    for pos in rng.integers(0, len(data), 64):
        flipped[pos] ^= 0xFF
    out["64 bytes flipped"] = bytes(flipped)
    junk = bytearray(data)
    for pos in rng.integers(0, len(data), 32):
        junk[pos:pos + 1] = b"\xff\xfe\x80"
    out["non-UTF-8 bytes"] = bytes(junk)
    if text:
        numbers = list(re.finditer(rb"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?", data))
        for label, value in (("NaN", b"NaN"), ("inf", b"inf"), ("1e308", b"1e308"), ("1e999", b"1e999")):
            edited = bytearray(data)
            for m in reversed([numbers[i] for i in sorted(rng.choice(len(numbers), min(20, len(numbers)), replace=False))]
                              if numbers else []):
                edited[m.start():m.end()] = value
            out[f"numbers replaced by {label}"] = bytes(edited)
        out["one huge line"] = data[: len(data) // 2] + b"1" * (8 << 20) + data[len(data) // 2:]
    return out


CASES = [(kind, label) for kind in SOURCES for label in
         [f"truncated at {p} %" for p in (5, 33, 66, 95)] + ["empty", "64 bytes flipped", "non-UTF-8 bytes"]
         + ([f"numbers replaced by {v}" for v in ("NaN", "inf", "1e308", "1e999")] + ["one huge line"]
            if kind in TEXT_FORMATS else [])]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind, label", CASES, ids=[f"{k}: {c}" for k, c in CASES])
def test_broken_file_is_read_or_refused_in_one_line(tmp_path, kind, label):
    src, technique = _source(kind)
    data = src.read_bytes()
    mutated = _mutations(data, kind in TEXT_FORMATS, np.random.default_rng(zlib.crc32(f"{kind}/{label}".encode())))[label]
    path = tmp_path / src.name  # the same name: suffix-based detection sees what it would see
    path.write_bytes(mutated)
    status, message = outcome(path, technique)
    assert status in ("ok", "FormatError"), f"{kind} / {label}: {status}: {message}"
    if status == "FormatError":
        assert message.startswith(str(path)) and "\n" not in message and len(message) < 600, message


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:  # text at its head, then sparse: no disk space or memory used
        f.write(b"".join(b"%d,%d\n" % (200 + i, i % 97) for i in range(2000)))
        f.truncate(300 << 20)
    status, message = outcome(path, "raman")
    assert status == "FormatError" and "too large" in message and message.startswith(str(path))


def test_special_files_are_refused_without_opening(tmp_path):
    fifo = tmp_path / "spectrum.csv"
    os.mkfifo(fifo)
    status, message = outcome(fifo, "raman")
    assert status == "FormatError" and "not a regular file" in message, (status, message)
