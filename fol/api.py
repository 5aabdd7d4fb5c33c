"""The public Python API (re-exported lazily by ``fol``): the calls a chemist makes in a notebook.

>>> import fol
>>> lib = fol.load_library()                               # the shipped library, or a path
>>> result = fol.identify("sample.h5", library=lib)        # doctest: +SKIP
>>> s = fol.read_spectrum("sample.jdx")                    # doctest: +SKIP
>>> with fol.open_source("sim:fentanyl:0.2,mannitol:0.8") as src:   # doctest: +SKIP
...     result = fol.identify(src.acquire(), library=lib)

Everything here is a thin layer over the stage packages (``fol.io``, ``fol.identification``,
``drivers``); the command line uses the same calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from fol.identification.pipeline import Identifier
    from fol.io.library import Library
    from fol.spectrum import Spectrum

#: the public names of ``fol`` -> (module, attribute), imported on first access (``fol.__getattr__``)
PUBLIC = {
    "load_library": ("fol.api", "load_library"),
    "identify": ("fol.api", "identify"),
    "read_spectrum": ("fol.api", "read_spectrum"),
    "open_source": ("fol.api", "open_source"),
    "Spectrum": ("fol.spectrum", "Spectrum"),
    "SpectrumBatch": ("fol.spectrum", "SpectrumBatch"),
    "Identifier": ("fol.identification.pipeline", "Identifier"),
    "Library": ("fol.io.library", "Library"),
    "Recording": ("fol.io.recording", "Recording"),
    "RecordingWriter": ("fol.io.recording", "RecordingWriter"),
    "FolError": ("fol.errors", "FolError"),
}


def public(name: str):
    """The public object ``fol.<name>`` (imported now, then kept as an attribute of ``fol``)."""
    import importlib

    import fol

    try:
        module, attr = PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'fol' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    setattr(fol, name, value)
    return value


#: one ``Identifier`` per (library, settings), kept so that repeated calls reuse its prepared searcher and models
_IDENTIFIERS: dict[tuple, "Identifier"] = {}


def load_library(path: str | Path | None = None, *, allow_unverified: bool = False) -> "Library":
    """Load a reference library.

    Parameters
    ----------
    path : str or Path, optional
        A library file written by ``fol library import|build``. Default: ``$FOL_LIBRARY``,
        else the shipped computed library.
    allow_unverified : bool
        Load a library whose content hash does not match (results then carry the flag
        ``unverified_library``).

    Returns
    -------
    fol.io.library.Library
        Per-technique sections (``lib.section("raman")``), names, classes, provenance.

    Raises
    ------
    fol.errors.LibraryError
        The file is missing, not a fol library, or fails its hash check; the message names it.
    """
    from fol.io.library import load_library as _load

    return _load(path, allow_unverified=allow_unverified)


def read_spectrum(path: str | Path, *, technique: str | None = None, entry: str | None = None,
                  index: int = 0) -> "Spectrum":
    """Read one spectrum from a file.

    Parameters
    ----------
    path : str or Path
        An HDF5 recording (``recording-format.md``) or any single-spectrum file the importers
        read (JCAMP-DX, CSV/TXT, vendor formats: ``docs/formats.md``).
    technique : {"raman", "ftir"}, optional
        For files that do not say which technique they hold.
    entry, index : optional
        For files that hold several spectra: a recording's entry name and row of a stack, or
        the spectrum's position in a multi-spectrum file (default: the first, row 0).

    Returns
    -------
    fol.spectrum.Spectrum

    Raises
    ------
    fol.errors.FormatError
        The file cannot be read, holds no spectrum, or holds several (say which with
        ``entry``/``index`` for a recording); the message names the file.
    """
    from fol.io.formats import read_spectrum as _read

    return _read(path, technique, entry=entry, index=index)


def open_source(uri: str, **options):
    """Open a spectrum source: a context manager with ``describe()``, ``acquire(...)`` and ``close()``.

    Parameters
    ----------
    uri : str
        ``/dev/ttyUSB0``, a pty path, ``socket://host:port`` or ``rfc2217://...`` (a real
        analyzer, ``analyzer-protocol.md``); ``sim:SPEC`` (the in-process simulated analyzer,
        e.g. ``sim:fentanyl:0.2,mannitol:0.8``); ``file:REC.h5#entry`` (replay a recording).
    **options
        ``baudrate``, ``timeout`` for serial sources; ``seed``, ``technique``, ``refset`` for
        ``sim:``.
    """
    from drivers import open_source as _open

    return _open(uri, **options)


def identify(spectrum: Any, library: "Library | str | Path | None" = None, *, technique: str | None = None,
             similarity: str = "pearson", top: int = 10, mixture: bool = True, class_alarm: bool = True,
             source: str | None = None, entry: str | None = None) -> dict:
    """Identify one spectrum against a library.

    Parameters
    ----------
    spectrum : path, Spectrum or (axis, intensities, technique)
        A file (``read_spectrum``), a ``fol.spectrum.Spectrum``, or a tuple of the wavenumber
        axis (cm-1), the intensities and the technique ("raman" or "ftir").
    library : Library, path or None
        A loaded library, a library path, or None for ``load_library()``.
    technique : str, optional
        For files that do not say which technique they hold.
    similarity : {"pearson", "derivative"}
        Similarity of the single-substance search.
    top : int
        Number of library hits reported.
    mixture, class_alarm : bool
        Run mixture analysis and the class alarm for unlisted fentanyl analogues (the defaults,
        as ``fol identify`` does).
    source, entry : str, optional
        Where the spectrum came from, as recorded in the result (default: the path, or
        ``"python"``).

    Returns
    -------
    dict
        The result object of ``result-format.md`` (verdict, alarm, hits, components, quality,
        library provenance, flags), plus the keys documented in ``docs/identification.md``.
    """
    from fol.identification.pipeline import Identifier
    from fol.io.library import Library
    from fol.spectrum import Spectrum

    where = source
    if isinstance(spectrum, (str, Path)):
        where = where or str(spectrum)
        spectrum = read_spectrum(spectrum, technique=technique)
    elif isinstance(spectrum, tuple):
        if len(spectrum) != 3:
            raise TypeError("a spectrum tuple is (axis, intensities, technique)")
        spectrum = Spectrum(spectrum[0], spectrum[1], spectrum[2])
    elif not isinstance(spectrum, Spectrum):
        raise TypeError(f"expected a path, a Spectrum or (axis, intensities, technique), got {type(spectrum).__name__}")
    if not isinstance(library, Library):
        library = load_library(library)
    key = (id(library), library.sha256, similarity, int(top), bool(mixture), bool(class_alarm))
    ident = _IDENTIFIERS.get(key)
    if ident is None or ident.library is not library:
        if len(_IDENTIFIERS) >= 4:  # a notebook that loads many libraries keeps only the latest few
            _IDENTIFIERS.pop(next(iter(_IDENTIFIERS)))
        ident = _IDENTIFIERS[key] = Identifier(library, similarity=similarity, top=top, mixture=mixture,
                                               class_alarm=class_alarm)
    return ident.analyse_spectrum(spectrum, source=where or "python", entry=entry or "spectrum", index=0)
