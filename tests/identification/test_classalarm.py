"""Class alarm: trained from the library itself, cached per library, calls unlisted analogues."""

import numpy as np
import pytest

from builders import lorentz
from fol.identification import classalarm
from fol.io.library import Library, load_library, make_section
from fol.identification.pipeline import Identifier
from fol.preprocess.recipe import default_recipe
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



def test_a_batch_gets_each_row_s_class_alarm_and_confidences_as_alone():
    """The class alarm and the confidences are computed for a whole batch at once: every row's result
    (the unlisted-analogue component, its probability, each component's confidence) is what it gets alone."""
    from fol.spectrum import SpectrumBatch

    section, _ = scaffold_section()
    reduced = section.subset(np.arange(20) != 3)
    ident = Identifier(Library("mem", "scaffold", "sha-scaffold-without-3", "", "", {"raman": reduced}))
    rng = np.random.default_rng(6)
    raw = section.raw / section.raw.max(axis=1, keepdims=True)
    rows = [a * raw[3] + (1 - a) * raw[b] for a, b in ((0.4, 10), (0.25, 12), (0.6, 9), (0.0, 10), (0.0, 15))]
    rows += [0.5 * raw[10] + 0.5 * raw[12], raw[5]]
    Y = np.vstack(rows) + 0.3 + 0.002 * rng.standard_normal((len(rows), raw.shape[1]))
    together = ident.analyse(SpectrumBatch(section.grid, Y, "raman"), source="t", entry="e")
    alone = [ident.analyse_spectrum(Spectrum(section.grid, y, "raman"), source="t", entry="e", index=i)
             for i, y in enumerate(Y)]
    assert together == alone
    # the class model asked of every row with anything left (gate None, as the calibration asks it) and its
    # probability kept whatever it is: the same per row too
    from dataclasses import replace

    from fol.identification.decide import DecisionPolicy

    ident = Identifier(ident.library, policy=replace(DecisionPolicy(), class_min_unexplained=0.0, class_min_excess=0.0,
                                                     class_threshold=0.0))
    batch = ident.evidence(SpectrumBatch(section.grid, Y, "raman"), source="t", entry="e", gate=None)
    single = [ident.evidence(SpectrumBatch(section.grid, y[None], "raman"), source="t", entry="e", start_index=i,
                             gate=None)[0] for i, y in enumerate(Y)]
    assert batch == single
    assert sum(ev["unlisted"] is not None for ev in batch) >= 5  # the class model spoke
    assert len({ev["unlisted"]["score"] for ev in batch if ev["unlisted"]}) >= 3

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


# --------------------------------------------------------------- the on-disk model cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(classalarm, "_CACHE", {})
    return tmp_path / "cache"


def test_trained_model_is_cached_on_disk_and_read_back_without_training(fresh_cache, monkeypatch):
    section, _ = scaffold_section()
    model = classalarm.for_section("sha-disk", section)
    files = list(fresh_cache.glob("classalarm-*.npz"))
    assert len(files) == 1 and "raman" in files[0].name
    # a new process: empty memory cache, and training would fail loudly
    monkeypatch.setattr(classalarm, "_CACHE", {})
    monkeypatch.setattr(classalarm, "train", lambda *a, **k: pytest.fail("retrained despite the cache"))
    again = classalarm.for_section("sha-disk", section)
    np.testing.assert_array_equal(again.coef, model.coef)
    assert (again.intercept, again.positives, again.negatives) == (model.intercept, model.positives, model.negatives)


def test_cached_model_of_another_section_or_a_corrupt_file_is_not_used(fresh_cache, monkeypatch):
    section, _ = scaffold_section()
    classalarm.for_section("sha-x", section)
    path = next(fresh_cache.glob("classalarm-*.npz"))
    calls = []
    real_train = classalarm.train
    monkeypatch.setattr(classalarm, "train", lambda s, *a, **k: calls.append(1) or real_train(s, *a, **k))
    # same hash claimed for different content (names differ): retrained
    monkeypatch.setattr(classalarm, "_CACHE", {})
    other = section.subset(np.arange(20) != 5)
    classalarm.for_section("sha-x", other)
    assert calls == [1]
    # a truncated file: retrained, no exception
    path.write_bytes(path.read_bytes()[:100])
    monkeypatch.setattr(classalarm, "_CACHE", {})
    assert classalarm.for_section("sha-x", section) is not None
    assert calls == [1, 1]


def test_no_cache_file_for_unverified_libraries_or_an_unwritable_directory(fresh_cache, tmp_path, monkeypatch):
    section, _ = scaffold_section()
    assert classalarm.for_section("sha-u", section, persist=False) is not None
    assert not fresh_cache.exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FOL_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setattr(classalarm, "_CACHE", {})
    assert classalarm.for_section("sha-w", section) is not None  # trained, cache silently skipped


def test_library_without_a_detector_is_cached_as_such(fresh_cache, monkeypatch):
    section, _ = scaffold_section()
    small = section.subset(np.arange(20) >= 7)  # one analogue: no detector
    assert classalarm.for_section("sha-none", small) is None
    monkeypatch.setattr(classalarm, "_CACHE", {})
    monkeypatch.setattr(classalarm, "train", lambda *a, **k: pytest.fail("retrained"))
    assert classalarm.for_section("sha-none", small) is None


def test_training_set_is_capped_for_large_libraries(monkeypatch):
    section, _ = scaffold_section()
    rng = np.random.default_rng(0)
    clean, labels = classalarm.training_mixtures(section, rng)
    assert clean.shape[0] == 20 * classalarm.PER_ENTRY  # below the cap: every entry PER_ENTRY
    monkeypatch.setattr(classalarm, "MAX_TRAINING", 8 * classalarm.PER_ENTRY + 12 * 3)
    clean, labels = classalarm.training_mixtures(section, rng)
    assert labels.sum() == 8 * classalarm.PER_ENTRY  # analogues keep theirs
    assert (~labels).sum() == 12 * 3
    monkeypatch.setattr(classalarm, "MAX_TRAINING", 10)
    clean, labels = classalarm.training_mixtures(section, rng)
    assert (~labels).sum() == 12 * classalarm.MIN_PER_OTHER


def test_identifier_trains_class_models_up_front(fresh_cache):
    section, _ = scaffold_section()
    lib = Library("mem", "scaffold", "sha-upfront", "", "", {"raman": section})
    Identifier(lib).warm_caches()
    assert len(list(fresh_cache.glob("classalarm-*raman*.npz"))) == 1
    Identifier(lib, class_alarm=False).warm_caches()  # nothing to do
    unverified = Library("mem", "scaffold", "sha-unverified", "", "", {"raman": section}, verified=False)
    Identifier(unverified).warm_caches()
    assert not list(fresh_cache.glob("*sha-unverified*"))
