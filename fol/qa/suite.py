"""The instrument-variation suite: real reference spectra through physically parameterised instrument effects.

The library is imported from the real ENFSI ATR-FTIR records; the queries are made from
the *same real records* (mixed in absorbance, each scaled to a unit strongest band, so a
fraction is a share of the signal), then put through the effects of ``fol.qa.effects``
one at a time and all together at a ``moderate`` and a ``harsh`` setting, and analysed
by ``fol.identification.pipeline.Identifier`` exactly as ``fol identify`` does.

Raman: real cross-instrument comparisons (``raman_datasets``: Wasatch set 1 <-> set 3, SLoPP
half/half with entries named by material, every ordered pair of CHARISMA set-ups) beside the
peers (``peer_scores``), and a synthetic Raman suite (``raman_suite``: the Wasatch set 1 records
as library and query source through the Raman effects of ``fol.qa.effects``).

Seeds: ``DEV_SEED`` for tuning, ``EVAL_SEED`` for reporting (nothing is tuned on it).

Per condition (``run_condition``) the table row holds: pure top-1 (the most abundant
reported component, or the top hit when none is reported, is the substance),
reported-verdict accuracy on pure spectra (``identified`` as the substance), the
spurious-component rate on pure spectra (any other reported component), the
fentanyl-class alarm at 5 / 10 / 25 % of an analogue in a cutting agent, the false-alarm
rate on benign samples (cutting agents, adulterants and 50:50 pairs of cutting agents)
and their caution rate (no alarm, but ``possible_alarm_classes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fol.qa import effects as fx

DEV_SEED = 4242
EVAL_SEED = 2027
ALARM_CLASS = "fentanyl-analogue"
CUTS = ["lactose", "mannitol", "caffeine", "acetaminophen", "sucrose"]
BENIGN_PAIRS = ["lactose", "mannitol", "caffeine", "acetaminophen", "sucrose", "benzocaine", "lidocaine", "procaine"]
FRACTIONS = (0.05, 0.10, 0.25)
#: 50:50 two-agent bases of the ``two-agent base`` rows: neighbouring ``CUTS`` (each agent in two bases), a typical
#: street sample (an analogue in a mix of two cutting agents, e.g. caffeine + paracetamol)
TWO_AGENT_BASES = tuple((CUTS[i], CUTS[(i + 1) % len(CUTS)]) for i in range(len(CUTS)))
FINE = fx.fine_axis(560.0, 4000.0, 0.5)
OUT_RANGE = (600.0, 4000.0)
#: shares of signal are in units of the strongest band above this (the library grid starts at 650 cm-1)
NORM_FROM = 650.0

#: parameter ranges (docs/identification.md justifies each)
SETTINGS = {
    "moderate": dict(atr_p=(-0.5, 0.5), dispersion=(0.0, 0.1), resolution=(2.0, 8.0), offset=3.0, stretch=3e-4,
                     step=(1.0, 2.0, 4.0), vapour=0.02, co2=0.03, water=0.05, gain=(0.5, 1.5), scat_offset=0.05,
                     scat_slope=0.05, baseline=0.10, snr=(60.0, 500.0)),
    "harsh": dict(atr_p=(-1.2, 1.2), dispersion=(0.0, 0.25), resolution=(2.0, 16.0), offset=8.0, stretch=1e-3,
                  step=(1.0, 2.0, 4.0, 8.0), vapour=0.06, co2=0.10, water=0.25, gain=(0.3, 2.0), scat_offset=0.15,
                  scat_slope=0.15, baseline=0.30, snr=(20.0, 200.0)),
}
#: fixed-SNR rows (noise alone): where the physical limit of a 5 % component lies
FIXED_SNR = (15.0, 30.0, 60.0, 120.0)
for _v in FIXED_SNR:
    SETTINGS[f"snr{_v:g}"] = {**SETTINGS["harsh"], "snr": (_v, _v)}
#: the FTIR effects in the order they act on the light (``all``: every one of them)
EFFECTS = ("atr", "dispersion", "resolution", "calibration", "step", "vapour", "water", "scatter", "baseline",
           "noise")


def load_references(folder: Path, section) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Library name → (axis, absorbance scaled to max 1) of each real ENFSI record (read as ``fol`` imports it)."""
    from fol.io.formats import read_spectra_file

    by_file = {p.split(":", 1)[1]: nm for p, nm in zip(section.provenance, section.names)}
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        [(_, spec)] = read_spectra_file(path)
        name = by_file.get(path.name)
        if name is None:
            continue
        x, y = spec.wavenumber, np.asarray(spec.intensity, float)
        order = np.argsort(x)
        x, y = x[order], y[order]
        y = y - min(float(np.min(y)), 0.0)
        out[name] = (x, y / y.max())
    return out


