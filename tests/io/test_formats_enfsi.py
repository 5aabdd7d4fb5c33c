"""The ENFSI DWG IR library as distributed (zip or folder of JCAMP-DX), built from the 67 real records."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from builders import REAL
from enfsi_zip_fixture import build_enfsi_zip

from fol.errors import FormatError
from fol.io.formats import detect, read_collection, read_spectra_file
from fol.io.formats.enfsi_zip import read_collection as zip_collection

needs_real = pytest.mark.skipif(not (REAL / "enfsi_ir").is_dir(), reason="real ENFSI records absent")


@pytest.fixture(scope="module")
def enfsi_zip(tmp_path_factory):
    if not (REAL / "enfsi_ir").is_dir():
        pytest.skip("real ENFSI records absent")
    return build_enfsi_zip(REAL / "enfsi_ir", tmp_path_factory.mktemp("zip") / "enfsi.zip", copies=2)


@needs_real
def test_zip_every_measurement_with_id_validated_form(enfsi_zip):
    assert detect(enfsi_zip).name == "enfsi-zip"
    spectra, refused = read_collection(enfsi_zip)
    assert refused == [] and len(spectra) == 134  # 67 records x 2 measurements; readme.txt skipped
    by_id = {s.metadata["enfsi_id"]: (n, s) for n, s in spectra}
    name, s = by_id[128]
    assert name == "Fentanyl" and s.metadata["validated"] is False and s.metadata["form"] == "base"
    assert s.metadata["formula"] == "C22H28N2O" and s.technique == "ftir" and s.unit == "absorbance"
    name2, s2 = by_id[10128]
    assert name2 == "Fentanyl" and s2.metadata["sample_description"] == "base lab 2"
    record = json.loads((REAL / "enfsi_ir/fentanyl.json").read_text())
    np.testing.assert_allclose(s.intensity, 1 - np.asarray(record["spectrum"]["y"]) / 100, atol=1e-6)
    validated = {n for n, s in spectra if s.metadata["validated"]}
    want = {json.loads(p.read_text())["name"] for p in (REAL / "enfsi_ir").glob("*.json")
            if json.loads(p.read_text())["validated"]}
    assert validated == want and len(want) > 10
    assert "Cocaine" in validated


@needs_real
def test_folder_and_zip_read_the_same(enfsi_zip, tmp_path):
    with zipfile.ZipFile(enfsi_zip) as zf:
        zf.extractall(tmp_path)
    folder = tmp_path / "ENFSI_IR_library"
    a = read_spectra_file(enfsi_zip)
    b, refused = read_collection(folder)
    assert refused == [] and [n for n, _ in a] == [n for n, _ in b]
    np.testing.assert_array_equal(a[5][1].intensity, b[5][1].intensity)


@needs_real
def test_a_bad_member_is_named_and_the_rest_kept(tmp_path):
    bad = "##TITLE=#9999v - Broken\n##JCAMP-DX=4.24\n##DATA TYPE=INFRARED SPECTRUM\n##XUNITS=1/CM\n" \
          "##YUNITS=ABSORBANCE\n##NPOINTS=100\n##XYDATA=(X++(Y..Y))\n1000 1 2 3\n##END=\n"
    nir = "##TITLE=#9998v - NIR thing\n##JCAMP-DX=4.24\n##DATA TYPE=NEAR INFRARED SPECTRUM\n##XUNITS=1/CM\n" \
          "##YUNITS=ABSORBANCE\n##XYPOINTS=(XY..XY)\n" + "".join(f"{12000 - 50 * i} {0.1 + 0.001 * i}\n" for i in range(161)) + "##END=\n"
    z = build_enfsi_zip(REAL / "enfsi_ir", tmp_path / "e.zip", extra={"x/broken.jdx": bad, "x/nir.jdx": nir})
    spectra, refused = zip_collection(z, jobs=1)
    assert len(spectra) == 67 and len(refused) == 2
    assert any("broken.jdx" in r for r in refused), refused
    assert any("nir.jdx" in r and "near-infrared" in r for r in refused)
    with pytest.raises(FormatError, match="more members refused|broken.jdx|nir.jdx"):
        read_spectra_file(z)


@needs_real
def test_parallel_reading_keeps_order(tmp_path):
    z = build_enfsi_zip(REAL / "enfsi_ir", tmp_path / "big.zip", copies=4)
    one, _ = zip_collection(z, jobs=1)
    two, _ = zip_collection(z, jobs=2)
    assert [s.metadata["enfsi_id"] for _, s in one] == [s.metadata["enfsi_id"] for _, s in two]
    seen = []
    zip_collection(z, jobs=1, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (268, 268) and len(seen) >= 2


def test_not_a_zip_of_jcamp(tmp_path):
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.csv", "1,2\n")
    with pytest.raises(FormatError, match="no JCAMP-DX files"):
        read_spectra_file(z)


@needs_real
def test_folder_of_mixed_formats_reads_each_file_and_names_refusals(tmp_path):
    import shutil

    for rel in ("enfsi_ir/fentanyl.json", "vendor_formats/perkinelmer_ir_jcamp/br_1.DX",
                "vendor_formats/spectrochempy/galacticdata/HOLMIUM.SPC"):
        shutil.copy(REAL / rel, tmp_path / (REAL / rel).name)
    spectra, refused = read_collection(tmp_path)
    assert sorted(n for n, _ in spectra) == ["Fentanyl", "br_1"]
    assert len(refused) == 1 and "HOLMIUM.SPC" in refused[0] and "UV/visible" in refused[0]
