"""Reading and writing files: recordings (HDF5, ``recording-format.md``), the library file
format, and importers for measured spectra (one module per format under ``fol.io``).

Add an import format here: a module with a reader that returns ``Spectrum`` objects, registered
in ``fol.io.importers``.
"""
