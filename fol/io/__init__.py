"""Reading and writing files: recordings (HDF5, ``recording-format.md``), the library file
format, and measured spectra files in every format a lab has (``fol.io.formats``: one module
per format, a registry, ``read_spectra_file`` and ``read_spectrum``; see docs/formats.md).

Add an import format: a module with ``sniff(head, path)`` and ``read(path, technique)``
returning ``(name hint, Spectrum)`` pairs, registered with ``fol.io.formats.register``.
"""
