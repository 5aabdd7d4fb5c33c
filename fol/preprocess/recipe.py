"""The preprocessing recipe: raw spectra in, comparable vectors on the library grid out.

A recipe is a list of steps (``fol.preprocess.steps.STEPS``); ``Recipe`` strings them together, serialises to
JSON (the library stores the recipe it was built with, and replay re-applies it)
and owns the only state a run needs: which grid points carry measured signal.

Keyword-only parameters of a step (``grid`` of ``resample``, ``mask`` of
``normalize``) are run-time inputs that ``Recipe.apply`` supplies; a recipe cannot
set them.

The out-of-range rule: grid points outside the spectrum's axis are first filled by
holding the edge value (so smoothing and the baseline fit see no cliff), then set to
exactly 0 from the baseline step on, so they carry no feature; ``normalize`` centres
and scales over the measured points only. ``ProcessedBatch.coverage`` tells how much
of the grid the measurement covered. docs/preprocessing.md explains every default.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from fol.preprocess.steps import STEPS, check_baseline, covered, in_ranges
from fol.spectrum import Spectrum, SpectrumBatch, check_technique

RAMAN_GRID = np.arange(200, 2000.1, 2.0)
FTIR_GRID = np.arange(650, 4000.1, 4.0)

#: regions of an ATR-FTIR spectrum that carry no sample information: the diamond
#: crystal's own phonon absorption and atmospheric CO2
FTIR_EXCLUDED = [[1900.0, 2200.0], [2280.0, 2400.0]]


def default_grid(technique: str) -> np.ndarray:
    """The library grid for a technique (a fresh copy)."""
    return {"raman": RAMAN_GRID, "ftir": FTIR_GRID}[check_technique(technique)].copy()


def _runtime_params(fn: Callable) -> tuple[str, ...]:
    """The keyword-only parameters of a step: supplied by ``Recipe.apply``, not by a recipe."""
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY)


_RUNTIME = {name: _runtime_params(fn) for name, fn in STEPS.items()}


def _check_step(item: Any, where: str) -> dict:
    """Validate one recipe entry and return it in canonical JSON form."""
    if not isinstance(item, Mapping) or not isinstance(item.get("step"), str):
        raise ValueError(f"{where}: expected an object with a \"step\" name, got {item!r}")
    name = item["step"]
    if name not in STEPS:
        raise ValueError(f"{where}: unknown step {name!r} (known: {', '.join(STEPS)})")
    params = {k: v for k, v in item.items() if k != "step"}
    fn = STEPS[name]
    runtime = _RUNTIME[name]
    if set(params) & set(runtime):
        clash = sorted(set(params) & set(runtime))
        raise ValueError(f"{where}: {name} parameter(s) {clash} are supplied at run time, not by the recipe")
    try:
        inspect.signature(fn).bind(None, None, **params, **dict.fromkeys(runtime))
    except TypeError as exc:
        raise ValueError(f"{where}: step {name!r}: {exc}") from None
    if name == "baseline":
        check_baseline(params.get("method", "arpls"), {k: v for k, v in params.items() if k != "method"})
    try:
        return json.loads(json.dumps({"step": name, **params}, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: step {name!r} has parameters that are not plain JSON: {exc}") from None


@dataclass(frozen=True, eq=False)
class ProcessedBatch:
    """Recipe output: ``data[m, len(grid)]`` float32 rows on ``grid``.

    ``coverage[i]`` is the fraction of the grid that row ``i``'s axis covered (0 for
    an invalid row). ``invalid`` maps rows that could not be processed to the reason;
    their data rows are all 0.
    """

    grid: np.ndarray
    data: np.ndarray
    coverage: np.ndarray
    invalid: Mapping[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.data.shape[0]


class Recipe:
    """An ordered list of preprocessing steps, ``[{"step": name, **params}, ...]``.

    Validated on construction: every step must exist and accept its parameters, there
    must be exactly one ``resample`` and no ``crop`` after it (the output has to be on
    the grid). ``to_json``/``from_json`` round-trip exactly.
    """

    def __init__(self, steps: list[dict]):
        if not isinstance(steps, (list, tuple)):
            raise ValueError(f"a recipe is a list of steps, got {type(steps).__name__}")
        self._steps = tuple(_check_step(item, f"recipe step {i}") for i, item in enumerate(steps))
        names = [s["step"] for s in self._steps]
        if names.count("resample") != 1:
            raise ValueError(f"a recipe needs exactly one 'resample' step (found {names.count('resample')})")
        self._resample_at = names.index("resample")
        if "crop" in names[self._resample_at :]:
            raise ValueError("'crop' after 'resample' would take the output off the grid")
        baseline_after = [i for i in range(self._resample_at, len(names)) if names[i] == "baseline"]
        #: from this step on, grid points without measured signal are held at 0
        self._zero_from = baseline_after[0] if baseline_after else self._resample_at

    @property
    def steps(self) -> list[dict]:
        return json.loads(self.to_json())

    @classmethod
    def from_json(cls, text: str | list) -> "Recipe":
        """Build from a JSON string or an already parsed list."""
        if isinstance(text, str):
            try:
                text = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"recipe is not valid JSON: {exc}") from None
        return cls(text)

    def to_json(self) -> str:
        return json.dumps(list(self._steps), separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"Recipe({self.to_json()})"

    def apply(self, batch: SpectrumBatch, grid: np.ndarray) -> ProcessedBatch:
        """Run the recipe on every valid row of ``batch``; the result is on ``grid``."""
        grid = np.array(grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 2 or not np.all(np.diff(grid) > 0):
            raise ValueError("grid must be a 1-D strictly increasing array of at least 2 points")
        m = len(batch)
        invalid = dict(batch.invalid)
        rows = np.array([i for i in range(m) if i not in invalid], dtype=np.intp)
        data = np.zeros((m, grid.size), dtype=np.float32)
        coverage = np.zeros(m, dtype=np.float64)
        if rows.size:
            Y, fraction = self._run(batch.wavenumber, batch.intensity[rows], grid)
            finite = np.all(np.isfinite(Y), axis=1)
            for i in rows[~finite]:
                invalid[int(i)] = "preprocessing produced non-finite values"
            data[rows[finite]] = Y[finite]
            coverage[rows[finite]] = fraction
        return ProcessedBatch(grid, np.ascontiguousarray(data), coverage, dict(sorted(invalid.items())))

    def apply_spectrum(self, spectrum: Spectrum, grid: np.ndarray) -> ProcessedBatch:
        """``apply`` for one spectrum (a 1-row result)."""
        return self.apply(spectrum.as_batch(), grid)

    def excluded_ranges(self) -> list:
        """The ``[lo, hi]`` ranges the recipe's ``exclude`` steps drop (no sample information)."""
        return [r for s in self._steps if s["step"] == "exclude" for r in s["ranges"]]

    def to_grid(self, x: np.ndarray, Y: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Raw rows on the grid: the steps up to and including ``resample``, nothing after.

        (For Raman: fill dead pixels, remove cosmic-ray spikes, resample. No baseline
        correction, no smoothing, no normalisation: mixture analysis models those itself.)
        """
        x, Y = self.before_resample(x, Y)
        return STEPS["resample"](x, Y, grid=grid)[1]

    def before_resample(self, x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The steps before ``resample`` on the spectrum's own pixels (fill dead pixels, despike):
        for a caller that bins the pixels before resampling, which must not smear a spike first."""
        for s in self._steps[: self._resample_at]:
            x, Y = STEPS[s["step"]](x, Y, **{k: v for k, v in s.items() if k != "step"})
        return x, Y

    def _run(self, x: np.ndarray, Y: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
        """Apply the steps, tracking ``measured``: the points that carry measured signal."""
        measured = np.ones(x.size, dtype=bool)
        fraction = 1.0
        for i, item in enumerate(self._steps):
            name = item["step"]
            params = {k: v for k, v in item.items() if k != "step"}
            fn = STEPS[name]
            runtime = {"grid": grid, "mask": measured}
            new_x, Y = fn(x, Y, **params, **{k: runtime[k] for k in _RUNTIME[name]})
            if i == self._resample_at:
                fraction = float(covered(x, grid).mean())
            if new_x is not x:
                # carry the mask onto the new axis: a new point is measured only if
                # both neighbours it is interpolated from were
                measured = np.interp(new_x, x, measured.astype(np.float64), left=0.0, right=0.0) > 1.0 - 1e-9
            if name == "exclude":
                measured = measured & ~in_ranges(new_x, item["ranges"])
            x = new_x
            if i >= self._zero_from:
                Y = np.where(measured, Y, 0.0)
        return Y, fraction


def default_recipe(technique: str) -> Recipe:
    """The recipe the shipped library is built with (docs/preprocessing.md says why)."""
    technique = check_technique(technique)
    if technique == "raman":
        return Recipe(
            [
                {"step": "fill_nan"},
                {"step": "despike", "method": "edges", "threshold": 6.0, "max_width": 3, "ratio": 3.0},
                {"step": "resample"},
                {"step": "baseline", "method": "imodpoly", "poly_order": 5, "tol": 0.03},
                {"step": "smooth", "window": 7, "polyorder": 3},
                {"step": "normalize"},
            ]
        )
    return Recipe(
        [
            {"step": "fill_nan"},
            {"step": "resample"},
            {"step": "baseline", "method": "imodpoly", "poly_order": 4, "tol": 0.03},
            {"step": "smooth", "window": 11, "polyorder": 3},
            {"step": "exclude", "ranges": FTIR_EXCLUDED},
            {"step": "normalize"},
        ]
    )
