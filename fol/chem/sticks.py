"""Stick spectra: harmonic vibrational wavenumbers with IR and Raman strengths.

A :class:`StickSpectrum` holds the *unscaled* harmonic wavenumbers of the
3N-6 (3N-5 for linear molecules) vibrational modes of one molecule, together with

* ``ir_intensity_km_mol`` -- IR absorption intensities in km/mol, and
* ``raman_activity_A4_amu`` -- Raman scattering activities
  S = 45 a'^2 + 7 g'^2 in Angstrom^4/amu,

as produced by :func:`fol.chem.xtb.compute_sticks`.  Imaginary modes are stored
as negative wavenumbers (and also listed in ``imaginary_cm1``).

Persistence is a plain ``.npz`` file written with ``allow_pickle=False``:
numeric arrays are stored as-is, strings as 0-d unicode arrays and the
warnings as a 1-d unicode array.  Nothing is ever pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import numpy as np

#: Bump whenever the numerical method in :mod:`fol.chem.xtb` changes in a way
#: that changes results; cache keys in :mod:`fol.chem.build` include it.
METHOD_VERSION = 1

#: Version of the on-disk .npz layout written by :meth:`StickSpectrum.save_npz`.
NPZ_FORMAT = 1

PathLike = Union[str, "os.PathLike[str]"]


def _ro_float(a) -> np.ndarray:
    arr = np.array(a, dtype=np.float64, copy=True).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class StickSpectrum:
    """Harmonic stick spectrum of one molecule (see module docstring)."""

    name: str
    smiles: str
    frequencies_cm1: np.ndarray
    ir_intensity_km_mol: np.ndarray
    raman_activity_A4_amu: np.ndarray
    method: str
    n_atoms: int
    imaginary_cm1: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        f = _ro_float(self.frequencies_cm1)
        ir = _ro_float(self.ir_intensity_km_mol)
        ra = _ro_float(self.raman_activity_A4_amu)
        if not (f.shape == ir.shape == ra.shape):
            raise ValueError(
                f"{self.name}: frequency/IR/Raman arrays differ in length "
                f"({f.size}, {ir.size}, {ra.size})"
            )
        object.__setattr__(self, "frequencies_cm1", f)
        object.__setattr__(self, "ir_intensity_km_mol", ir)
        object.__setattr__(self, "raman_activity_A4_amu", ra)
        object.__setattr__(self, "n_atoms", int(self.n_atoms))
        object.__setattr__(
            self, "imaginary_cm1", tuple(float(x) for x in self.imaginary_cm1)
        )
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))

    @property
    def n_modes(self) -> int:
        return int(self.frequencies_cm1.size)

    def __repr__(self) -> str:  # arrays would make the default repr unreadable
        return (
            f"StickSpectrum(name={self.name!r}, n_atoms={self.n_atoms}, "
            f"n_modes={self.n_modes}, imaginary_cm1={self.imaginary_cm1!r}, "
            f"warnings={len(self.warnings)}, method={self.method!r})"
        )

    # ------------------------------------------------------------------ I/O
    def save_npz(self, path: PathLike) -> None:
        """Write to ``path`` (``.npz``) atomically; never pickles."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}.npz"
        arrays = {
            "format": np.array(NPZ_FORMAT, dtype=np.int64),
            "name": np.array(self.name, dtype=np.str_),
            "smiles": np.array(self.smiles, dtype=np.str_),
            "method": np.array(self.method, dtype=np.str_),
            "n_atoms": np.array(self.n_atoms, dtype=np.int64),
            "frequencies_cm1": self.frequencies_cm1,
            "ir_intensity_km_mol": self.ir_intensity_km_mol,
            "raman_activity_A4_amu": self.raman_activity_A4_amu,
            "imaginary_cm1": np.array(self.imaginary_cm1, dtype=np.float64),
            "warnings": np.array(list(self.warnings), dtype=np.str_).reshape(-1),
        }
        with open(tmp, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load_npz(cls, path: PathLike) -> "StickSpectrum":
        """Read a file written by :meth:`save_npz` (``allow_pickle=False``)."""
        with np.load(os.fspath(path), allow_pickle=False) as z:
            fmt = int(z["format"]) if "format" in z.files else 1
            if fmt != NPZ_FORMAT:
                raise ValueError(f"{path}: unsupported stick .npz format {fmt}")
            return cls(
                name=str(z["name"][()]),
                smiles=str(z["smiles"][()]),
                frequencies_cm1=z["frequencies_cm1"],
                ir_intensity_km_mol=z["ir_intensity_km_mol"],
                raman_activity_A4_amu=z["raman_activity_A4_amu"],
                method=str(z["method"][()]),
                n_atoms=int(z["n_atoms"]),
                imaginary_cm1=tuple(float(x) for x in z["imaginary_cm1"]),
                warnings=tuple(str(w) for w in z["warnings"]),
            )


def save_npz(sticks: StickSpectrum, path: PathLike) -> None:
    """Module-level alias of :meth:`StickSpectrum.save_npz`."""
    sticks.save_npz(path)


def load_npz(path: PathLike) -> StickSpectrum:
    """Module-level alias of :meth:`StickSpectrum.load_npz`."""
    return StickSpectrum.load_npz(path)