def on_fine(refs: dict, names: dict[str, float]) -> np.ndarray:
    """The mixture (name → share of signal) on ``FINE``: cubic interpolation of each record (its edge values
    held beyond its range), each scaled to a unit strongest band on the library's range (from ``NORM_FROM``)."""
    from scipy.interpolate import CubicSpline

    y = np.zeros_like(FINE)
    for nm, f in names.items():
        x, a = refs[nm]
        s = np.clip(CubicSpline(x, a)(np.clip(FINE, x[0], x[-1])), 0.0, None)
        y += f * s / s[FINE >= NORM_FROM].max()
    return y


@dataclass
class Query:
    kind: str  # pure, mixture, benign
    truth: dict
    fraction: float | None
    x: np.ndarray
    y: np.ndarray


def apply_effects(y: np.ndarray, active: set[str], setting: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    """(axis, row) of one fine mixture row after the ``active`` effects, parameters drawn from ``setting``."""
    s, x = setting, FINE
    u = lambda r: rng.uniform(*r)
    peak = float(y.max())
    if "atr" in active:
        y = fx.atr_response(x, y, u(s["atr_p"]))
    if "dispersion" in active:
        y = fx.atr_dispersion(x, y, u(s["dispersion"]))
    if "vapour" in active:  # in the beam: broadened by the instrument with the sample
        water, co2 = fx.vapour_spectra(x)
        y = y + peak * (rng.uniform(-1, 1) * s["vapour"] * water + rng.uniform(-1, 1) * s["co2"] * co2)
    if "water" in active:
        y = y + peak * rng.uniform(0.0, s["water"]) * fx.liquid_water(x)
    if "resolution" in active:
        y = fx.resolution(x, y, u(s["resolution"]))
    if "calibration" in active:
        y = fx.calibration(x, y, rng.uniform(-1, 1) * s["offset"], rng.uniform(-1, 1) * s["stretch"])
    if "scatter" in active:
        y = fx.scatter(x, y, u(s["gain"]), rng.uniform(-1, 1) * s["scat_offset"], rng.uniform(0, 1) * s["scat_slope"])
    if "baseline" in active:
        y = y + float(y.max()) * rng.uniform(0, s["baseline"]) * fx.smooth_curve(x, rng)
    step = float(rng.choice(s["step"])) if "step" in active else 2.0
    xo, yo = fx.resample(x, y, OUT_RANGE[0], OUT_RANGE[1], step)
    if "noise" in active:
        lo, hi = np.log(s["snr"][0]), np.log(s["snr"][1])
        snr = float(np.exp(rng.uniform(lo, hi)))
        band = float(np.max(yo) - np.median(yo))
        # noise per exported point at the drawn SNR for a 2 cm-1 step: finer steps are noisier per point
        yo = fx.noise(yo, snr * np.sqrt(step / 2.0), rng, band)
    return xo, yo


def samples(section, refs: dict, repeats: int = 1) -> list[tuple[str, dict, float | None]]:
    """(kind, truth, analogue fraction) of every query of one condition."""
    names = [nm for nm in section.names if nm in refs]
    analogues = [nm for nm, c in zip(section.names, section.classes) if c == ALARM_CLASS and nm in refs]
    cuts = [c for c in CUTS if c in refs]
    out = [("pure", {nm: 1.0}, None) for nm in names]
    for f in FRACTIONS:
        for a in analogues:
            for c in cuts:
                out.append(("mixture", {a: f, c: 1.0 - f}, f))
    benign = [nm for nm, c in zip(section.names, section.classes) if c in ("cutting-agent", "adulterant") and nm in refs]
    pairs = [b for b in BENIGN_PAIRS if b in refs]
    for _ in range(repeats):
        out += [("benign", {nm: 1.0}, None) for nm in benign]
        out += [("benign", {a: 0.5, b: 0.5}, None) for i, a in enumerate(pairs) for b in pairs[i + 1:]]
    return out


def two_agent_samples(section, refs) -> list[tuple[str, dict, float | None]]:
    """(kind, truth, fraction) of the ``two-agent base`` rows: every analogue at each fraction in every base of
    ``TWO_AGENT_BASES`` (the rest of the signal shared equally by the two agents); no pure or benign queries."""
    analogues = [nm for nm, c in zip(section.names, section.classes) if c == ALARM_CLASS and nm in refs]
    bases = [(a, b) for a, b in TWO_AGENT_BASES if a in refs and b in refs]
    return [("mixture", {an: f, a: (1.0 - f) / 2, b: (1.0 - f) / 2}, f)
            for f in FRACTIONS for an in analogues for a, b in bases]


def make_queries(section, refs, active: set[str], setting: dict, rng, repeats: int = 1, kinds=None) -> list[Query]:
    out = []
    for kind, truth, f in (samples(section, refs, repeats) if kinds is None else kinds):
        x, y = apply_effects(on_fine(refs, truth), active, setting, rng)
        out.append(Query(kind, truth, f, x, y))
    return out


def analyse(identifier, queries: list[Query]) -> list[dict]:
    """Results in query order; queries sharing an axis are analysed as one batch."""
    from fol.spectrum import SpectrumBatch

    results: list[dict | None] = [None] * len(queries)
    groups: dict[tuple, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault((q.x.size, float(q.x[0]), float(q.x[-1])), []).append(i)
    for idx in groups.values():
        batch = SpectrumBatch(queries[idx[0]].x, np.stack([queries[i].y for i in idx]), "ftir", "absorbance")
        for i, r in zip(idx, identifier.analyse(batch, source="suite", entry="q")):
            results[i] = r
    return results  # type: ignore[return-value]


def score(section, queries: list[Query], results: list[dict]) -> dict:
    """The table row of one condition (counts: (k, n) pairs)."""
    cls_of = dict(zip(section.names, section.classes))
    row = {"top1": [0, 0], "verdict": [0, 0], "spurious": [0, 0], "false_alarm": [0, 0], "caution": [0, 0],
           "inconclusive_benign": [0, 0], **{f"alarm_{int(f * 100)}": [0, 0] for f in FRACTIONS},
           "failures": []}
    for q, r in zip(queries, results):
        names = [c["name"] for c in r["components"]]
        if q.kind == "pure":
            truth = next(iter(q.truth))
            top = names[0] if names else (r["hits"][0]["name"] if r["hits"] else None)
            row["top1"][0] += top == truth
            row["verdict"][0] += r["verdict"] == "identified" and names == [truth]
            bad = any(nm != truth for nm in names)
            row["spurious"][0] += bad
            for k in ("top1", "verdict", "spurious"):
                row[k][1] += 1
            if bad or top != truth:
                row["failures"].append(("pure", truth, r["verdict"], names))
        elif q.kind == "mixture":
            k = f"alarm_{int(round(q.fraction * 100))}"
            hit = ALARM_CLASS in r["alarm_classes"]
            row[k][0] += hit
            row[k][1] += 1
            if not hit:
                row["failures"].append((k, q.truth, r["verdict"], names, r.get("possible_alarm_classes")))
        else:
            row["false_alarm"][0] += bool(r["alarm"])
            row["false_alarm"][1] += 1
            caution = not r["alarm"] and bool(r.get("possible_alarm_classes"))
            row["caution"][0] += caution
            row["caution"][1] += 1
            row["inconclusive_benign"][0] += r["verdict"] == "inconclusive"
            row["inconclusive_benign"][1] += 1
            if r["alarm"] or caution:
                row["failures"].append(("benign", q.truth, r["verdict"], names, r.get("possible_alarm_classes")))
    del cls_of
    return row


def conditions() -> list[tuple[str, set[str], str]]:
    """(label, active effects, setting) of every row: none, each effect alone (harsh range), all moderate, all harsh."""
    rows = [("none", set(), "moderate")]
    rows += [(f"{e} (harsh)", {e} | ({"noise"} if False else set()), "harsh") for e in EFFECTS]
    rows += [(f"noise SNR {v:g} (only)", {"noise"}, f"snr{v:g}") for v in FIXED_SNR]
    rows += [("all, moderate", set(EFFECTS), "moderate"), ("all, harsh", set(EFFECTS), "harsh")]
    return rows


def two_agent_conditions() -> list[tuple[str, set[str], str]]:
    """The ``two-agent base`` rows (analogues in 50:50 two-agent bases only): none, all moderate, all harsh."""
    return [("two-agent base, none", set(), "moderate"), ("two-agent base, all moderate", set(EFFECTS), "moderate"),
            ("two-agent base, all harsh", set(EFFECTS), "harsh")]


def run(identifier, section, refs, seed: int, only: list[str] | None = None, repeats: int = 3,
        progress=None) -> list[tuple[str, dict]]:
    """Every condition's row (``only``: labels to run), seeded per condition; then the ``two-agent base`` rows,
    each with a stream of its own (``[seed, 300 + i]``), so that the other rows' draws are unchanged."""
    out = []
    rows = [(label, active, setting, [seed, i], None) for i, (label, active, setting) in enumerate(conditions())]
    two = two_agent_samples(section, refs)
    rows += [(label, active, setting, [seed, 300 + i], two)
             for i, (label, active, setting) in enumerate(two_agent_conditions())]
    for label, active, setting, stream, kinds in rows:
        if only and not any(o in label for o in only):
            continue
        rng = np.random.default_rng(stream)
        queries = make_queries(section, refs, active, SETTINGS[setting], rng, repeats, kinds)
        results = analyse(identifier, queries)
        row = score(section, queries, results)
        out.append((label, row))
        if progress:
            progress(label, row)
    return out


def pct(kn) -> str:
    k, n = kn
    return f"{100.0 * k / n:.1f}" if n else "n/a"


HEADER = ("| condition | pure top-1 | verdict right (pure) | spurious (pure) | alarm 5 % | alarm 10 % | alarm 25 % "
          "| false alarm | caution (benign) |")


def table_line(label: str, row: dict) -> str:
    cells = [row["top1"], row["verdict"], row["spurious"], row["alarm_5"], row["alarm_10"], row["alarm_25"],
             row["false_alarm"], row["caution"]]
    return f"| {label} | " + " | ".join(pct(c) for c in cells) + " |"


def calibration_data(model, section, refs, seed: int, rounds: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(component features ``ALL_FEATURES``, truly present 0/1) of every fitted component of the suite's
    queries on ``seed`` (every condition, ``rounds`` draws each), for fitting the FTIR confidence default.

    Present: the substance is in the sample, or, for an alarm-class substance, one of its class is.
    Refuses the evaluation seed.
    """
    from fol.identification.confidence import features
    from fol.spectrum import SpectrumBatch

    if seed == EVAL_SEED:
        raise ValueError(f"seed {EVAL_SEED} is the suite's evaluation seed; calibrate on a development seed")
    cls_of = dict(zip(section.names, section.classes))
    alarm_of = dict(zip(section.names, np.asarray(section.alarm).tolist()))
    x, y = [], []
    for r in range(rounds):
        for i, (label, active, setting) in enumerate(conditions()):
            rng = np.random.default_rng([seed, i, r])
            queries = make_queries(section, refs, active, SETTINGS[setting], rng)
            groups: dict[tuple, list[int]] = {}
            for k, q in enumerate(queries):
                groups.setdefault((q.x.size, float(q.x[0]), float(q.x[-1])), []).append(k)
            for idx in groups.values():
                batch = SpectrumBatch(queries[idx[0]].x, np.stack([queries[k].y for k in idx]), "ftir", "absorbance")
                raw, mask = model.prepare(batch)
                for k, fit in zip(idx, model.fit_many(raw, mask)):
                    truth = queries[k].truth
                    present = {cls_of[nm] for nm in truth}
                    for j, c in enumerate(fit.components):
                        nm = section.names[c.row]
                        x.append(features(c, fit, j == 0))
                        y.append(int(nm in truth or (alarm_of[nm] and cls_of[nm] in present)))
    return np.array(x), np.array(y)


def evidence(identifier, queries: list[Query]) -> list[dict]:
    """``Identifier.evidence`` (class alarm asked whatever the confidence) per query, in query order."""
    from fol.spectrum import SpectrumBatch

    out: list[dict | None] = [None] * len(queries)
    groups: dict[tuple, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault((q.x.size, float(q.x[0]), float(q.x[-1])), []).append(i)
    for idx in groups.values():
        batch = SpectrumBatch(queries[idx[0]].x, np.stack([queries[i].y for i in idx]), "ftir", "absorbance")
        for i, ev in zip(idx, identifier.evidence(batch, source="suite", entry="q", gate=None)):
            out[i] = ev
    return out  # type: ignore[return-value]


def policy_sweep(identifier, section, refs, seed: int, min_conf=np.round(np.arange(0.3, 0.991, 0.05), 2),
                 caution=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)) -> list[dict]:
    """Rates over every condition (pooled) per (min_confidence, caution_confidence) on a development seed."""
    from dataclasses import replace

    if seed == EVAL_SEED:
        raise ValueError(f"seed {EVAL_SEED} is the suite's evaluation seed; tune on a development seed")
    pol0 = identifier.settings("ftir")[0]
    rows = []
    for i, (label, active, setting) in enumerate(conditions()):
        rng = np.random.default_rng([seed, i])
        queries = make_queries(section, refs, active, SETTINGS[setting], rng)
        rows += list(zip(queries, evidence(identifier, queries)))
    out = []
    for t in min_conf:
        for c in caution:
            if c > t:
                continue
            pol = replace(pol0, min_confidence=float(t), caution_confidence=float(c))
            res = [identifier.decide_row(ev, pol) for _, ev in rows]
            row = score(section, [q for q, _ in rows], res)
            row.pop("failures")
            out.append({"min_confidence": float(t), "caution_confidence": float(c),
                        **{k: v[0] / v[1] if v[1] else 0.0 for k, v in row.items()}})
    return out


# ---------------------------------------------------------------------------------------------- real cross-instrument Raman


def _pearson_rows(lib: np.ndarray, q: np.ndarray) -> np.ndarray:
    a = lib - lib.mean(axis=1, keepdims=True)
    b = q - q.mean()
    den = np.linalg.norm(a, axis=1) * (np.linalg.norm(b) or 1.0)
    return np.divide(a @ b, den, out=np.zeros(len(a)), where=den > 0)


def peer_scores(grid, lib_raw: np.ndarray, x, y) -> dict[str, np.ndarray]:
    """Similarity of a query to every library row by the peers, on the grid points the query covers.

    ``raw Pearson``: correlation of the spectra as measured; ``AsLS + Pearson``: both
    baseline-corrected by asymmetric least squares (pybaselines ``asls``, lam 1e5, p 0.01)
    first; ``derivative``: correlation of Savitzky-Golay first derivatives (11 points,
    quadratic), as Open Specy's default processing does.
    """
    from pybaselines.whittaker import asls
    from scipy.signal import savgol_filter

    m = (grid >= x[0]) & (grid <= x[-1])
    g = grid[m]
    q = np.interp(g, x, y)
    lib = np.asarray(lib_raw, float)[:, m]

    def corrected(v):
        return v - asls(v, lam=1e5, p=0.01)[0]

    return {
        "raw Pearson": _pearson_rows(lib, q),
        "AsLS + Pearson": _pearson_rows(np.stack([corrected(r) for r in lib]), corrected(q)),
        "derivative": _pearson_rows(savgol_filter(lib, 11, 2, deriv=1, axis=1), savgol_filter(q, 11, 2, deriv=1)),
    }


def _two_column(path, workdir: Path) -> Path:
    """An ENLIGHTEN export (``key,value`` header, then a ``Pixel,...,Wavenumber,Processed`` table) as a
    two-column ``wavenumber,intensity`` CSV in ``workdir`` (same file name); other files unchanged.

    (The text importer of an earlier version read its *Pixel* column as the axis; ``fol.io.formats.enlighten`` reads it by header name now.)
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        return path
    lines = path.read_text(errors="replace").splitlines()
    head = next((i for i, ln in enumerate(lines) if ln.startswith("Pixel,") and "Wavenumber" in ln), None)
    if head is None:
        return path
    cols = lines[head].split(",")
    iw, ip = cols.index("Wavenumber"), cols.index("Processed")
    rows = []
    for ln in lines[head + 1:]:
        parts = ln.split(",")
        try:
            rows.append((float(parts[iw]), float(parts[ip])))
        except (ValueError, IndexError):
            continue
    folder = Path(workdir) / "enlighten"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / path.name
    out.write_text("wavenumber,intensity\n" + "".join(f"{w!r},{v!r}\n" for w, v in sorted(rows)))
    return out


def cross_instrument(lib_files, query_files, key, workdir: Path, name: str, entry_name=None) -> dict:
    """Library imported from ``lib_files`` (one instrument), queries ``query_files`` (another).

    ``key(file name)`` is the truth label (substance or class). ``entry_name(file name)``,
    when given, names each library entry (a name map given to the import, as a lab importing
    a collection organised by material would write): entries of one material are then
    measurements of one substance, reported once (``fol.search.substances``). Counts (right,
    total) for fol's top hit (``fol top-1``), fol's reported verdict (``identified`` with the
    right substance: one component, no caution), fol's abstentions (``no-match`` or
    ``inconclusive`` with nothing reported), its wrong verdicts (a reported component of
    another label) and each peer's top-1.
    """
    from fol.identification.pipeline import Identifier
    from fol.io.formats import read_spectra_file
    from fol.io.library import load_library
    from fol.libtools.tools import import_library

    lib_files = [_two_column(p, workdir) for p in lib_files]
    query_files = [_two_column(p, workdir) for p in query_files]
    out = Path(workdir) / f"{name}.h5"
    name_map = None
    if entry_name is not None:
        name_map = Path(workdir) / f"{name}-names.csv"
        name_map.write_text("name,catalogue_name\n" + "".join(f"{Path(p).stem},{entry_name(Path(p).name)}\n"
                                                              for p in lib_files))
    out.unlink(missing_ok=True)
    import_library([str(p) for p in lib_files], out, technique="raman", name=name, name_map=name_map)
    lib = load_library(out)
    sec = lib.section("raman")
    row_key = [key(p.split(":", 1)[1]) for p in sec.provenance]
    key_of = dict(zip(sec.names, row_key))
    labels = set(row_key)
    ident = Identifier(lib)
    counts: dict[str, list] = {}

    def add(k, ok):
        c = counts.setdefault(k, [0, 0])
        c[0] += bool(ok)
        c[1] += 1

    for path in query_files:
        truth = key(Path(path).name)
        if truth not in labels:
            continue
        [(_, spec)] = read_spectra_file(path, "raman")
        r = ident.analyse_spectrum(spec, source=str(path), entry="q")
        top = r["hits"][0]["name"] if r["hits"] else None
        add("fol top-1", key_of.get(top) == truth)
        comps = r["components"]
        add("fol verdict", r["verdict"] == "identified" and len(comps) == 1 and key_of.get(comps[0]["name"]) == truth)
        add("fol abstained", not comps and r["verdict"] in ("no-match", "inconclusive"))
        add("fol wrong", any(key_of.get(c["name"]) != truth for c in comps))
        order = np.argsort(spec.wavenumber)
        for peer, s in peer_scores(sec.grid, sec.raw, spec.wavenumber[order], spec.intensity[order]).items():
            add(peer, row_key[int(np.argmax(s))] == truth)
    return counts


def raman_datasets(real: Path) -> list[tuple[str, list, list, object, object]]:
    """(label, library files, query files, key, entry name) of the real cross-instrument Raman comparisons.

    Wasatch files are named by their substance (entry name: the file's, as imported);
    SLoPP files by material and sample (``Polyethylene12BlackPenLid``): the library's entries
    are named by the material, the collection's own organisation, so that two samples of one
    plastic are two measurements of one substance and not two substances.
    """
    import re

    out = []
    w = Path(real) / "raman_wasatch_enlighten"
    s1 = sorted(next(w.glob("set1*")).glob("*.csv")) if w.is_dir() else []
    s3 = sorted(next(w.glob("set3*")).glob("*.csv")) if w.is_dir() else []
    if s1 and s3:
        stem = lambda f: Path(f).stem.lower()
        out.append(("Wasatch set1 library, set3 queries", s1, s3, stem, None))
        out.append(("Wasatch set3 library, set1 queries", s3, s1, stem, None))
    sl = sorted((Path(real) / "raman_plastics_slopp").glob("*.txt"))
    if sl:
        cls = lambda f: re.match(r"[A-Za-z]+", Path(f).name).group(0)
        by: dict[str, list] = {}
        for f in sl:
            by.setdefault(cls(f), []).append(f)
        lib_f = [f for fs in by.values() for f in fs[0::2]]
        q_f = [f for fs in by.values() if len(fs) > 1 for f in fs[1::2]]
        out.append(("SLoPP plastics, half library / half queries (by class)", lib_f, q_f, cls, cls))
    return out + charisma_datasets(real)


#: CHARISMA reference materials by file-name prefix (``metadata.csv`` column ``sample``): polystyrene,
#: silicon, natural and synthetic calcite (one material: one substance in the library)
CHARISMA_MATERIALS = (("PST", "polystyrene"), ("Pol_", "polystyrene"), ("Sil", "silicon"), ("Si_", "silicon"),
                      ("nCAL", "calcite"), ("sCAL", "calcite"))


def charisma_material(file_name: str) -> str | None:
    """The material of a CHARISMA file (by its name's prefix), or None (neon lamps, luminescence standards, ...)."""
    name = Path(file_name).name
    return next((m for prefix, m in CHARISMA_MATERIALS if name.startswith(prefix)), None)


def charisma_datasets(real: Path) -> list[tuple[str, list, list, object, object]]:
    """Every ordered pair of CHARISMA set-ups (provider, instrument, laser: one folder each) as
    (label, library files, query files, key, entry name): library from one set-up, queries from
    another; labelled by whether the laser differs. Set-ups with fewer than two materials are left out."""
    folder = Path(real) / "raman_multi_instrument_charisma" / "datasets2"
    setups = {}
    for d in sorted(p for p in folder.glob("*") if p.is_dir()):
        files = sorted(f for f in d.glob("*.txt") if charisma_material(f.name))
        if len({charisma_material(f.name) for f in files}) >= 2:
            setups[d.name] = files
    laser = lambda name: name.rsplit("_", 1)[-1][-3:]
    out = []
    for a, fa in setups.items():
        for b, fb in setups.items():
            if a != b:
                kind = "same laser" if laser(a) == laser(b) else "other laser"
                out.append((f"CHARISMA, library and queries from different set-ups, {kind}", fa, fb,
                            charisma_material, charisma_material))
    return out


# ---------------------------------------------------------------------------------------------- synthetic Raman suite

#: Raman: the library instrument (Wasatch WP-785XS, 785 nm) and its line width (FWHM, cm-1; an assumption:
#: the data carry no resolution, 8 cm-1 is typical of compact 785 nm spectrometers of its class)
RAMAN_LIB_LASER = 785.0
RAMAN_LIB_RESOLUTION = 8.0
#: benign 50:50 pairs (genuine two-component mixtures that must be reported as two)
RAMAN_PAIRS = ["acetaminophen", "caffeine", "lactose", "sucrose", "glucose", "Sodium Bicarbonate", "calcium carbonate",
               "Ibuprofen"]
RAMAN_SETTINGS = {
    "moderate": dict(laser=(785.0,), fluor=(0.0, 2.0), etalon=(0.0, 0.02), period=(5.0, 40.0), cosmic=(0, 2), cosmic_width=3,
                     offset=2.0, resolution=(6.0, 10.0), vendor=0.0, snr=(100.0, 1000.0)),
    "harsh": dict(laser=(532.0, 1064.0), fluor=(0.0, 10.0), etalon=(0.0, 0.05), period=(5.0, 40.0), cosmic=(0, 5), cosmic_width=3,
                  offset=6.0, resolution=(6.0, 16.0), vendor=1.0, snr=(30.0, 300.0)),
}
RAMAN_EFFECTS = ("excitation", "fluorescence", "resolution", "calibration", "etalon", "noise", "cosmic", "vendor")
RAMAN_FINE = fx.fine_axis(150.0, 2450.0, 0.5)


def raman_references(files, workdir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name (file stem, as imported) → (axis, counts scaled to max 1) of real Raman files."""
    from fol.io.formats import read_spectra_file

    out = {}
    for p in files:
        [(_, spec)] = read_spectra_file(_two_column(p, workdir), "raman")
        order = np.argsort(spec.wavenumber)
        x, y = spec.wavenumber[order], np.asarray(spec.intensity, float)[order]
        y = y - min(float(np.min(y)), 0.0)
        out[Path(p).stem] = (x, y / (y.max() or 1.0))
    return out


def raman_query(refs, truth: dict, active: set[str], s: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    """(axis, counts) of one Raman query: the real records mixed (share of signal, each scaled to a unit
    strongest band) on ``RAMAN_FINE`` within the range every record covers, through the ``active`` effects
    in the order light meets them, exported every 1 cm-1."""
    lo = max(max(refs[n][0][0] for n in truth), RAMAN_FINE[0])
    hi = min(min(refs[n][0][-1] for n in truth), RAMAN_FINE[-1])
    x = RAMAN_FINE[(RAMAN_FINE >= lo) & (RAMAN_FINE <= hi)]
    y = np.zeros_like(x)
    for n, f in truth.items():
        rx, ry = refs[n]
        v = np.interp(x, rx, ry)
        y += f * v / (v.max() or 1.0)
    u = lambda r: rng.uniform(*r)  # noqa: E731
    if "excitation" in active:
        y = fx.raman_excitation(x, y, RAMAN_LIB_LASER, float(rng.choice(s["laser"])))
    band = float(y.max())
    if "fluorescence" in active:
        y = fx.fluorescence(x, y, u(s["fluor"]), str(rng.choice(["exp", "hump", "slope"])), rng)
    if "resolution" in active:
        y = fx.resolution(x, y, u(s["resolution"]), own=RAMAN_LIB_RESOLUTION)
    if "calibration" in active:
        y = fx.calibration(x, y, rng.uniform(-1, 1) * s["offset"], 0.0)
    if "etalon" in active:
        y = fx.etalon(x, y, u(s["etalon"]), u(s["period"]), rng)
    xo, yo = fx.resample(x, y, float(np.ceil(x[0])), float(np.floor(x[-1])), 1.0)
    if "noise" in active:  # shot noise: the background's photons add to the noise of the bands
        snr = float(np.exp(rng.uniform(np.log(s["snr"][0]), np.log(s["snr"][1]))))
        sigma = band / snr * np.sqrt(np.maximum(yo, 0.0) / band + 0.05)
        yo = yo + rng.normal(0.0, 1.0, yo.shape) * sigma
    if "cosmic" in active:
        yo = fx.cosmic(yo, int(rng.integers(s["cosmic"][0], s["cosmic"][1] + 1)), rng, max_width=s["cosmic_width"])
    if "vendor" in active and rng.uniform() < s["vendor"]:
        yo = fx.vendor_processed(xo, yo)
    return xo, yo * 1000.0


def raman_conditions() -> list[tuple[str, set[str], str]]:
    rows = [("none", set(), "moderate")]
    rows += [(f"{e} (harsh)", {e}, "harsh") for e in RAMAN_EFFECTS]
    rows += [("all, moderate", set(RAMAN_EFFECTS), "moderate"), ("all, harsh", set(RAMAN_EFFECTS), "harsh")]
    return rows


def raman_suite(lib_files, workdir: Path, seed: int, only=None, progress=None) -> list[tuple[str, dict]]:
    """The synthetic Raman rows: library imported from ``lib_files`` (one real instrument), queries made from
    the same real records through ``fol.qa.effects``'s Raman effects. Per row: pure top-1, verdict right,
    spurious components (pure), 50:50 pairs of ``RAMAN_PAIRS`` reported with both (and nothing else), and
    each peer's top-1 on the pure queries (``peer_scores``, same run)."""
    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library
    from fol.libtools.tools import import_library
    from fol.spectrum import Spectrum

    out_lib = Path(workdir) / "raman-suite.h5"
    out_lib.unlink(missing_ok=True)
    import_library([str(_two_column(p, workdir)) for p in lib_files], out_lib, technique="raman", name="raman-suite")
    lib = load_library(out_lib)
    sec = lib.section("raman")
    refs = raman_references(lib_files, workdir)
    by_file = {Path(p.split(":", 1)[1]).stem: nm for p, nm in zip(sec.provenance, sec.names)}
    pairs = [p for p in RAMAN_PAIRS if p in refs]
    ident = Identifier(lib)
    rows = []
    for i, (label, active, setting) in enumerate(raman_conditions()):
        if only and not any(o in label for o in only):
            continue
        rng = np.random.default_rng([seed, 100 + i])
        row: dict = {k: [0, 0] for k in ("top1", "verdict", "spurious", "pairs", "raw Pearson", "AsLS + Pearson",
                                        "derivative")}
        samples = [({f: 1.0}, "pure") for f in refs] + [({a: 0.5, b: 0.5}, "pair")
                                                        for j, a in enumerate(pairs) for b in pairs[j + 1:]]
        for truth, kind in samples:
            x, y = raman_query(refs, truth, active, RAMAN_SETTINGS[setting], rng)
            r = ident.analyse_spectrum(Spectrum(x, y, "raman", "counts"), source="suite", entry="q")
            names = [c["name"] for c in r["components"]]
            want = {by_file[f] for f in truth}
            if kind == "pure":
                (t,) = want
                top = names[0] if names else (r["hits"][0]["name"] if r["hits"] else None)
                for k, ok in (("top1", top == t), ("verdict", r["verdict"] == "identified" and names == [t]),
                              ("spurious", any(n != t for n in names))):
                    row[k][0] += bool(ok)
                    row[k][1] += 1
                for peer, sc in peer_scores(sec.grid, sec.raw, x, y).items():
                    row[peer][0] += sec.names[int(np.argmax(sc))] == t
                    row[peer][1] += 1
            else:
                row["pairs"][0] += set(names) == want
                row["pairs"][1] += 1
        rows.append((label, row))
        if progress:
            progress(label, row)
    return rows


RAMAN_HEADER = ("| condition | pure top-1 | verdict right (pure) | spurious (pure) | 50:50 pairs reported as both "
                "| raw Pearson | AsLS + Pearson | derivative |")


def raman_line(label: str, row: dict) -> str:
    keys = ("top1", "verdict", "spurious", "pairs", "raw Pearson", "AsLS + Pearson", "derivative")
    return f"| {label} | " + " | ".join(pct(row[k]) for k in keys) + " |"
