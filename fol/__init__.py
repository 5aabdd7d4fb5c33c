"""fol: substance identification for Forward Operating Labs.

Data flows one way::

    drivers -> Spectrum -> preprocessing Recipe -> search -> identification -> record/report

The public API (imported lazily, so ``import fol`` stays cheap and ``fol identify`` loads
only what it uses)::

    import fol
    lib = fol.load_library()                        # the shipped library, or a path
    result = fol.identify("sample.h5", library=lib) # a path, a Spectrum, or (axis, intensities, technique)
    s = fol.read_spectrum("sample.jdx")
    with fol.open_source("socket://127.0.0.1:5025") as src:
        result = fol.identify(src.acquire(), library=lib)

See ``docs/api.md``. The stages live in sub-packages: ``fol.io`` (files), ``fol.preprocess``,
``fol.search``, ``fol.identification``, ``fol.qa`` (replay, metrics, reports),
``fol.libtools`` (making libraries), ``fol.chem`` (computed spectra), ``fol.cli``.
"""

__version__ = "0.2.0"

#: public name -> (module, attribute), imported on first access
_LAZY = {
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

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fol' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
