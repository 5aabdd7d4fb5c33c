"""Acceptance (issue 2): a library imported from the real ENFSI ATR-FTIR records identifies
each record, perturbed with noise (SNR 50), a sloped baseline and a +-4 cm-1 axis shift,
as itself (top-1). Fixed seed."""

import numpy as np
import pytest

from fol.io.formats import read_spectra_file
from fol.io.library import load_library
from fol.identification.pipeline import Identifier
from fol.spectrum import Spectrum


@pytest.fixture(scope="module")
def enfsi_lib(enfsi_files, enfsi_library):
    return enfsi_files, load_library(enfsi_library)


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
    ident = Identifier(lib, top=5)
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
