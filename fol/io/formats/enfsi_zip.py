"""The ENFSI DWG IR library as it is distributed: a zip, or an unpacked folder tree, of JCAMP-DX files.

Every JCAMP-DX member (by suffix, or content starting with ``##``) is one or more
measurements; titles ``#NNNNv - Substance Name`` give the ENFSI id, the validated flag
(``v``) and the name (``fol.io.formats.jcamp``). Other members (readme, PDF) are skipped
silently; a member that claims to be JCAMP-DX but cannot be read is refused with its
name. ``read_collection`` returns what was read and what was refused, member by member,
so a batch import can report both; ``read`` (one file of ``read_spectra_file``) refuses
the whole container at the first bad member.

Reading runs on ``jobs`` processes (default: the CPUs this process may use, at most 2
per 1,000 members), in chunks, order kept.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fol.errors import FormatError
from fol.io.formats import jcamp
from fol.spectrum import Spectrum

CHUNK = 200


def sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"PK\x03\x04")


def _is_jcamp_name(name: str) -> bool:
    return name.lower().endswith(jcamp.SUFFIXES)


def members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, bytes) of every JCAMP-DX member of a zip or folder tree, in name order."""
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            if _is_jcamp_name(p.name):
                yield str(p), p.read_bytes()
            elif p.suffix.lower() in ("", ".txt"):
                with open(p, "rb") as fh:
                    if fh.read(2) == b"##":
                        yield str(p), p.read_bytes()
        return
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise FormatError(f"{path}: not a readable zip archive ({e})") from None
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir() or "__MACOSX" in info.filename:
                continue
            name = info.filename
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, OSError, NotImplementedError) as e:
                yield f"{path}!{name}", e  # type: ignore[misc]
                continue
            if _is_jcamp_name(name) or data[:2] == b"##":
                yield f"{path}!{name}", data


def _parse_chunk(chunk: list[tuple[str, bytes]], technique: str | None):
    out = []
    for label, data in chunk:
        if isinstance(data, Exception):
            out.append((label, None, f"{label}: cannot read the member ({data})"))
            continue
        try:
            out.append((label, jcamp.parse(data, label, technique), None))
        except FormatError as e:
            out.append((label, None, str(e)))
    return out


def read_collection(path: str | Path, technique: str | None = None, *, jobs: int | None = None,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[list[tuple[str, Spectrum]], list[str]]:
    """(spectra with name hints, refusal messages) of a zip or folder of JCAMP-DX files."""
    path = Path(path)
    items = list(members(path))
    if not items:
        raise FormatError(f"{path}: no JCAMP-DX files in the {'folder' if path.is_dir() else 'zip archive'}")
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    if jobs is None:
        jobs = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                   max(1, len(items) // 500))
    spectra: list[tuple[str, Spectrum]] = []
    refused: list[str] = []
    done = 0

    def take(results):
        nonlocal done
        for _, got, err in results:
            if err:
                refused.append(err)
            else:
                spectra.extend(got)
        done += len(results)
        if progress:
            progress(done, len(items))

    if jobs > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for results in pool.map(_parse_chunk, chunks, [technique] * len(chunks)):
                take(results)
    else:
        for chunk in chunks:
            take(_parse_chunk(chunk, technique))
    return spectra, refused


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    spectra, refused = read_collection(path, technique)
    if refused:
        raise FormatError(refused[0] + (f" (and {len(refused) - 1} more members refused)" if len(refused) > 1 else ""))
    return spectra
