"""Acceptance (issue 2): a library imported from the real ENFSI ATR-FTIR records identifies
each record, perturbed with noise (SNR 50), a sloped baseline and a +-4 cm-1 axis shift,
as itself (top-1). Fixed seed."""

from pathlib import Path

import numpy as np
import pytest

from fol.cli import main
from fol.importers import read_spectra_file
from fol.library import load_library
from fol.pipeline import Identifier
from fol.spectrum import Spectrum

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def enfsi_lib(tmp_path_factory):
    files = sorted((REAL / "enfsi_ir").glob("*.json"))
    if not files:
        pytest.skip("ENFSI records not present")
    out = tmp_path_factory.mktemp("lib") / "enfsi.h5"
    assert main(["library", "import", *map(str, files), "--out", str(out)]) == 0
    return files, load_library(out)


def perturb(spec: Spectrum, rng) -> Spectrum:
    x, y = spec.wavenumber, spec.intensity
    shift = rng.uniform(-4, 4)
    y2 = np.interp(x, x + shift, y)                      # axis shift
    y2 = y2 + np.linspace(0, 1, x.size) * rng.uniform(0.1, 0.3) * y.max()  # sloped baseline
    y2 = y2 + rng.normal(0, y.max() / 50, x.size)        # SNR 50
    return Spectrum(x, y2, "ftir", "absorbance")


def test_every_perturbed_record_is_identified_as_itself(enfsi_lib):
    files, lib = enfsi_lib
    rng = np.random.default_rng(20261123)
    ident = Identifier(lib, k=5)
    sec = lib.section("ftir")
    assert len(sec) == len(files) >= 12
    wrong = []
    for path in files:
        [(hint, spec)] = read_spectra_file(path)
        r = ident.analyse_spectrum(perturb(spec, rng), source=str(path), entry="q")
        expected_name = sec.names[[s.split(":", 1)[1] for s in sec.provenance].index(path.name)]
        if r["hits"][0]["name"] != expected_name:
            wrong.append((path.name, r["hits"][0]["name"], r["hits"][0]["score"]))
    assert not wrong, f"{len(wrong)}/{len(files)} misidentified: {wrong}"


def test_imported_names_use_the_catalogue(enfsi_lib):
    _, lib = enfsi_lib
    sec = lib.section("ftir")
    assert "fentanyl" in sec.names and "acetaminophen" in sec.names and "mannitol" in sec.names
    assert all(p.startswith("imported:") for p in sec.provenance)
    i = sec.names.index("fentanyl")
    assert sec.classes[i] == "fentanyl-analogue" and sec.alarm[i]
