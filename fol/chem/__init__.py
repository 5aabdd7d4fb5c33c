"""Reference spectra computed from molecular structure.

* :mod:`fol.chem.sticks` -- the :class:`~fol.chem.sticks.StickSpectrum` container
  (harmonic wavenumbers, IR intensities, Raman activities) and its ``.npz`` I/O.
* :mod:`fol.chem.render` -- numpy-only rendering of stick spectra onto a grid
  (runtime code; no optional dependencies).
* :mod:`fol.chem.xtb` -- GFN2-xTB harmonic frequency / IR / Raman calculation
  (needs the ``build`` extra: RDKit and tblite, imported lazily).
* :mod:`fol.chem.build` -- resumable, parallel, cached build over the substance
  catalogue (``python -m fol.chem.build``).

This package deliberately imports nothing heavy at import time.
"""
