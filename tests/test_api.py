"""The public API: ``import fol`` is cheap, the documented calls work, docs/api.md's example runs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import fol
from builders import ROOT
from fol.errors import FolError, FormatError


def test_import_is_lazy():
    code = "import sys, fol; heavy = [m for m in ('numpy', 'scipy', 'h5py', 'sklearn', 'fol.identification.pipeline') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_public_names():
    for name in ("load_library", "identify", "read_spectrum", "open_source", "Spectrum", "Identifier", "__version__"):
        assert name in dir(fol)
        assert getattr(fol, name) is not None
    with pytest.raises(AttributeError):
        fol.no_such_thing  # noqa: B018


def test_docs_api_example_runs():
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/api.md has no python example"
    for code in blocks:
        exec(compile(code, "docs/api.md", "exec"), {})  # noqa: S102 (our own documentation)


@pytest.fixture(scope="module")
def shipped():
    return fol.load_library()


def test_identify_inputs_agree(shipped, tmp_path):
    """A Spectrum, an (axis, intensities, technique) tuple and a recording path give one verdict."""
    with fol.open_source("sim:xylazine", seed=3) as src:
        s = src.acquire()
    a = fol.identify(s, library=shipped)
    b = fol.identify((s.wavenumber, s.intensity, s.technique), library=shipped)
    rec = tmp_path / "one.h5"
    with fol.RecordingWriter(rec, mode="w") as w:
        w.add_spectrum(s)
    c = fol.identify(rec, library=shipped)
    assert a["components"] and a["components"][0]["name"] == "xylazine"
    for r in (b, c):
        assert (r["verdict"], [x["name"] for x in r["components"]]) == (a["verdict"], [x["name"] for x in a["components"]])
    assert c["source"] == str(rec)
    assert fol.read_spectrum(rec).intensity.tolist() == s.intensity.tolist()


def test_identify_settings(shipped):
    with fol.open_source("sim:caffeine", seed=4) as src:
        s = src.acquire()
    r = fol.identify(s, library=shipped, top=3, similarity="derivative", mixture=False)
    assert len(r["hits"]) == 3 and r["hits"][0]["name"] == "caffeine"


def test_read_spectrum_any_format(real_dir):
    path = next((real_dir / "raman_plastics_slopp").glob("*.txt"))
    s = fol.read_spectrum(path, technique="raman")
    assert s.technique == "raman" and len(s) > 100


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FolError, match="nothere.h5"):
        fol.read_spectrum(tmp_path / "nothere.h5")
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a\nspectrum,at all\n")
    with pytest.raises(FormatError, match="bad.csv"):
        fol.read_spectrum(bad, technique="raman")
    with pytest.raises(FolError, match="nolib.h5"):
        fol.load_library(tmp_path / "nolib.h5")
    with pytest.raises(TypeError):
        fol.identify(42)
