"""Binary vendor formats, through maintained readers (the ``formats`` extra: ``pip install 'fol[formats]'``).

=========================  ===================  ==============================================
format                     reader (licence)     notes
=========================  ===================  ==============================================
Galactic/Thermo SPC        ``spc-io`` (MIT)     CHARISMA project, 2025; x type decides the
                                                technique (``XRAMANS`` Raman; ``XWAVEN``
                                                cm-1, experiment type or the given technique);
                                                nm, seconds, mass axes and interferograms refused
Bruker OPUS (``.0``...)    ``brukeropus`` (MIT) 2025; the absorbance (``a``), transmittance
                                                (``t``) or Raman (``ra``) block; files holding
                                                only single-channel/interferogram blocks refused
Thermo OMNIC SPA           ``spectrochempy``    CeCILL-B; the only maintained SPA reader on
                           (``read_spa``)       PyPI; heavy, imported only for ``.spa`` files;
                                                its PyPI update check is switched off
Renishaw WDF               ``renishaw-wdf``     Apache-2.0, Renishaw's own reader, 2026; every
                           (Apache-2.0)         spectrum of a map or depth series
=========================  ===================  ==============================================

No binary parser is written here: these readers are used as they are.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import numpy as np

from fol.errors import FormatError
from fol.io.formats.common import file_technique, spectrum, stem
from fol.spectrum import Spectrum

log = logging.getLogger(__name__)
for _name in ("spc_io", "spectrochempy", "brukeropus", "wdf"):  # their warnings go to the application's handlers
    logging.getLogger(_name).addHandler(logging.NullHandler())
EXTRA = "pip install 'fol[formats]'"
OPUS_SUFFIX = re.compile(r"\.\d+$")


def _reader_error(e: BaseException, limit: int = 240) -> str:
    """A vendor reader's exception as one bounded line (pydantic and others write several lines)."""
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _need(module: str, label: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FormatError(f"{label}: reading {what} files needs the '{module}' package: {EXTRA}") from None


@contextlib.contextmanager
def _quiet():
    """Vendor readers print warnings to stdout; library code does not print."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf
    if buf.getvalue().strip():
        log.debug("reader output: %s", buf.getvalue().strip())


# ----------------------------------------------------------------------------- SPC


def sniff_spc(head: bytes, path: Path) -> bool:
    return path.suffix.lower() == ".spc"


_SPC_Y = {"YABSRB": "absorbance", "YTRANS": "transmittance", "YCOUNT": "counts", "YARB": None,
          "YRAMAN": "counts", "YINTENS": "counts", "YENERGY": "counts", "YSUBREF": None}
_SPC_EXPER = {"SPCFTIR": "ftir", "SPCNIR": "nir", "SPCRMN": "raman", "SPCUV": "uv", "SPCMS": "ms",
              "SPCGC": "gc", "SPCNMR": "nmr", "SPCFLR": "fluorescence", "SPCATM": "atomic", "SPCDAD": "uv"}


def read_spc(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    label = str(path)
    spc_io = _need("spc_io", label, "Galactic SPC")
    try:
        with _quiet(), open(path, "rb") as fh:
            raw = spc_io.SpcRaw.from_bytes_io(fh) if hasattr(spc_io.SpcRaw, "from_bytes_io") else None
            fh.seek(0)
            spc = spc_io.SPC.from_bytes_io(fh)
    except OSError as e:
        raise FormatError(f"{label}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - the reader raises ValueError/NotImplementedError/struct errors
        raise FormatError(f"{label}: the SPC reader cannot read this file ({_reader_error(e)}); "
                          "not a supported single-spectrum SPC (GC-MS, 3-D and old-format files are refused)") from None
    xtype, ytype = str(spc.xtype), str(spc.ytype)
    exper = str(getattr(getattr(raw, "main_header", None), "fexper", "")) if raw is not None else ""
    if ytype == "YIGRAM":
        raise FormatError(f"{label}: an interferogram (SPC y type YIGRAM), not a spectrum")
    said = {"XRAMANS": "raman"}.get(xtype) or {"ftir": "ftir", "raman": "raman"}.get(_SPC_EXPER.get(exper, ""))
    if xtype == "XWAVEN" and _SPC_EXPER.get(exper) in ("nir", "uv", "ms", "gc", "nmr"):
        raise FormatError(f"{label}: SPC experiment type {exper}: not a mid-infrared or Raman spectrum")
    if xtype not in ("XWAVEN", "XRAMANS", "XUMETR", "XNMETR"):
        raise FormatError(f"{label}: SPC x axis type {xtype} (not wavenumbers): not a vibrational spectrum")
    if xtype == "XNMETR":
        raise FormatError(f"{label}: SPC x axis in nanometres ({_span(spc.xarray)} nm): a UV/visible/NIR "
                          "spectrum, not mid-infrared or Raman")
    tech, source = file_technique(technique, said, label)
    unit = _SPC_Y.get(ytype, "missing")
    if unit == "missing":
        raise FormatError(f"{label}: SPC y type {ytype} not supported (absorbance, transmittance or counts)")
    if unit is None:
        unit = "counts" if tech == "raman" else "absorbance"
    if tech == "raman" and unit != "counts":
        unit = "counts"
    out = []
    n = len(spc)
    for k, sub in enumerate(spc):
        x = np.asarray(sub.xarray if getattr(sub, "xarray", None) is not None else spc.xarray, dtype=np.float64)
        y = np.asarray(sub.yarray, dtype=np.float64)
        if xtype == "XUMETR":
            x = 1e4 / x
        if unit == "transmittance" and np.nanmax(y) <= 2.0:
            y = y * 100.0
        where = f"{label}, subfile {k + 1}" if n > 1 else label
        meta = {"source": label, "file": label, "technique_from": source, "vendor_format": "Galactic SPC"}
        text = getattr(spc.log_book, "text", None) or {}
        for key, value in list(text.items())[:20]:
            meta[f"spc_{key}"] = str(value).strip()
        out.append((stem(label) + (f" #{k + 1}" if n > 1 else ""), spectrum(where, x, y, tech, unit, meta)))
    return out


def _span(x) -> str:
    x = np.asarray(x, dtype=float)
    return f"{np.nanmin(x):.0f}-{np.nanmax(x):.0f}"


# ----------------------------------------------------------------------------- OPUS


def sniff_opus(head: bytes, path: Path) -> bool:
    return bool(OPUS_SUFFIX.search(path.suffix)) or path.suffix.lower() == ".opus" or head[:4] == b"\x0a\x0a\xfe\xfe"


def read_opus(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    label = str(path)
    bo = _need("brukeropus", label, "Bruker OPUS")
    try:
        with _quiet():
            f = bo.read_opus(str(path))
    except Exception as e:  # noqa: BLE001
        raise FormatError(f"{label}: the OPUS reader cannot read this file ({_reader_error(e)})") from None
    if not getattr(f, "is_opus", False):
        raise FormatError(f"{label}: not a Bruker OPUS file")
    keys = list(getattr(f, "data_keys", []))
    params = getattr(f, "params", None)

    def param(key):
        try:
            return getattr(params, key)
        except Exception:  # noqa: BLE001 - brukeropus raises AttributeError with its own message
            return None

    pick = next(((k, t, u) for k, t, u in (("ra", "raman", "counts"), ("a", "ftir", "absorbance"),
                                          ("t", "ftir", "transmittance")) if k in keys), None)
    if pick is None:
        raise FormatError(f"{label}: the OPUS file holds no absorbance, transmittance or Raman block "
                          f"(blocks: {', '.join(keys) or 'none'}); single-channel and interferogram data are not spectra")
    key, tech, unit = pick
    if technique and technique != tech:
        log.info("%s: the file says %s; given technique %s not used", label, tech, technique)
    block = getattr(f, key)
    x = np.asarray(block.x, dtype=np.float64)
    y = np.asarray(block.y, dtype=np.float64)
    if unit == "transmittance" and np.nanmax(y) <= 2.0:
        y = y * 100.0
    meta = {"source": label, "file": label, "technique_from": "file", "vendor_format": "Bruker OPUS",
            "opus_block": key}
    for k, out in (("snm", "sample"), ("ins", "instrument"), ("src", "ir_source"), ("lwn", "laser_wavenumber"),
                   ("dat", "date")):
        v = param(k)
        if v not in (None, ""):
            meta[out] = v if isinstance(v, (int, float)) else str(v)
    if str(meta.get("ir_source", "")).upper() == "NIR":
        raise FormatError(f"{label}: measured with the NIR source ({_span(x)} cm-1): not a mid-infrared spectrum")
    name = str(meta.get("sample") or stem(label))
    return [(name, spectrum(label, x, y, tech, unit, meta))]


# ----------------------------------------------------------------------------- SPA


def _no_update_check() -> None:
    """spectrochempy starts a thread that asks PyPI for a newer release when its application first
    starts; a field instrument's reader must not go on the network, so that start-up hook is replaced
    by a no-op (before the reader module starts the application). Its config folder
    (``~/.spectrochempy``) is still created by the package."""
    import spectrochempy.application.application as scp_app

    if hasattr(scp_app, "_start_update_check"):
        scp_app._start_update_check = lambda: None


def sniff_spa(head: bytes, path: Path) -> bool:
    return path.suffix.lower() == ".spa" or head.startswith(b"Spectral Data File")


def read_spa(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    label = str(path)
    _need("spectrochempy", label, "Thermo OMNIC SPA")
    logging.getLogger("spectrochempy").setLevel(logging.ERROR)
    try:
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            _no_update_check()
            from spectrochempy.core.readers.read_omnic import read_spa as scp_read_spa

            d = scp_read_spa(str(path))
    except Exception as e:  # noqa: BLE001
        raise FormatError(f"{label}: the SPA reader cannot read this file ({_reader_error(e)})") from None
    if d is None:
        raise FormatError(f"{label}: the SPA reader found no spectrum")
    title = str(getattr(d, "title", "") or "").lower()
    xunits = str(getattr(d.x, "units", "") or "")
    if "cm" not in xunits:
        raise FormatError(f"{label}: SPA x axis in {xunits or 'unknown units'}, not wavenumbers")
    if "reflect" in title or "kubelka" in title:
        raise FormatError(f"{label}: SPA data are {title}: reflectance spectra are not supported "
                          "(export absorbance or transmittance)")
    unit = "transmittance" if "transmit" in title else "absorbance"
    tech, source = file_technique(technique, "raman" if "raman" in title else "ftir", label)
    x = np.asarray(d.x.data, dtype=np.float64)
    y = np.asarray(d.data, dtype=np.float64)
    y = y[0] if y.ndim == 2 else y
    if unit == "transmittance" and np.nanmax(y) <= 2.0:
        y = y * 100.0
    meta = {"source": label, "file": label, "technique_from": source, "vendor_format": "Thermo OMNIC SPA",
            "spa_title": str(getattr(d, "title", ""))}
    name = str(getattr(d, "name", "") or stem(label))
    return [(name, spectrum(label, x, y, tech, "counts" if tech == "raman" else unit, meta))]


# ----------------------------------------------------------------------------- WDF


def sniff_wdf(head: bytes, path: Path) -> bool:
    return head.startswith(b"WDF1") or path.suffix.lower() == ".wdf"


def read_wdf(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    label = str(path)
    wdf = _need("wdf", label, "Renishaw WDF")
    try:
        with _quiet(), wdf.Wdf(str(path)) as w:
            h = w.hdr
            xl = w.xlist()
            x = np.asarray(list(xl), dtype=np.float64)
            units = str(getattr(xl, "units", ""))
            ys = [np.asarray(w[i], dtype=np.float64) for i in range(int(h.nspectra))]
            title = str(h.title or "")
            laser = float(h.laser_wavenumber or 0)
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001
        raise FormatError(f"{label}: the WDF reader cannot read this file ({_reader_error(e)})") from None
    if "RamanShift" not in units:
        raise FormatError(f"{label}: WDF x axis in {units.split('.')[-1] or 'unknown units'}, not Raman shift")
    meta = {"source": label, "file": label, "technique_from": "file", "vendor_format": "Renishaw WDF",
            "title": title}
    if laser > 0:
        meta["laser_wavelength_nm"] = round(1e7 / laser, 3)
    n = len(ys)
    return [(stem(label) + (f" #{i + 1}" if n > 1 else ""),
             spectrum(f"{label}, spectrum {i + 1}" if n > 1 else label, x, y, "raman", "counts", meta))
            for i, y in enumerate(ys)]
