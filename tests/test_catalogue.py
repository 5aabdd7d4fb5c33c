import pytest

from fol.catalogue import Catalogue, Substance, load_catalogue, name_key
from fol.errors import FormatError


def test_shipped_catalogue_covers_the_shared_one(real_dir):
    shipped = load_catalogue()
    shared = Catalogue.load(real_dir.parent / "substances.csv")
    assert [s.name for s in shipped] == [s.name for s in shared]
    assert len(shipped) >= 103


@pytest.mark.parametrize("spelling,name", [
    ("Fentanyl", "fentanyl"), ("paracetamol", "acetaminophen"), ("4-Fluoro Methoxyacetyl Fentanyl",
     "para-fluoromethoxyacetylfentanyl"), ("cyclopentanyl_f", "cyclopentylfentanyl"),
    ("α-methylfentanyl", "alpha-methylfentanyl"), ("D-Mannitol", "mannitol"), ("nonesuch", None)])
def test_resolve_spellings_and_synonyms(spelling, name):
    assert load_catalogue().resolve(spelling) == name


def test_alarm_flags_are_per_substance():
    cat = load_catalogue()
    assert cat["fentanyl"].alarm and cat["xylazine"].alarm
    assert not cat["aniline"].alarm and cat["aniline"].cls == "fentanyl-precursor"
    assert not cat["mannitol"].alarm


def test_colliding_names_are_refused():
    with pytest.raises(FormatError, match="collides"):
        Catalogue([Substance("a-b", "x", False), Substance("ab", "y", False)])


def test_name_key_ignores_case_and_punctuation():
    assert name_key("N,N-Dimethyl Etonitazene") == name_key("n_n_dimethyletonitazene")


def test_missing_columns(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("name,class\nx,y\n")
    with pytest.raises(FormatError, match="lacks columns"):
        Catalogue.load(p)
