"""Text tables as Europe writes them, and the instrument/vendor formats, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import REAL

from fol.errors import FormatError
from fol.io.formats import detect, read_spectra_file, read_spectrum

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="real data absent")
X = np.linspace(400.0, 1800.0, 100)
Y = 50 + 40 * np.exp(-0.5 * ((X - 1000) / 20) ** 2)


def _write(path: Path, text: str, *, bom=False, crlf=False) -> Path:
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("sep", [";", "\t", " "])
def test_decimal_commas_with_header_bom_crlf(tmp_path, sep, bom, crlf):
    body = "".join(f"{a:.2f}{sep}{b:.4f}\n".replace(".", ",") for a, b in zip(X, Y))
    path = _write(tmp_path / "eu.csv", f"Gerät: irgendwas\nRaman-Verschiebung (cm-1){sep}Intensität\n{body}", bom=bom, crlf=crlf)
    ((name, s),) = read_spectra_file(path)
    assert s.technique == "raman" and name == "eu"
    np.testing.assert_allclose(s.wavenumber, np.round(X, 2))
    np.testing.assert_allclose(s.intensity, np.round(Y, 4))


def test_wide_tables_are_read_by_header_names_or_refused(tmp_path):
    rows = "".join(f"{i},{a},{b},{b * 2}\n" for i, (a, b) in enumerate(zip(X, Y)))
    named = _write(tmp_path / "named.csv", "Pixel,Wavenumber,Intensity,Other\n" + rows)
    ((_, s),) = read_spectra_file(named, technique="raman")
    np.testing.assert_allclose(s.wavenumber, X)  # the Wavenumber column, not Pixel
    np.testing.assert_allclose(s.intensity, Y)
    with pytest.raises(FormatError, match="4 numeric columns without a header naming them: .*not guessed"):
        read_spectra_file(_write(tmp_path / "bare.csv", rows), technique="raman")
    with pytest.raises(FormatError, match="several intensity columns"):
        read_spectra_file(_write(tmp_path / "two.csv", "Pixel,Wavenumber,Intensity,Intensity\n" + rows), technique="raman")
    with pytest.raises(FormatError, match="no column named as the axis"):
        read_spectra_file(_write(tmp_path / "noaxis.csv", "Pixel,Foo,Intensity,Bar\n" + rows), technique="raman")


def test_technique_given_applies_only_where_the_file_does_not_say(tmp_path):
    path = _write(tmp_path / "ir.csv", "Wavenumber,Absorbance\n" + "".join(f"{a},{b / 100}\n" for a, b in zip(X, Y)))
    ((_, s),) = read_spectra_file(path, technique="raman")
    assert s.technique == "ftir" and s.metadata["technique_from"] == "file"
    bare = _write(tmp_path / "bare.csv", "".join(f"{a},{b}\n" for a, b in zip(X, Y)))
    ((_, s),) = read_spectra_file(bare, technique="raman")
    assert s.technique == "raman" and s.metadata["technique_from"] == "given"


@needs_real
def test_wasatch_enlighten_wavenumber_and_processed_with_metadata():
    files = sorted((REAL / "raman_wasatch_enlighten").glob("set1_*/*.csv"))
    assert len(files) == 80
    for p in files:
        assert detect(p).name == "enlighten"
        ((name, s),) = read_spectra_file(p)  # no --technique: the format says Raman
        assert s.technique == "raman" and name == p.stem
        assert s.metadata["model"].startswith("WP-785") and s.metadata["serial"] == "WP-01990"
        assert 784 < s.metadata["laser_wavelength_nm"] < 786 and s.metadata["integration_ms"] > 0
        assert not np.allclose(np.diff(s.intensity), np.diff(s.intensity)[0])  # a spectrum, not a straight line
    ((_, s),) = read_spectra_file(next(p for p in files if p.stem == "acetaminophen"))
    lines = (files[0].parent / "acetaminophen.csv").read_text().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Pixel,")) + 1:]
    first = [float(v) for v in table[0].split(",")]
    assert s.wavenumber[0] == first[1] and s.intensity[0] == first[2]  # Wavenumber, Processed
    assert abs(s.wavenumber[np.argmax(s.intensity)] - 857) < 10  # paracetamol's strongest Raman band


@needs_real
def test_bwtek_charisma_files_raman_shift_and_dark_subtracted():
    files = [p for p in sorted((REAL / "raman_multi_instrument_charisma/datasets2").rglob("*.txt"))
             if p.read_bytes().startswith(b"File Version;BW")]
    assert len(files) > 50
    for p in files:
        try:
            ((_, s),) = read_spectra_file(p)
        except FormatError as e:  # only lamp/LED spectra without Raman bands may be refused, and then by name
            assert str(p) in str(e)
            continue
        assert s.technique == "raman" and s.metadata["vendor"] == "B&W Tek" and s.metadata["laser_wavelength_nm"] > 500
    ps = next(p for p in files if p.name.startswith("PST") and "785" in p.name)
    ((_, s),) = read_spectra_file(ps)
    band = s.wavenumber[np.argmax(np.where((s.wavenumber > 900) & (s.wavenumber < 1100), s.intensity, -np.inf))]
    assert abs(band - 1001) < 6  # polystyrene's ring-breathing band


@needs_real
def test_bwtek_and_a_good_file_batch(tmp_path):
    from fol.cli import main

    bw = next(p for p in sorted((REAL / "raman_multi_instrument_charisma/datasets2").rglob("PST*.txt"))
              if p.read_bytes().startswith(b"File Version;BW"))
    good = REAL / "raman_wasatch_enlighten/set1_WP-01990_WP-785XS_2026-04-06/acetaminophen.csv"
    assert main(["library", "import", str(bw), str(good), "--out", str(tmp_path / "two.h5"), "--no-progress"]) == 0
    from fol.io.library import load_library

    assert len(load_library(tmp_path / "two.h5").section("raman")) == 2


@needs_real
@pytest.mark.parametrize("rel, technique, n, lo, hi", [
    ("vendor_formats/openspecy/ftir_ps.0", "ftir", 2126, 399, 4498),                 # Bruker OPUS, absorbance block
    ("vendor_formats/spectrochempy/irdata/test.0000", "ftir", 2567, 699, 3998),       # OPUS
    ("vendor_formats/spectrochempy/irdata/2-BaSO4_0.SPA", "ftir", 11098, 649, 6001),   # Thermo OMNIC SPA
    ("vendor_formats/spectrochempy/galacticdata/BENZENE.SPC", "ftir", 1842, 449, 4001),  # Galactic SPC (needs technique)
])
def test_vendor_files_read_by_maintained_readers(rel, technique, n, lo, hi):
    given = technique if rel.upper().endswith(".SPC") else None
    s = read_spectrum(REAL / rel, given)
    assert s.technique == technique and len(s) == n
    assert lo <= s.wavenumber[0] < lo + 2 and hi - 2 < s.wavenumber[-1] <= hi + 1
    assert s.metadata["vendor_format"] and np.isfinite(s.intensity).all()


@needs_real
@pytest.mark.parametrize("rel, reason", [
    ("vendor_formats/spectrochempy/galacticdata/DRUG_SAMPLE.SPC", "not a supported single-spectrum SPC (GC-MS"),
    ("vendor_formats/spectrochempy/galacticdata/HOLMIUM.SPC", "nanometres (250-700 nm): a UV/visible"),
    ("vendor_formats/spectrochempy/galacticdata/FID.SPC", "XSECS (not wavenumbers)"),
    ("vendor_formats/spectrochempy/galacticdata/IG_SAMP.SPC", "an interferogram"),
    ("vendor_formats/spectrochempy/irdata/background.0", "no absorbance, transmittance or Raman block"),
    ("vendor_formats/openspecy/ftir_polyethylene_reflectance_adjustment_not_working.spa", "reflectance"),
    ("vendor_formats/renishaw_wdf/cheminfo_sp.wdf", "covers 1226-2788 cm-1"),  # read; outside the library's range
    ("jcamp/infrared_spectra/example_compound_file.jdx", "near-infrared"),
])
def test_vendor_and_non_vibrational_files_refused_naming_file_and_why(rel, reason):
    with pytest.raises(FormatError) as err:
        read_spectra_file(REAL / rel, technique="ftir")
    assert str(REAL / rel) in str(err.value) and reason in str(err.value)


@needs_real
def test_perkinelmer_titles_are_operators_not_names():
    names = {read_spectra_file(p)[0][0]: read_spectra_file(p)[0][1].metadata.get("operator")
             for p in sorted((REAL / "vendor_formats/perkinelmer_ir_jcamp").glob("*.DX"))}
    assert len(names) == 15 and "br_1" in names and set(names.values()) == {"flavia", "Carolina Isabel"}


@needs_real
def test_read_spectrum_any_single_spectrum_format_and_recordings(tmp_path):
    from fol.io.recording import RecordingWriter

    for rel in ("enfsi_ir/fentanyl.json", "vendor_formats/perkinelmer_ir_jcamp/br_1.DX",
                "raman_wasatch_enlighten/set1_WP-01990_WP-785XS_2026-04-06/caffeine.csv"):
        assert len(read_spectrum(REAL / rel)) >= 64
    s = read_spectrum(REAL / "enfsi_ir/fentanyl.json")
    with RecordingWriter(tmp_path / "r.h5") as w:
        w.add_spectrum(s)
    back = read_spectrum(tmp_path / "r.h5")
    np.testing.assert_allclose(back.intensity, s.intensity)
    with pytest.raises(FormatError, match="holds 36 spectra|covers"):
        read_spectrum(REAL / "vendor_formats/renishaw_wdf/cheminfo_6x6.spc", "raman")


def test_constant_and_nir_tables_refused(tmp_path):
    flat = _write(tmp_path / "flat.csv", "Wavenumber,Absorbance\n" + "".join(f"{a},0.5\n" for a in X))
    with pytest.raises(FormatError, match="constant"):
        read_spectra_file(flat)
    x = np.linspace(4000, 12000, 200)
    nir = _write(tmp_path / "nir.csv", "Wavenumber,Absorbance\n" + "".join(f"{a},{0.1 + 1e-5 * a}\n" for a in x))
    with pytest.raises(FormatError, match="near-infrared"):
        read_spectra_file(nir)


@needs_real
def test_identify_file_reads_csv_semicolon_decimal_comma_and_jcamp(tmp_path, capsys):
    """``fol identify --file`` on the files the issue found refused (all were 'not a readable HDF5 file')."""
    import json

    from fol.cli import main
    from fol.io.library import load_library

    shipped = load_library()
    section = shipped.section("ftir")
    j = section.names.index("fentanyl")
    x, y = section.grid, section.raw[j].astype(float)
    files = {
        "plain.csv": "wavenumber,absorbance\n" + "".join(f"{a:.1f},{b:.6f}\n" for a, b in zip(x, y)),
        "semicolon.csv": "Wellenzahl;Absorbanz\n" + "".join(f"{a:.1f};{b:.6f}\n" for a, b in zip(x, y)),
        "comma.csv": "Wellenzahl;Absorbanz\n" + "".join(f"{a:.1f};{b:.6f}\n".replace(".", ",") for a, b in zip(x, y)),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    from fol.libtools.tools import export_section

    (jdx,) = export_section(section.subset([j]), tmp_path, "jcamp")
    for p in [*(tmp_path / n for n in files), jdx]:
        assert main(["identify", "--file", str(p), "--json"]) == 0, p
        r = json.loads(capsys.readouterr().out)
        assert r["technique"] == "ftir" and r["components"][0]["name"] == "fentanyl" and r["alarm"], p


@needs_real
def test_replay_paths_convert_spectra_files(tmp_path):
    from fol.io.formats import recordings_for
    from fol.io.recording import Recording

    files = [REAL / "enfsi_ir/fentanyl.json", REAL / "vendor_formats/perkinelmer_ir_jcamp/br_1.DX"]
    paths = recordings_for(files, tmp_path)
    assert len(paths) == 1
    with Recording(paths[0]) as rec:
        assert [e.name for e in rec.entries] == ["fentanyl.json", "br_1.DX"]


@needs_real
def test_spa_reader_does_not_go_on_the_network():
    import subprocess
    import sys

    code = ("import threading; from fol.io.formats import read_spectrum; "
            f"read_spectrum({str(REAL / 'vendor_formats/spectrochempy/irdata/3-SILICA_0.SPA')!r}); "
            "print(sorted(t.name for t in threading.enumerate()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert "update-check" not in out.stdout and out.stdout.strip() == "['MainThread']"
