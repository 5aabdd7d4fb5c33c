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


def __getattr__(name: str):
    from fol.api import public  # the table of public names lives with the API

    return public(name)


def __dir__():
    from fol.api import PUBLIC

    return sorted([*globals(), *PUBLIC])
