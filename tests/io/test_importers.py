"""Importers, tested on the real files in ../shared/data/real and on small tables written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fol.errors import FormatError
from fol.io.formats import read_spectra_file
from fol.spectrum import Spectrum

from builders import REAL
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent")


def _files(sub: str) -> list[Path]:
    folder = REAL / sub
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _check_valid(pairs):
    assert pairs, "an import returned no spectra"
    for name, s in pairs:
        assert isinstance(s, Spectrum) and isinstance(name, str) and name
        assert s.technique in ("raman", "ftir") and s.unit in ("counts", "absorbance")
        assert len(s) >= 64 and np.all(np.diff(s.wavenumber) > 0)
        assert np.isfinite(s.intensity).mean() > 0.5


# ----------------------------------------------------------------------------- JCAMP-DX


@needs_real
@pytest.mark.parametrize("path", _files("jcamp"), ids=lambda p: p.relative_to(REAL).as_posix())
def test_every_jcamp_test_file_imports_or_is_refused_cleanly(path, capsys):
    try:
        pairs = read_spectra_file(path)
    except FormatError as e:
        assert str(path) in str(e)
    else:
        _check_valid(pairs)
    assert capsys.readouterr().out == ""  # jcamp's integrity-check prints do not leak to stdout


@needs_real
def test_nist_benzene_known_values():
    ((name, s),) = read_spectra_file(REAL / "jcamp/infrared_spectra/benzene.jdx")
    assert name == "Benzene" and s.technique == "ftir" and s.unit == "absorbance"
    assert len(s) == 3343 and (s.wavenumber[0], s.wavenumber[-1]) == (452.0, 3794.0)
    # YUNITS=TRANSMITTANCE as a 0..1 fraction, FIRSTY=0.8787 at FIRSTX=452
    assert s.intensity[0] == pytest.approx(-np.log10(0.8787), rel=1e-9)
    assert "Coblentz" in s.metadata["owner"] and s.metadata["source"].endswith("benzene.jdx")


@needs_real
def test_nist_quantitative_units_and_title():
    ((name, s),) = read_spectra_file(REAL / "jcamp/infrared_spectra/2-butanone.jdx")
    assert name == "Methyl Ethyl Ketone" and len(s) == 14106
    assert s.wavenumber[0] == pytest.approx(574.928) and s.wavenumber[-1] == pytest.approx(3975.077)
    assert s.unit == "absorbance" and 0 < np.nanmax(s.intensity) < 0.01


@needs_real
def test_compressed_forms_decode_to_the_same_spectrum():
    lancashire, official = REAL / "jcamp/Robert_J_Lancashire_test_data", REAL / "jcamp/jcamp-dx.org_official_test_data"
    pac = read_spectra_file(lancashire / "pacdec1.jdx")[0][1]  # PAC, percent transmittance
    affn = read_spectra_file(official / "PE1800.DX")[0][1]  # the same data as 0..1 fraction
    np.testing.assert_allclose(pac.intensity, affn.intensity, atol=1e-12)
    fix = read_spectra_file(lancashire / "jtpolys.jdx")[0][1]  # FIX with inline $$ comments
    difdup = read_spectra_file(lancashire / "jtpolysd.jdx")[0][1]  # DIF/DUP
    np.testing.assert_allclose(fix.intensity, difdup.intensity, atol=1e-3)
    absorb = read_spectra_file(lancashire / "fixinc2.jdx")[0][1]  # indene as ABSORBANCE (ends with Ctrl-Z)
    transm = read_spectra_file(lancashire / "xyinc1.jdx")[0][1]  # indene as TRANSMITTANCE
    unsaturated = absorb.intensity < 2.5
    assert unsaturated.mean() > 0.99
    np.testing.assert_allclose(absorb.intensity[unsaturated], transm.intensity[unsaturated], atol=1e-3)


@needs_real
def test_compound_files_return_every_block():
    pairs = read_spectra_file(REAL / "jcamp/Robert_J_Lancashire_test_data/compound.jdx")
    assert [n for n, _ in pairs] == ["block 1", "block 2", "block 3", "trans-[Rh(py)4Cl2]Cl.5H2O", "block 5"]
    assert [len(s) for _, s in pairs] == [1976, 1976, 3951, 1976, 3951]
    with pytest.raises(FormatError, match="near-infrared spectrum, not mid-infrared"):  # both blocks 4000-12000 cm-1
        read_spectra_file(REAL / "jcamp/infrared_spectra/example_compound_file.jdx")


@needs_real
@pytest.mark.parametrize("path, found", [
    ("jcamp/jcamp-dx.org_official_test_data/ISAS_MS1.DX", "DATA TYPE 'MASS SPECTRUM'"),
    ("jcamp/Robert_J_Lancashire_test_data/o01.jdx", "DATA TYPE 'NMR SPECTRUM'"),
    ("jcamp/Robert_J_Lancashire_test_data/blckpac1.jdx", "DATA TYPE 'UV/VIS SPECTRUM'"),
    ("jcamp/Robert_J_Lancashire_test_data/coffhd.jdx", "DATA TYPE 'GAS CHROMATOGRAPH'"),
    ("jcamp/Robert_J_Lancashire_test_data/dupinc2.jdx", "decoded 3731 values but NPOINTS is 3734"),
    ("jcamp/jcamp-dx.org_official_test_data/BRUKER2.JCM", "do not decompress consistently"),
    ("vendor_formats/openspecy/fitr_nitrocellulose.jdx", "YUNITS 'Reflectance' not supported"),
])
def test_non_spectra_and_corrupt_jcamp_are_refused_with_the_reason(path, found):
    with pytest.raises(FormatError) as err:
        read_spectra_file(REAL / path)
    assert str(REAL / path) in str(err.value) and found in str(err.value)


def test_jcamp_units_and_technique_override(tmp_path):
    x = np.linspace(2.5, 25.0, 100)  # micrometres
    y = 0.2 + 0.5 * np.exp(-0.5 * ((x - 10) / 0.5) ** 2)
    body = "\n".join(f"{a:.6f} {b:.6f}" for a, b in zip(x, y))
    text = ("##TITLE=test $$ a comment\n##JCAMP-DX=4.24\n##DATA TYPE=INFRARED SPECTRUM\n##XUNITS=MICROMETERS\n"
            f"##YUNITS=ABSORBANCE\n##NPOINTS=100\n##XYPOINTS=(XY..XY)\n{body}\n##END=\n")
    path = tmp_path / "um.dx"
    path.write_text(text)
    ((name, s),) = read_spectra_file(path)
    assert name == "test" and s.technique == "ftir"
    np.testing.assert_allclose(s.wavenumber, np.sort(1e4 / x), rtol=1e-6)  # x written with 6 decimals
    assert s.wavenumber[np.argmax(s.intensity)] == pytest.approx(1000.0)
    assert read_spectra_file(path, technique="raman")[0][1].technique == "ftir"  # the file says; --technique does not override
    path.write_text(text.replace("##DATA TYPE=INFRARED SPECTRUM\n", ""))
    with pytest.raises(FormatError, match="no DATA TYPE; give the technique"):
        read_spectra_file(path)
    assert read_spectra_file(path, technique="ftir")[0][1].technique == "ftir"


# ----------------------------------------------------------------------------- spectral-synth JSON


@needs_real
def test_all_enfsi_records_import():
    files = _files("enfsi_ir")
    assert len(files) == 67
    names = set()
    for path in files:
        ((name, s),) = read_spectra_file(path)
        names.add(name)
        assert len(s) == 460 and s.technique == "ftir" and s.unit == "absorbance"
        assert 398 <= s.wavenumber[0] <= 652 and 3979 <= s.wavenumber[-1] <= 4002
        assert -1e-9 <= np.nanmin(s.intensity) and np.nanmax(s.intensity) <= 1 + 1e-9
        assert s.metadata["source"].startswith("ENFSI DWG IR Library") and "enfsiId" in s.metadata["source"]
        assert isinstance(s.metadata["aliases"], list) and isinstance(s.metadata["validated"], bool)
    assert len(names) == 67


@needs_real
def test_enfsi_fentanyl_values():
    path = REAL / "enfsi_ir/fentanyl.json"
    record = json.loads(path.read_text())
    ((name, s),) = read_spectra_file(path)
    assert name == "Fentanyl" and s.metadata["aliases"] == ["fentanil"] and s.metadata["enfsi_id"] == 128
    y = np.array(record["spectrum"]["y"])
    first, last = record["spectrum"]["firstX"], record["spectrum"]["lastX"]
    assert (s.wavenumber[0], s.wavenumber[-1]) == (first, last)
    assert s.wavenumber[100] == pytest.approx(first + (last - first) * 100 / 459)
    np.testing.assert_allclose(s.intensity, 1 - y / 100)  # linear inverse, not -log10
    assert s.metadata["measurement"] == "ATR"
    assert read_spectra_file(path, technique="raman")[0][1].technique == "ftir"  # what the file says wins
    assert s.metadata["category"] == "opioids" and s.metadata["form"] == "base"


def test_spectral_synth_array_and_other_json(tmp_path):
    rec = {"name": "Thing", "aliases": ["t"], "source": "test", "enfsiId": 1, "validated": True,
           "spectrum": {"firstX": 400, "lastX": 4000, "y": list(np.linspace(10, 100, 128))}}
    path = tmp_path / "lib.json"
    path.write_text(json.dumps([rec, {**rec, "name": "Other"}]))
    assert [n for n, _ in read_spectra_file(path)] == ["Thing", "Other"]
    path.write_text(json.dumps({"wavenumber": [1, 2], "intensity": [3, 4]}))
    with pytest.raises(FormatError, match="unsupported format"):
        read_spectra_file(path)
    path.write_text('{"name": ')
    with pytest.raises(FormatError, match="malformed JSON"):
        read_spectra_file(path)


# ----------------------------------------------------------------------------- text tables


def _table(x, y, sep, header=""):
    return header + "".join(f"{a}{sep}{b}\n" for a, b in zip(x, y))


X = np.linspace(400.0, 1800.0, 100)
Y = 50 + 40 * np.exp(-0.5 * ((X - 1000) / 20) ** 2)


@pytest.mark.parametrize("sep", [",", ";", "\t", " ", "   "])
def test_two_column_tables_with_any_delimiter(tmp_path, sep):
    path = tmp_path / "sample.csv"
    path.write_text(_table(X, Y, sep, header="# exported by something\nRaman shift (cm-1)" + sep + "Intensity\n"))
    ((name, s),) = read_spectra_file(path)  # the header says Raman
    assert name == "sample" and s.technique == "raman" and s.unit == "counts"
    np.testing.assert_allclose(s.wavenumber, X)
    np.testing.assert_allclose(s.intensity, Y)


def test_table_header_says_transmittance_and_axis_decreasing(tmp_path):
    path = tmp_path / "ir.txt"
    path.write_text(_table(X[::-1], Y[::-1], "\t", header="Wavenumber\t%T\n"))
    ((_, s),) = read_spectra_file(path)
    assert s.technique == "ftir" and s.unit == "absorbance"
    np.testing.assert_allclose(s.intensity, -np.log10(Y / 100))


def test_table_repeated_x_is_sorted_and_averaged(tmp_path):
    x = np.r_[X[:50], X[49], X[50:]][::-1]
    y = np.r_[Y[:50], Y[49] + 10, Y[50:]][::-1]
    path = tmp_path / "steps.txt"
    path.write_text(_table(x, y, " "))
    ((_, s),) = read_spectra_file(path, technique="raman")
    np.testing.assert_allclose(s.wavenumber, X)
    assert s.intensity[49] == pytest.approx(Y[49] + 5)
    assert "1 rows with a repeated x averaged" in s.metadata["import_note"]


@pytest.mark.parametrize("text, problem", [
    (_table(X, Y, ","), "does not say whether it holds a Raman or FTIR"),
    ("just some notes\nno numbers here\n", "unsupported format (no numeric table found)"),
    ("1,2\n3,4\n", "unsupported format (2 data rows"),
])
def test_bad_tables_are_refused(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        read_spectra_file(path, technique=None if "Raman or FTIR" in problem else "raman")
    assert str(path) in str(err.value) and problem in str(err.value)


@needs_real
def test_renishaw_paracetamol_repeated_points_are_averaged():
    ((name, s),) = read_spectra_file(REAL / "raman_paracetamol/paracetamol_renishaw.txt", technique="raman")
    assert name == "paracetamol_renishaw" and len(s) == 4064 - 7
    assert (s.wavenumber[0], s.wavenumber[-1]) == (96.7865, 3200.07)
    i = np.flatnonzero(s.wavenumber == 2590.77)
    assert i.size == 1 and s.intensity[i[0]] == pytest.approx((952.332 + 971.597) / 2)
    assert s.wavenumber[np.argmax(s.intensity)] == pytest.approx(857, abs=5)  # the strongest paracetamol band


@needs_real
def test_slopp_plastics_import():
    files = _files("raman_plastics_slopp")
    assert len(files) == 261
    for path in files:
        ((name, s),) = read_spectra_file(path, technique="raman")
        assert name == path.stem and len(s) >= 64
    ((_, pe),) = read_spectra_file(REAL / "raman_plastics_slopp" / next(p.name for p in files if p.name.startswith("Polyethylene")),
                                   technique="raman")
    band = (pe.wavenumber > 1250) & (pe.wavenumber < 1500)
    assert pe.intensity[band].max() > np.median(pe.intensity)  # CH2 bands of polyethylene


# ----------------------------------------------------------------------------- vendor files


@needs_real
@pytest.mark.parametrize("path", _files("vendor_formats"), ids=lambda p: p.relative_to(REAL).as_posix())
def test_every_vendor_file_imports_or_is_refused_cleanly(path):
    technique = "raman" if "raman" in path.name.lower() else "ftir"
    try:
        pairs = read_spectra_file(path, technique=technique)
    except FormatError as e:
        assert str(path) in str(e)
    else:
        _check_valid(pairs)


@needs_real
def test_vendor_spectra_that_are_readable():
    pe = [read_spectra_file(p)[0][1] for p in _files("vendor_formats/perkinelmer_ir_jcamp")]
    assert len(pe) == 15
    assert all(len(s) == 1216 and (s.wavenumber[0], s.wavenumber[-1]) == (600.0, 3030.0) for s in pe)
    ((_, hdpe),) = read_spectra_file(REAL / "vendor_formats/openspecy/raman_hdpe.csv", technique="raman")
    assert len(hdpe) == 964 and hdpe.wavenumber[0] == 301.04
    ((_, pva),) = read_spectra_file(REAL / "vendor_formats/openspecy/ftir_pva_without_header.csv", technique="ftir")
    assert len(pva) == 863 and pva.unit == "absorbance"


@needs_real
@pytest.mark.parametrize("path, kind", [
    ("vendor_formats/openspecy/ftir_ldpe_soil.asp", "Agilent ASP"),
    ("vendor_formats/openspecy/raman_hdpe.json", "JSON that is not an ENFSI/spectral-synth record"),
])
def test_vendor_formats_are_unsupported(path, kind):
    with pytest.raises(FormatError, match="unsupported format") as err:
        read_spectra_file(REAL / path)
    assert kind in str(err.value) and str(REAL / path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        read_spectra_file(tmp_path / "absent.jdx")
