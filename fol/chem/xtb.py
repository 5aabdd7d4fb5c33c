"""Harmonic Raman / IR stick spectra from a SMILES string with GFN2-xTB (tblite).

Pipeline of :func:`compute_sticks` (all steps deterministic for a given seed):

1. **Geometry guess** -- RDKit: ``AddHs``, ETKDGv3 embedding of
   :data:`N_CONFORMERS` conformers with a fixed ``randomSeed``, MMFF94
   optimisation of each (UFF if MMFF lacks parameters), keep the lowest-energy
   conformer.
2. **GFN2-xTB optimisation** -- tblite energies + analytic gradients driven by
   ``scipy.optimize.minimize(method="L-BFGS-B")`` until the largest Cartesian
   gradient component is below :data:`OPT_GTOL` Eh/bohr.  Each SCC is
   restarted from the previous wavefunction.
3. **Hessian** -- central finite differences of analytic gradients
   (+/- :data:`HESSIAN_STEP_BOHR` bohr along each Cartesian), symmetrised,
   mass-weighted (most-abundant-isotope masses).  Translations and rotations are
   projected out exactly (Eckart-style projector in mass-weighted coordinates,
   5 for linear molecules); the residual frequencies of the rigid-body block
   are checked and reported as a warning if any exceeds :data:`RIGID_WARN_CM1`.
   Negative eigenvalues are reported as negative ("imaginary") wavenumbers; if
   one is larger than :data:`IMAG_RETRY_CM1` the structure is displaced along
   that mode, re-optimised and the Hessian recomputed once.
4. **IR intensities** -- from the Cartesian dipole derivatives taken from the
   same displaced single points, transformed to normal coordinates:
   ``I = 974.88 * |dmu/dQ|^2`` km/mol with dmu/dQ in e/sqrt(amu).
5. **Raman activities** -- polarizability derivatives by finite electric
   field.  Default (``Settings.raman="field-gradient"``): the identity
   ``d(alpha_ij)/dx_k = -d^2 g_k / dF_i dF_j`` (g = analytic energy gradient,
   E(F) = E0 - mu.F - F.alpha.F/2 - ...) is evaluated at the equilibrium
   geometry from gradients in 12 finite fields of size F = :data:`FIELD_AU`
   (+/-F e_i and +/-F (e_i+e_j)); the central second difference has O(F^2)
   error.  This costs 13 SCCs per molecule instead of 3-6 per displaced
   geometry (i.e. 18N-36N SCCs) and reproduces the brute-force route --
   ``alpha(x) = (mu(x, F e_j) - mu(x, -F e_j)) / 2F`` at every displaced
   geometry, then central differences in x (``Settings.raman="displaced"``,
   kept for validation) -- to <0.1 % in the Raman activities of the strong
   bands (acetaminophen; see tests/chem/test_chem.py for acetone).  The
   displaced/one-sided variant (one extra SCC per field direction and
   displaced geometry, reusing the zero-field dipole) has an O(beta' F) bias of
   1-5 % at F = 5e-4..1e-3 au and costs 4x the Hessian, so it is not the default.
   Activity ``S = 45 a'^2 + 7 g'^2`` in Angstrom^4/amu.

tblite 0.8.0 workaround: ``Calculator.add("electric-field", array)`` raises
``TypeError: initializer for ctype 'double *' must be a cdata pointer`` because
the Python wrapper passes the numpy array straight to the C function.
:func:`add_electric_field` casts the array with ``ffi.cast("double *", ...)``
and pushes the container through ``tblite.library.calculator_push_back``.
A tblite calculator cannot drop an interaction again, so one calculator per
field direction is kept.

OpenMP: tblite is OpenMP-parallel; ``OMP_NUM_THREADS`` defaults to 1 here
(set before tblite is first imported) so that process-level parallelism in
:mod:`fol.chem.build` does not oversubscribe the cores.

RDKit and tblite are optional ("build" extra) and imported lazily.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fol.chem.sticks import METHOD_VERSION, StickSpectrum

BUILD_HINT = "install the build extra: pip install 'fol[build]'"

# ----------------------------------------------------------------- settings
N_CONFORMERS = 8
OPT_GTOL = 1.0e-5  # Eh/bohr, max |gradient component| for a converged geometry
HESSIAN_STEP_BOHR = 0.005
FIELD_AU = 0.001  # finite electric field, atomic units (1 au = 5.14e11 V/m)
SCC_ACCURACY = 0.01  # tblite "accuracy" for optimisation + Hessian (1.0 = default)
FIELD_SCC_ACCURACY = 0.001  # tighter SCC for the 12 finite-field gradients
RIGID_WARN_CM1 = 30.0
IMAG_RETRY_CM1 = 50.0

# ---------------------------------------------------------------- constants
BOHR_ANGSTROM = 0.529177210903
_HARTREE_J = 4.3597447222071e-18
_BOHR_M = 5.29177210903e-11
_AMU_KG = 1.66053906660e-27
_C_CM_S = 2.99792458e10
#: sqrt(Eh / (bohr^2 amu)) expressed as a wavenumber in cm^-1 (~5140.49)
AU_TO_CM1 = float(np.sqrt(_HARTREE_J / (_BOHR_M**2 * _AMU_KG)) / (2.0 * np.pi * _C_CM_S))
#: IR intensity in km/mol for |dmu/dQ|^2 = 1 e^2/amu  (42.2561 km/mol per (D/A)^2/amu)
IR_AU_TO_KM_MOL = 42.256096 * (1.602176634e-19 / 3.33564095198e-20) ** 2


@dataclass(frozen=True)
class Settings:
    """Numerical settings; the defaults are what :data:`METHOD_VERSION` means."""

    n_conformers: int = N_CONFORMERS
    opt_gtol: float = OPT_GTOL
    hessian_step: float = HESSIAN_STEP_BOHR
    raman: str = "field-gradient"  # or "displaced" (brute force, for validation)
    field: float = FIELD_AU
    two_sided_field: bool = True  # only used by raman="displaced"
    scc_accuracy: float = SCC_ACCURACY
    field_scc_accuracy: float = FIELD_SCC_ACCURACY
    imag_retry_cm1: float = IMAG_RETRY_CM1
    max_opt_iter: int = 4000


DEFAULT_SETTINGS = Settings()


# ------------------------------------------------------------ lazy imports
def _set_threads() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(f"fol.chem.xtb needs RDKit; {BUILD_HINT}") from exc
    RDLogger.DisableLog("rdApp.*")
    return Chem, AllChem


def _tblite():
    _set_threads()
    try:
        from tblite import library
        from tblite.interface import Calculator, Result
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(f"fol.chem.xtb needs tblite; {BUILD_HINT}") from exc
    return Calculator, Result, library


def tblite_version() -> str:
    try:
        from importlib.metadata import version

        return version("tblite")
    except Exception:  # pragma: no cover
        _, _, library = _tblite()
        return ".".join(str(v) for v in library.get_version())


def method_string(settings: Settings = DEFAULT_SETTINGS) -> str:
    if settings.raman == "field-gradient":
        how = "d2(gradient)/dF2 at equilibrium"
    else:
        how = ("two-sided" if settings.two_sided_field else "one-sided") + " at displaced geometries"
    return (
        f"GFN2-xTB/tblite-{tblite_version()}, harmonic, "
        f"FD hessian {settings.hessian_step:g} bohr, "
        f"FD field {settings.field:g} au ({how}), "
        f"RDKit ETKDGv3x{settings.n_conformers}+MMFF94 start, "
        f"method-version {METHOD_VERSION}"
    )


# ------------------------------------------------------------------ tblite
def add_electric_field(calc, field) -> None:
    """Add a homogeneous electric field (a.u., 3-vector) to a tblite Calculator.

    Works around the tblite 0.8.0 bug in ``Calculator.add("electric-field", ...)``
    by building the C container with a properly cast ``double *``.
    """
    _, _, library = _tblite()
    f = np.ascontiguousarray(np.asarray(field, dtype=np.float64).reshape(3))
    cont = library.lib.tblite_new_electric_field(library.ffi.cast("double *", f.ctypes.data))
    library.calculator_push_back(calc._ctx, calc._calc, cont)
    # keep the buffer alive as long as the calculator (tblite copies it, but be safe)
    fields = getattr(calc, "_fol_fields", [])
    fields.append(f)
    calc._fol_fields = fields


def new_calculator(numbers, positions_bohr, *, field=None, accuracy: float = SCC_ACCURACY):
    """GFN2-xTB tblite calculator, silent, optionally with a static electric field."""
    Calculator, _, _ = _tblite()
    calc = Calculator("GFN2-xTB", np.asarray(numbers, dtype=np.int32), np.asarray(positions_bohr, dtype=float))
    calc.set("verbosity", 0)
    calc.set("accuracy", float(accuracy))
    if field is not None:
        add_electric_field(calc, field)
    return calc


class _Engine:
    """Zero-field + field calculators sharing one structure, with restarts."""

    def __init__(self, numbers, positions, settings: Settings):
        _, self._Result, library = _tblite()
        self._err = Exception  # tblite raises TBLiteRuntimeError (subclass)
        self.settings = settings
        self.numbers = np.asarray(numbers)
        self.calc = new_calculator(numbers, positions, accuracy=settings.scc_accuracy)
        self.field_calcs = []
        if settings.raman == "displaced":
            F = settings.field
            dirs = [np.eye(3)[j] * F for j in range(3)]
            if settings.two_sided_field:
                dirs += [-np.eye(3)[j] * F for j in range(3)]
            self.field_calcs = [
                new_calculator(numbers, positions, field=d, accuracy=settings.scc_accuracy)
                for d in dirs
            ]
        elif settings.raman != "field-gradient":
            raise ValueError(f"unknown Raman method {settings.raman!r}")
        self.res = None  # last zero-field result (restart guess)
        self.n_scc = 0

    def _sp(self, calc, X, guess):
        calc.update(np.ascontiguousarray(X, dtype=float))
        self.n_scc += 1
        try:
            return calc.singlepoint(self._Result(guess) if guess is not None else None)
        except self._err:
            if guess is None:
                raise
            self.n_scc += 1
            return calc.singlepoint()  # retry from the superposition-of-atoms guess

    def energy_gradient(self, X):
        res = self._sp(self.calc, X, self.res)
        self.res = res
        return float(res.get("energy")), np.asarray(res.get("gradient"), dtype=float)

    def point(self, X, guess):
        """Gradient, dipole and (if fields) polarizability at X."""
        res = self._sp(self.calc, X, guess)
        g = np.asarray(res.get("gradient"), dtype=float).ravel()
        mu0 = np.asarray(res.get("dipole"), dtype=float)
        alpha = None
        if self.field_calcs:
            F = self.settings.field
            mus = [np.asarray(self._sp(c, X, res).get("dipole"), dtype=float) for c in self.field_calcs]
            alpha = np.empty((3, 3))
            for j in range(3):
                if self.settings.two_sided_field:
                    alpha[:, j] = (mus[j] - mus[j + 3]) / (2.0 * F)
                else:
                    alpha[:, j] = (mus[j] - mu0) / F
            alpha = 0.5 * (alpha + alpha.T)
        return res, g, mu0, alpha


# -------------------------------------------------------------- geometry
def embed_smiles(smiles: str, *, seed: int = 0xF01, n_conformers: int = N_CONFORMERS):
    """RDKit 3-D structure: (atomic numbers, positions in Angstrom, masses in amu)."""
    Chem, AllChem = _rdkit()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    params.numThreads = 1
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not cids:
        params.useRandomCoords = True
        cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not cids:
        raise RuntimeError(f"RDKit could not embed {smiles!r}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        out = AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=5000)
    else:
        out = AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=5000)
    energies = [e if np.isfinite(e) else np.inf for (_, e) in out]
    best = cids[int(np.argmin(energies))]
    pos = mol.GetConformer(best).GetPositions()
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int32)
    pt = Chem.GetPeriodicTable()
    masses = np.array([pt.GetMostCommonIsotopeMass(int(z)) for z in numbers], dtype=float)
    charge = Chem.GetFormalCharge(mol)
    if charge != 0:
        raise ValueError(f"{smiles!r}: only neutral molecules are supported (charge {charge})")
    n_el = int(numbers.sum()) - charge
    if n_el % 2:
        raise ValueError(f"{smiles!r}: open-shell molecules are not supported")
    return numbers, np.asarray(pos, dtype=float), masses


def optimise(engine: _Engine, X0: np.ndarray, settings: Settings):
    """L-BFGS-B on the GFN2-xTB energy; returns (X, energy, max|g|, n_iter)."""
    from scipy.optimize import minimize

    shape = X0.shape
    X = X0.copy()
    n_iter = 0
    gmax = np.inf
    e = np.nan
    for _round in range(4):  # restart L-BFGS if the line search stalls on noise
        def fun(x):
            e, g = engine.energy_gradient(x.reshape(shape))
            return e, g.ravel()

        r = minimize(
            fun,
            X.ravel(),
            jac=True,
            method="L-BFGS-B",
            options=dict(
                maxiter=settings.max_opt_iter,
                maxcor=30,
                gtol=settings.opt_gtol,
                ftol=1e-15,
                maxls=40,
            ),
        )
        X = r.x.reshape(shape)
        n_iter += int(r.nit)
        e, g = engine.energy_gradient(X)
        gmax = float(np.abs(g).max())
        if gmax <= settings.opt_gtol * 1.5 or n_iter >= settings.max_opt_iter:
            break
    return X, e, gmax, n_iter


# --------------------------------------------------------------- analysis
def _rigid_basis(X: np.ndarray, masses: np.ndarray):
    """Orthonormal translation/rotation basis in mass-weighted coordinates."""
    n = len(masses)
    sm = np.sqrt(masses)
    com = (masses[:, None] * X).sum(0) / masses.sum()
    R = X - com
    vecs = []
    for a in range(3):
        v = np.zeros((n, 3))
        v[:, a] = sm
        vecs.append(v.ravel())
    for a in range(3):
        e = np.zeros(3)
        e[a] = 1.0
        vecs.append((np.cross(e, R) * sm[:, None]).ravel())
    T = np.array(vecs).T
    U, s, _ = np.linalg.svd(T, full_matrices=True)
    rank = int((s > 1e-4 * s.max()).sum())
    return U[:, :rank], U[:, rank:]


def normal_modes(H, dmu, dalpha, X, masses):
    """Frequencies (cm-1, signed), IR (km/mol), Raman activity (A^4/amu), info."""
    m3 = np.repeat(masses, 3)
    inv_sqrt = 1.0 / np.sqrt(m3)
    Hm = H * np.outer(inv_sqrt, inv_sqrt)
    Tb, D = _rigid_basis(X, masses)
    w_rigid = np.linalg.eigvalsh(Tb.T @ Hm @ Tb)
    rigid_cm1 = np.sign(w_rigid) * np.sqrt(np.abs(w_rigid)) * AU_TO_CM1
    w, V = np.linalg.eigh(D.T @ Hm @ D)
    L = D @ V  # mass-weighted normal modes (3N x nvib)
    freqs = np.sign(w) * np.sqrt(np.abs(w)) * AU_TO_CM1
    Lc = L * inv_sqrt[:, None]  # Cartesian displacement per unit Q (bohr per bohr sqrt(amu))
    dmu_dQ = Lc.T @ dmu  # (nvib, 3) e / sqrt(amu)
    ir = IR_AU_TO_KM_MOL * (dmu_dQ**2).sum(1)
    raman = np.zeros_like(freqs)
    if dalpha is not None:
        da = np.einsum("kp,kij->pij", Lc, dalpha) * BOHR_ANGSTROM**2  # A^2/sqrt(amu)
        a = np.trace(da, axis1=1, axis2=2) / 3.0
        xx, yy, zz = da[:, 0, 0], da[:, 1, 1], da[:, 2, 2]
        xy, yz, zx = da[:, 0, 1], da[:, 1, 2], da[:, 2, 0]
        g2 = 0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2 + 6.0 * (xy**2 + yz**2 + zx**2))
        raman = 45.0 * a**2 + 7.0 * g2
    return freqs, ir, raman, rigid_cm1, Lc


def _derivatives(engine: _Engine, X: np.ndarray, res_eq, step: float):
    n = X.size
    H = np.empty((n, n))
    dmu = np.empty((n, 3))
    dalpha = np.empty((n, 3, 3)) if engine.field_calcs else None
    flat = X.ravel()
    for k in range(n):
        out = []
        for s in (1.0, -1.0):
            Xd = flat.copy()
            Xd[k] += s * step
            _, g, mu, al = engine.point(Xd.reshape(X.shape), res_eq)
            out.append((g, mu, al))
        (gp, mup, alp), (gm, mum, alm) = out
        H[:, k] = (gp - gm) / (2.0 * step)
        dmu[k] = (mup - mum) / (2.0 * step)
        if dalpha is not None:
            dalpha[k] = (alp - alm) / (2.0 * step)
    H = 0.5 * (H + H.T)
    return H, dmu, dalpha


def _field_gradient_dalpha(engine: _Engine, X: np.ndarray, res_eq) -> np.ndarray:
    """d(alpha)/dx (3N, 3, 3) from gradients in finite fields at geometry X.

    E(F) = E0 - mu.F - 1/2 F.alpha.F + ...  =>  g(F) = g0 - (dmu/dx).F - 1/2 F.(dalpha/dx).F
    so  d(alpha_ij)/dx = -d^2 g / dF_i dF_j.
    Diagonal: (g(+F e_i) + g(-F e_i) - 2 g0) / F^2 = -dalpha_ii/dx.
    Off-diagonal: (g(F(e_i+e_j)) + g(-F(e_i+e_j)) - 2 g0) / F^2 = -(a_ii + a_jj + 2 a_ij).
    """
    st = engine.settings
    F = st.field
    numbers = engine.numbers
    _, Result, _ = _tblite()

    def grad(field):
        calc = new_calculator(numbers, X, field=field, accuracy=st.field_scc_accuracy)
        engine.n_scc += 1
        return np.asarray(calc.singlepoint(Result(res_eq)).get("gradient"), dtype=float).ravel()

    g0 = grad(None)
    E = np.eye(3) * F
    A = np.empty((X.size, 3, 3))
    for i in range(3):
        A[:, i, i] = (grad(E[i]) + grad(-E[i]) - 2.0 * g0) / F**2
    for i, j in ((0, 1), (1, 2), (0, 2)):
        s = (grad(E[i] + E[j]) + grad(-E[i] - E[j]) - 2.0 * g0) / F**2
        A[:, i, j] = A[:, j, i] = 0.5 * (s - A[:, i, i] - A[:, j, j])
    return -A


# ------------------------------------------------------------------ public
def compute_sticks(
    name: str,
    smiles: str,
    *,
    seed: int = 0xF01,
    settings: Settings | None = None,
    log=None,
) -> StickSpectrum:
    """Compute the harmonic GFN2-xTB IR/Raman stick spectrum of one molecule.

    ``settings`` exists for experiments and tests; the cache of
    :mod:`fol.chem.build` assumes the defaults.  ``log`` is an optional
    callable receiving short progress strings.
    """
    settings = settings or DEFAULT_SETTINGS
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    warnings: list[str] = []

    numbers, pos_A, masses = embed_smiles(smiles, seed=seed, n_conformers=settings.n_conformers)
    X = pos_A / BOHR_ANGSTROM
    engine = _Engine(numbers, X, settings)
    X, energy, gmax, nit = optimise(engine, X, settings)
    say(f"opt: {nit} it, E={energy:.8f} Eh, max|g|={gmax:.1e}, {time.perf_counter() - t0:.1f}s")
    if gmax > settings.opt_gtol * 1.5:
        warnings.append(f"geometry not fully converged: max|gradient|={gmax:.2e} Eh/bohr")

    for attempt in range(2):
        t1 = time.perf_counter()
        res_eq, _, _, _ = engine.point(X, engine.res)
        H, dmu, dalpha = _derivatives(engine, X, res_eq, settings.hessian_step)
        if settings.raman == "field-gradient":
            dalpha = _field_gradient_dalpha(engine, X, res_eq)
        freqs, ir, raman, rigid_cm1, Lc = normal_modes(H, dmu, dalpha, X, masses)
        say(f"hessian: {engine.n_scc} SCC total, {time.perf_counter() - t1:.1f}s")
        worst = float(freqs.min()) if freqs.size else 0.0
        if attempt == 0 and worst < -settings.imag_retry_cm1:
            # saddle point: follow the imaginary mode downhill and re-optimise
            mode = Lc[:, int(np.argmin(freqs))].reshape(X.shape)
            mode = mode / np.abs(mode).max() * 0.3  # 0.3 bohr largest displacement
            best = None
            for sgn in (1.0, -1.0):
                Xt = X + sgn * mode
                e_t, _ = engine.energy_gradient(Xt)
                if best is None or e_t < best[0]:
                    best = (e_t, Xt)
            engine.res = None
            X_new, e_new, gmax_new, nit2 = optimise(engine, best[1], settings)
            warnings.append(
                f"imaginary mode {worst:.1f} cm-1 at first stationary point; displaced and "
                f"re-optimised (dE={(e_new - energy) * 627.5095:.3f} kcal/mol)"
            )
            say(warnings[-1])
            X, energy, gmax = X_new, e_new, gmax_new
            if gmax > settings.opt_gtol * 1.5:
                warnings.append(f"geometry not fully converged: max|gradient|={gmax:.2e} Eh/bohr")
            continue
        break

    bad_rigid = np.abs(rigid_cm1).max() if rigid_cm1.size else 0.0
    if bad_rigid > RIGID_WARN_CM1:
        warnings.append(
            "rigid-body (translation/rotation) residual frequencies not near zero: "
            + ", ".join(f"{v:.1f}" for v in rigid_cm1)
            + " cm-1"
        )
    imag = tuple(float(v) for v in freqs[freqs < 0.0])
    if imag and min(imag) < -20.0:
        warnings.append(f"imaginary modes (cm-1, as negative numbers): {', '.join(f'{v:.1f}' for v in imag)}")
    if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(ir)) and np.all(np.isfinite(raman))):
        raise FloatingPointError(f"{name}: non-finite frequencies or intensities")

    say(f"done in {time.perf_counter() - t0:.1f}s, {engine.n_scc} SCC")
    return StickSpectrum(
        name=name,
        smiles=smiles,
        frequencies_cm1=freqs,
        ir_intensity_km_mol=np.clip(ir, 0.0, None),
        raman_activity_A4_amu=np.clip(raman, 0.0, None),
        method=method_string(settings),
        n_atoms=int(len(numbers)),
        imaginary_cm1=imag,
        warnings=tuple(warnings),
    )


def field_dipole_response(field_au: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Dipole of water at zero field and with a field along z (self-test helper)."""
    numbers = np.array([8, 1, 1])
    X = np.array([[0.0, 0.0, -0.1294], [0.0, 1.4326, 1.0270], [0.0, -1.4326, 1.0270]])
    c0 = new_calculator(numbers, X)
    c1 = new_calculator(numbers, X, field=[0.0, 0.0, field_au])
    return np.asarray(c0.singlepoint().get("dipole")), np.asarray(c1.singlepoint().get("dipole"))


__all__ = [
    "BUILD_HINT",
    "Settings",
    "DEFAULT_SETTINGS",
    "add_electric_field",
    "compute_sticks",
    "embed_smiles",
    "field_dipole_response",
    "method_string",
    "new_calculator",
]


def _main(argv: Any = None) -> None:  # pragma: no cover - manual experiments
    import sys

    args = sys.argv[1:] if argv is None else argv
    st = compute_sticks(args[0], args[1], log=lambda m: print(m, flush=True))
    print(st)
    order = np.argsort(-st.raman_activity_A4_amu)[:10]
    for i in sorted(order):
        print(f"{st.frequencies_cm1[i]:9.1f} IR {st.ir_intensity_km_mol[i]:9.2f} Raman {st.raman_activity_A4_amu[i]:9.2f}")


if __name__ == "__main__":  # pragma: no cover
    _main()
