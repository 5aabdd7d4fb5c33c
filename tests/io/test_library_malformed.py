"""Broken library files are refused in one line that names the file (never a traceback)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from fol.errors import LibraryError
from fol.io.library import load_library
from fol.paths import default_library


@pytest.fixture
def lib_copy(tmp_path):
    path = tmp_path / "lib.h5"
    shutil.copy(default_library(), path)
    return path


def _set_attr(path, name, value, where="/"):
    with h5py.File(path, "r+") as f:
        f[where].attrs[name] = value


@pytest.mark.parametrize("name,value,expect", [
    ("format", np.array([b"fol-library", b"x"]), "not a fol library"),
    ("format", 3, "not a fol library"),
    ("format_version", np.array([1, 1]), "format_version"),
    ("format_version", "1", "format_version"),
    ("format_version", True, "format_version"),
    ("format_version", 99, "format_version"),
])
def test_bad_root_attributes(lib_copy, name, value, expect):
    _set_attr(lib_copy, name, value)
    with pytest.raises(LibraryError, match=expect) as e:
        load_library(lib_copy, allow_unverified=True)
    msg = str(e.value)
    assert msg.startswith(str(lib_copy)) and "\n" not in msg and len(msg) < 400


def test_bad_recipe_names_the_library(lib_copy):
    _set_attr(lib_copy, "recipe", '[{"step": "no_such_step"}]', "/raman")
    with pytest.raises(LibraryError, match=r"raman section: bad recipe .*no_such_step") as e:
        load_library(lib_copy, allow_unverified=True)
    assert str(e.value).startswith(str(lib_copy))


def test_directory_and_garbage(tmp_path):
    with pytest.raises(LibraryError, match="is a directory"):
        load_library(tmp_path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(LibraryError) as e:
        load_library(junk)
    assert str(e.value).startswith(str(junk)) and "\n" not in str(e.value)


def test_bit_flipped_file(lib_copy):
    data = bytearray(lib_copy.read_bytes())
    rng = np.random.default_rng(3)
    for pos in rng.integers(512, len(data), 40):
        data[pos] ^= 0xFF
    lib_copy.write_bytes(bytes(data))
    with pytest.raises(LibraryError) as e:
        load_library(lib_copy)
    assert str(e.value).startswith(str(lib_copy)) and "\n" not in str(e.value)
