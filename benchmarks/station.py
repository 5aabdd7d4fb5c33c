"""Station speed: page load, verdict latency after the spectrum, History search over 100,000 rows.

    python benchmarks/station.py [--rows 100000] [--db /tmp/fol-bench-station.sqlite] [--measurements 5]

1. A case database of ``--rows`` generated measurements (realistic case/item numbers,
   dates over two years, 1-3 components from the shipped library's names, ~8 % alarms;
   every row inserted through ``CaseStore.add_measurement``, so hashes and audit chain are
   real; made once and reused). History searches (the queries the History page sends):
   best and worst of 20 runs each, in process.
2. ``fol station`` as a subprocess on that database with the simulated analyzer (``--simulate``,
   time scale 0.02): wall time of GET for the main pages from a client (best / median of 20).
3. Verdict latency: measurements through the HTTP API, polling the job every 5 ms; from the
   moment the job leaves ``integrating`` (the instrument returned its spectrum) to the
   result page received (recording + analysis + indexing + page render). The first
   measurement after start (cold caches) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(db: Path, n: int) -> None:
    from fol.cases.store import CaseStore
    from fol.io.library import load_library

    lib = load_library(None).section("raman")
    names = list(zip(lib.names, lib.classes, lib.alarm.tolist()))
    alarms = [x for x in names if x[2]]
    harmless = [x for x in names if not x[2]]
    rng = random.Random(1)
    store = CaseStore(db)
    store._con().execute("PRAGMA synchronous=OFF")  # generation only: the station itself runs FULL
    have = store.count()
    t0 = time.perf_counter()
    base = 1_700_000_000
    for i in range(have, n):
        k = rng.choice((1, 1, 2, 2, 3))
        comps = rng.sample(harmless, k)
        if rng.random() < 0.08:
            comps[-1] = rng.choice(alarms)
        fr = sorted((rng.random() for _ in comps), reverse=True)
        total = sum(fr)
        result = {"format_version": 1, "technique": "raman", "verdict": "mixture" if k > 1 else "identified",
                  "alarm": any(c[2] for c in comps), "alarm_classes": sorted({c[1] for c in comps if c[2]}),
                  "components": [{"name": c[0], "class": c[1], "score": 0.9, "alarm": bool(c[2]),
                                  "fraction": round(f / total, 3), "confidence": 0.95} for c, f in zip(comps, fr)],
                  "hits": [], "quality": {"snr": 80.0, "saturated": False, "fluorescence": 0.3, "flags": []},
                  "library": {"name": "fol-reference", "sha256": "0" * 64}, "fol_version": "bench"}
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(base + i * 630))
        case = {"case_no": f"{2023 + i // 40000}-{(i // 7) % 9000:04d}", "item_no": str(i % 7 + 1),
                "operator": rng.choice(("J. Smit", "A. Berg", "K. Ivanova", "M. Rossi")), "description": "powder",
                "notes": ""}
        store.add_measurement(case=case, recording=f"gen/{i}.h5", entry="scan_0000", spectrum_sha256="1" * 64,
                              recording_sha256="2" * 64, instrument={"serial": "GEN"}, settings={},
                              result=result, created_utc=when)
    if n > have:
        print(f"generated {n - have} rows in {time.perf_counter() - t0:.1f} s")
    store.close()


def bench_search(db: Path) -> list[tuple[str, float, float, int]]:
    from fol.cases.store import CaseStore

    store = CaseStore(db)
    queries = {
        "newest 200 (no filter)": {},
        "case prefix 2024-01": {"case_no": "2024-01"},
        "case exact 2024-0123": {"case_no": "2024-0123"},
        "item 3 of cases 2024-0*": {"case_no": "2024-0", "item_no": "3"},
        "item 3 of case 2025-05*": {"case_no": "2025-05", "item_no": "3"},
        "item 3, any case": {"item_no": "3"},
        "substance fentanyl": {"substance": "fentanyl"},
        "substance prefix 'co'": {"substance": "co"},
        "alarm only": {"alarm": True},
        "no alarm, one month": {"alarm": False, "date_from": "2024-03-01", "date_to": "2024-03-31"},
        "date range one week": {"date_from": "2024-06-01", "date_to": "2024-06-07"},
        "substance + alarm + year": {"substance": "carfentanil", "alarm": True, "date_from": "2024-01-01",
                                     "date_to": "2024-12-31"},
        "no hit (case ZZZ)": {"case_no": "ZZZ"},
    }
    out = []
    for label, q in queries.items():
        times = []
        for _ in range(20):
            t = time.perf_counter()
            rows = store.search(limit=200, **q)
            times.append(time.perf_counter() - t)
        out.append((label, min(times) * 1000, max(times) * 1000, len(rows)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base):
        self.base, self.cookie = base, ""

    def get(self, path, data=None, accept="text/html"):
        req = urllib.request.Request(self.base + path, data=data, headers={"Accept": accept, "Cookie": self.cookie})
        with urllib.request.urlopen(req, timeout=60) as r:
            for h in r.headers.get_all("Set-Cookie") or []:
                self.cookie = h.split(";", 1)[0]
            return r.read()


def bench_station(db: Path, measurements: int) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "fol", "station", "--simulate", "fentanyl:0.2,mannitol:0.8",
                             "--time-scale", "0.02", "--db", str(db), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "serving on" in proc.stdout.readline()
        c = Client(f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                c.get("/")
                break
            except OSError:
                time.sleep(0.1)
        token = re.search(rb'name="csrf" value="([^"]+)"', c.get("/")).group(1).decode()
        lat, cold = [], None
        mid = None
        for i in range(measurements + 1):
            body = urllib.parse.urlencode({"csrf": token, "case_no": "BENCH-1", "item_no": str(i), "operator": "bench",
                                           "integration_ms": "1000", "averages": "3", "laser_mw": "100"}).encode()
            job = json.loads(c.get("/measure", body, accept="application/json"))["job"]
            t_spec = None
            while True:
                j = json.loads(c.get(f"/api/job/{job}", accept="application/json"))
                if t_spec is None and j["phase"] in ("recording", "analysing", "done"):
                    t_spec = time.perf_counter()
                if j["phase"] in ("done", "failed"):
                    break
                time.sleep(0.005)
            assert j["phase"] == "done", j
            mid = j["measurement_id"]
            c.get(f"/m/{mid}")
            dt = time.perf_counter() - t_spec
            if i == 0:
                cold = (dt, j["timings_s"])
            else:
                lat.append((dt, j["timings_s"]))
        print(f"\nverdict latency (spectrum returned -> result page received), {measurements} measurements:")
        print(f"  cold (first after start): {cold[0] * 1000:.0f} ms  server phases {cold[1]}")
        ds = sorted(x[0] for x in lat)
        print(f"  warm: median {statistics.median(ds) * 1000:.0f} ms, worst {ds[-1] * 1000:.0f} ms;"
              f" server phases of the last: {lat[-1][1]}")
        print("\npage load (GET, client wall time, best / median of 20):")
        for path in ("/", "/history", f"/history?case=2024-01", "/history?substance=fentanyl&alarm=yes",
                     f"/m/{mid}", f"/m/{mid}/plot.svg", f"/m/{mid}/report.html", f"/m/{mid}/report.pdf"):
            ts = []
            for _ in range(20):
                t = time.perf_counter()
                c.get(path)
                ts.append(time.perf_counter() - t)
            print(f"  {path:<42} {min(ts) * 1000:7.1f} ms  {statistics.median(ts) * 1000:7.1f} ms")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--db", default="/tmp/fol-bench-station.sqlite")
    ap.add_argument("--measurements", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    db = Path(args.db)
    generate(db, args.rows)
    print(f"\nHistory search over {args.rows:,} rows (CaseStore.search, limit 200): best / worst of 20")
    for label, best, worst, n in bench_search(db):
        print(f"  {label:<28} {best:7.2f} ms  {worst:7.2f} ms   ({n} rows)")
    bench_station(db, args.measurements)


if __name__ == "__main__":
    main()
