"""Class alarm: trained from the library itself, cached per library, calls unlisted analogues."""

import numpy as np
import pytest

from conftest import lorentz
from fol import classalarm
from fol.library import Library, load_library, make_section
from fol.pipeline import Identifier
from fol.preprocess import default_recipe
from fol.spectrum import Spectrum


def scaffold_section():
    """A synthetic Raman section: 8 'analogues' sharing a band family, 12 unrelated substances."""
    rng = np.random.default_rng(11)
    grid = np.arange(200, 2000.1, 2.0)
    family = rng.uniform(300, 1900, 8)
    rows, names, classes = [], [], []
    for i in range(20):
        own = rng.uniform(250, 1950, 5)
        if i < 8:
            centres = np.r_[family + rng.normal(0, 3, family.size), own[:2]]
            heights = np.r_[rng.uniform(0.5, 1, family.size), rng.uniform(0.2, 1, 2)]
        else:
            centres, heights = own, rng.uniform(0.2, 1, own.size)
        rows.append(lorentz(grid, centres, heights, 10.0))
        names.append(f"{'ana' if i < 8 else 'other'}{i}")
        classes.append("fentanyl-analogue" if i < 8 else "cutting-agent")
    return make_section("raman", grid, np.vstack(rows), names, classes, [c != "cutting-agent" for c in classes],
                        ["computed"] * 20, ["test"] * 20, default_recipe("raman")), family


def test_detector_learns_the_family_and_rejects_others():
    section, _ = scaffold_section()
    model = classalarm.train(section.subset(np.arange(20) != 0))  # analogue 0 left out
    assert model.positives == 7 and model.negatives == 12
    x = section.processed
    p = model.probability(x)
    assert p[0] > 0.5, "the left-out analogue is recognised by its family"
    assert np.all(p[8:] < 0.5)


def test_no_detector_without_enough_analogues():
    section, _ = scaffold_section()
    assert classalarm.train(section.subset(np.arange(20) >= 7)) is None  # one analogue left


def test_detector_is_cached_per_library_hash():
    section, _ = scaffold_section()
    a = classalarm.for_section("sha-a", section)
    assert classalarm.for_section("sha-a", section) is a
    assert classalarm.for_section("sha-b", section) is not a


def test_unlisted_analogue_in_a_cutting_agent_raises_a_fentanyl_class_alarm():
    section, _ = scaffold_section()
    reduced = section.subset(np.arange(20) != 3)
    lib = Library("mem", "scaffold", "sha-scaffold-without-3", "", "", {"raman": reduced})
    ident = Identifier(lib)
    rng = np.random.default_rng(5)
    raw = section.raw / section.raw.max(axis=1, keepdims=True)
    y = 0.4 * raw[3] + 0.6 * raw[10] + 0.3 + 0.002 * rng.standard_normal(raw.shape[1])
    r = ident.analyse_spectrum(Spectrum(section.grid, y, "raman"), source="t", entry="e")
    assert r["alarm"] and "fentanyl-analogue" in r["alarm_classes"]
    assert "other10" in [c["name"] for c in r["components"]]
    benign = 0.5 * raw[10] + 0.5 * raw[12] + 0.3 + 0.002 * rng.standard_normal(raw.shape[1])
    r = ident.analyse_spectrum(Spectrum(section.grid, benign, "raman"), source="t", entry="e")
    assert not r["alarm"] and r["verdict"] == "mixture"


@pytest.fixture(scope="module")
def enfsi(enfsi_library):
    return load_library(enfsi_library).section("ftir")


def test_left_out_real_analogues_score_higher_than_left_out_others(enfsi):
    """Leave-one-out on a few real ENFSI spectra: analogues called, benign substances not."""
    called = {}
    for name in ("fentanyl", "furanylfentanyl", "acetylfentanyl", "caffeine", "mannitol", "cocaine", "heroin"):
        i = enfsi.index_of(name)
        model = classalarm.train(enfsi.subset(np.arange(len(enfsi)) != i))
        called[name] = float(model.probability(enfsi.processed[i])[0])
    analogues = [called[n] for n in ("fentanyl", "furanylfentanyl", "acetylfentanyl")]
    others = [called[n] for n in ("caffeine", "mannitol", "cocaine", "heroin")]
    assert min(analogues) > 0.5 and np.mean(analogues) > np.mean(others) + 0.3, called
