"""Measured spectra files: one module per format, a registry, and two entry points.

``read_spectra_file(path, technique=None)`` returns ``(name hint, Spectrum)`` pairs, one
per spectrum in the file; ``read_spectrum(path, technique=None)`` returns the one
spectrum of a single-spectrum file (any format below, or a fol HDF5 recording through
``fol.io.recording``). Both raise ``FormatError`` naming the file and the reason for
anything that is not a mid-infrared or Raman spectrum of the library's range (NIR,
UV/visible, GC-MS, NMR, interferograms, constant data).

``technique`` applies only to files that do not say what they hold (a two-column table
without a header, a JCAMP-DX block without DATA TYPE); what a file says wins. Each
spectrum's metadata records ``technique_from`` (``file`` or ``given``).

The format is recognised by content first (``sniff``), then by suffix. Registered, in
order of precedence (see docs/formats.md):

==============  ======================================  ==========================
name            module                                  recognised by
==============  ======================================  ==========================
hdf5            fol.io.recording (read_spectrum only)   HDF5 signature
enfsi-zip       fol.io.formats.enfsi_zip                zip signature, or a folder
spc             fol.io.formats.vendor (spc-io)          ``.spc``
opus            fol.io.formats.vendor (brukeropus)      ``.0``, ``.1``, ... ``.opus``
spa             fol.io.formats.vendor (spectrochempy)   ``.spa``
wdf             fol.io.formats.vendor (renishaw-wdf)    ``WDF1`` / ``.wdf``
jcamp           fol.io.formats.jcamp                    ``##`` at the start
bwtek           fol.io.formats.bwtek                    ``File Version;BW``
enlighten       fol.io.formats.enlighten                ``ENLIGHTEN Version,``
enfsi-json      fol.io.formats.synth_json               ``{`` or ``[``
text            fol.io.formats.text                     any other text
==============  ======================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fol.errors import FormatError
from fol.io.formats import bwtek, enfsi_zip, enlighten, jcamp, synth_json, text, vendor
from fol.spectrum import Spectrum, check_technique

Reader = Callable[[Path, "str | None"], "list[tuple[str, Spectrum]]"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    sniff: Callable[[bytes, Path], bool]
    read: Reader
    binary: bool = False


#: the registry, in order of precedence; ``register`` adds a format in front of the text fallback
FORMATS: list[Format] = [
    Format("enfsi-zip", "zip or folder of JCAMP-DX files (ENFSI DWG IR library)", enfsi_zip.sniff, enfsi_zip.read, True),
    Format("spc", "Galactic/Thermo SPC", vendor.sniff_spc, vendor.read_spc, True),
    Format("opus", "Bruker OPUS", vendor.sniff_opus, vendor.read_opus, True),
    Format("spa", "Thermo OMNIC SPA", vendor.sniff_spa, vendor.read_spa, True),
    Format("wdf", "Renishaw WDF", vendor.sniff_wdf, vendor.read_wdf, True),
    Format("jcamp", "JCAMP-DX", jcamp.sniff, jcamp.read),
    Format("bwtek", "B&W Tek BWSpec text", bwtek.sniff, bwtek.read),
    Format("enlighten", "Wasatch ENLIGHTEN CSV", enlighten.sniff, enlighten.read),
    Format("enfsi-json", "ENFSI/spectral-synth JSON records", synth_json.sniff, synth_json.read),
    Format("text", "text table (CSV/TXT)", text.sniff, text.read),
]

#: binary formats nobody reads here, by suffix, for the error message
UNSUPPORTED = {".asp": "Agilent ASP", ".h5": "HDF5 (not a fol recording)", ".hdf5": "HDF5 (not a fol recording)",
               ".pdf": "PDF", ".xlsx": "Excel workbook", ".xls": "Excel workbook", ".rar": "RAR archive",
               ".7z": "7-Zip archive"}


def register(fmt: Format) -> None:
    """Add a format (tried before the plain-text fallback)."""
    FORMATS.insert(len(FORMATS) - 1, fmt)


def check_readable(path: Path) -> None:
    """Refuse, before opening, what cannot be read without hanging: missing paths, FIFOs, devices, sockets
    (folders are formats too: an ENFSI DWG folder)."""
    from fol.paths import special_kind

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FormatError(f"{path}: cannot read (no such file)") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    kind = special_kind(mode)
    if kind and kind != "a directory":
        raise FormatError(f"{path}: not a regular file ({kind})")


def detect(path: str | Path) -> Format:
    """The format of a file or folder, by content then suffix; FormatError if none."""
    path = Path(path)
    check_readable(path)
    if path.is_dir():
        return FORMATS[0]
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    if head.startswith(HDF5_SIGNATURE):
        raise FormatError(f"{path}: an HDF5 file: read recordings with fol.io.recording (fol identify --file "
                          "takes them), libraries with fol.io.library")
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED:
        raise FormatError(f"{path}: unsupported format ({UNSUPPORTED[suffix]}); export the spectrum as "
                          "JCAMP-DX or CSV")
    for fmt in FORMATS:
        if fmt.sniff(head, path):
            if fmt.name == "text" and b"\x00" in head:
                raise FormatError(f"{path}: unsupported format (binary data of an unknown kind); export the "
                                  "spectrum as JCAMP-DX or CSV")
            if fmt.name == "text" and suffix in jcamp.SUFFIXES:
                raise FormatError(f"{path}: not JCAMP-DX (a JCAMP-DX file starts with '##TITLE=')")
            return fmt
    raise FormatError(f"{path}: unsupported format")  # unreachable: text claims everything


def read_spectra_file(path: str | Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    """Every spectrum in a file (or a folder of JCAMP-DX files), each with a name hint.

    ``technique`` ("raman"/"ftir") is used only where the file does not say.
    """
    technique = check_technique(technique) if technique else None
    path = Path(path)
    return detect(path).read(path, technique)


def read_spectrum(path: str | Path, technique: str | None = None, *, entry: str | None = None,
                  index: int = 0) -> Spectrum:
    """The one spectrum of a single-spectrum file in any supported format, or of a fol recording.

    A recording (HDF5) goes through ``fol.io.recording.read_spectrum`` (``entry``/``index``
    choose the row). A file holding several spectra (a compound JCAMP-DX, a map) is
    refused unless ``index`` picks one.
    """
    path = Path(path)
    check_readable(path)
    is_hdf5 = False
    if not path.is_dir():
        try:
            with open(path, "rb") as fh:
                is_hdf5 = fh.read(8) == HDF5_SIGNATURE
        except OSError as e:
            raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    if is_hdf5:
        from fol.io.recording import read_spectrum as read_recording

        return read_recording(path, entry, index)[0]
    spectra = read_spectra_file(path, technique)
    if len(spectra) > 1 and index == 0 and entry is None:
        raise FormatError(f"{path}: holds {len(spectra)} spectra; choose one with --index "
                          f"(0..{len(spectra) - 1})")
    if not 0 <= index < len(spectra):
        raise FormatError(f"{path}: no spectrum {index} (the file holds {len(spectra)})")
    name, s = spectra[index]
    s.metadata.setdefault("sample", name)
    return s


def read_spectrum_entry(path: str | Path, technique: str | None = None, entry: str | None = None,
                        index: int = 0) -> tuple[Spectrum, str]:
    """``(spectrum, entry name)`` for ``fol identify --file``: a recording's entry name, else the file's name hint."""
    path = Path(path)
    check_readable(path)
    if path.is_file():
        with open(path, "rb") as fh:
            if fh.read(8) == HDF5_SIGNATURE:
                from fol.io.recording import read_spectrum as read_recording

                s, info = read_recording(path, entry, index)
                return s, info.name
    s = read_spectrum(path, technique, index=index)
    return s, str(s.metadata.get("sample") or path.stem)


_DOC_SUFFIXES = (".md", ".pdf", ".doc", ".docx", ".html", ".htm", ".rtf", ".xml", ".png", ".jpg", ".json.license")


def is_document(path: Path) -> bool:
    """Documentation that comes with a folder of spectra (readme, licence, PDF): skipped, not refused."""
    n = path.name.lower()
    return n.startswith(("readme", "license", "licence", "notice", "copying")) or n.endswith(_DOC_SUFFIXES)


def is_recording(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file (a fol recording, for ``fol.io.recording``)."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(8) == HDF5_SIGNATURE


def recordings_for(paths, workdir: str | Path, technique: str | None = None) -> list[str]:
    """``paths`` for ``fol replay``: recordings as they are; spectra files of any other format written,
    in order, as one entry each into ``workdir/spectra-files.h5`` (refused files raise FormatError)."""
    from fol.io.recording import RecordingWriter

    out, others = [], []
    for p in map(str, paths):
        if is_recording(p):
            out.append(p)
        else:
            others.append(p)
    if others:
        target = Path(workdir) / "spectra-files.h5"
        with RecordingWriter(target) as w:
            for p in others:
                for k, (name, s) in enumerate(read_spectra_file(p, technique)):
                    meta = {k2: v for k2, v in s.metadata.items() if isinstance(v, (str, int, float, bool))}
                    w.add_spectrum(Spectrum(s.wavenumber, s.intensity, s.technique, s.unit, meta),
                                   name=f"{Path(p).name}" + (f"#{k}" if k else ""))
        out.append(str(target))
    return out


def read_collection(path: str | Path, technique: str | None = None, *, progress=None, jobs: int | None = None
                    ) -> tuple[list[tuple[str, Spectrum]], list[str]]:
    """(spectra, refusal messages) of one path: a container reports its members one by one."""
    technique = check_technique(technique) if technique else None
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and not is_document(p))
        if all(p.suffix.lower() in jcamp.SUFFIXES for p in files):  # a JCAMP-DX library: read in parallel
            return enfsi_zip.read_collection(path, technique, progress=progress, jobs=jobs)
        spectra, refused = [], []
        for k, p in enumerate(files, start=1):
            try:
                got, bad = read_collection(p, technique, jobs=jobs)
                spectra += got
                refused += bad
            except FormatError as e:
                refused.append(str(e))
            if progress:
                progress(k, len(files))
        if not files:
            refused.append(f"{path}: an empty folder")
        return spectra, refused
    fmt = detect(path)
    if fmt.name == "enfsi-zip":
        return enfsi_zip.read_collection(path, technique, progress=progress, jobs=jobs)
    return fmt.read(path, technique), []


__all__ = ["FORMATS", "Format", "detect", "read_collection", "read_spectra_file", "read_spectrum",
           "read_spectrum_entry", "recordings_for", "register"]
