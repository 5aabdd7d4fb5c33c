"""Compatibility: the importers now live in ``fol.io.formats`` (one module per format)."""

from fol.io.formats import read_collection, read_spectra_file, read_spectrum  # noqa: F401
from fol.io.formats.common import merge_sorted  # noqa: F401
from fol.io.formats.jcamp import jcamp_lines, jcamp_technique  # noqa: F401
from fol.io.formats.synth_json import spectral_synth_absorbance  # noqa: F401
from fol.io.formats.text import sniff_delimiter  # noqa: F401
