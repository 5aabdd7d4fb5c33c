"""Replay recordings through the pipeline: streaming, one result per spectrum, in order.

``replay`` reads every entry and every row of stacked entries chunk by chunk (memory
is bounded by the chunk size, not the file size), analyses each chunk as one batch,
hands each result to ``sink`` in input order and keeps a running ``Summary``. A
corrupt entry is reported (an error result and a line on stderr) and skipped; it
never aborts the run.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .catalogue import Catalogue, load_catalogue
from .decide import error_result
from .errors import FolError


@dataclass
class Summary:
    n: int = 0
    verdicts: Counter = field(default_factory=Counter)
    alarms: int = 0
    errors: int = 0
    labelled: int = 0
    pure: int = 0
    top1_correct: int = 0
    alarm_tp: int = 0
    alarm_fn: int = 0
    alarm_fp: int = 0
    alarm_tn: int = 0

    def add(self, result: dict, expected: dict | None, catalogue: Catalogue) -> None:
        self.n += 1
        self.verdicts[result["verdict"]] += 1
        self.alarms += bool(result["alarm"])
        self.errors += "error" in result
        if expected is None:
            return
        self.labelled += 1
        truth = {catalogue.resolve(k) or k for k in expected}
        should_alarm = any(n in catalogue and catalogue[n].alarm for n in truth)
        if should_alarm:
            self.alarm_tp += bool(result["alarm"])
            self.alarm_fn += not result["alarm"]
        else:
            self.alarm_fp += bool(result["alarm"])
            self.alarm_tn += not result["alarm"]
        if len(truth) == 1:
            self.pure += 1
            top = result["components"][0]["name"] if result["components"] else None
            self.top1_correct += top in truth

    def lines(self) -> list[str]:
        out = [f"spectra: {self.n}  " + "  ".join(f"{k}: {v}" for k, v in sorted(self.verdicts.items())),
               f"alarms: {self.alarms}  errors: {self.errors}"]
        if self.labelled:
            pos, neg = self.alarm_tp + self.alarm_fn, self.alarm_fp + self.alarm_tn
            sens = f"{self.alarm_tp / pos:.1%} ({self.alarm_tp}/{pos})" if pos else "n/a"
            spec = f"{self.alarm_tn / neg:.1%} ({self.alarm_tn}/{neg})" if neg else "n/a"
            out.append(f"labelled: {self.labelled}  alarm sensitivity: {sens}  specificity: {spec}")
            if self.pure:
                out.append(f"top-1 accuracy on single-substance samples: "
                           f"{self.top1_correct / self.pure:.1%} ({self.top1_correct}/{self.pure})")
        return out


class Progress:
    """A one-line progress report on stderr (rate and ETA), only on a terminal."""

    def __init__(self, total: int | None, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.enabled = stream.isatty()
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.5 or (self.total and self.done >= self.total)):
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            if self.total:
                eta = (self.total - self.done) / rate if rate else 0
                msg = f"\r{self.done}/{self.total} spectra  {rate:,.0f}/s  ETA {eta:,.0f} s "
            else:
                msg = f"\r{self.done} spectra  {rate:,.0f}/s "
            self.stream.write(msg)
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def replay(paths: Iterable[str], identifier, sink: Callable[[dict], None], *, chunk_rows: int = 2048,
           catalogue: Catalogue | None = None, progress: bool = True) -> Summary:
    from .recording import Recording

    catalogue = catalogue or load_catalogue()
    summary = Summary()
    paths = list(paths)
    recs = []
    total = 0
    for p in paths:
        try:
            rec = Recording(p)
        except FolError as e:
            print(f"fol: error: {e} (skipped)", file=sys.stderr)
            res = error_result(str(e), source=str(p), entry="", index=0, technique="", library_ref=identifier.library_ref)
            sink(res)
            summary.add(res, None, catalogue)
            continue
        recs.append((p, rec))
        total += sum(e.n_rows for e in rec.entries)
    bar = Progress(total) if progress else None
    for p, rec in recs:
        with rec:
            for info in rec.entries:
                done = 0  # rows of this entry already emitted
                try:
                    for chunk in rec.iter_chunks(chunk_rows, entries=[info]):
                        results = identifier.analyse(chunk.batch, source=str(p), entry=info.name,
                                                     start_index=chunk.start)
                        for i, res in enumerate(results):
                            sink(res)
                            summary.add(res, chunk.expected[i] if chunk.expected else None, catalogue)
                        done = chunk.start + len(results)
                        if bar:
                            bar.update(len(results))
                except FolError as e:  # a corrupt entry: report, emit error results for its rows, go on
                    print(f"fol: error: {e} (rest of entry skipped)", file=sys.stderr)
                    for i in range(done, max(info.n_rows, done + 1)):
                        res = error_result(str(e), source=str(p), entry=info.name, index=i,
                                           technique=info.technique, library_ref=identifier.library_ref)
                        sink(res)
                        summary.add(res, None, catalogue)
                    if bar:
                        bar.update(info.n_rows - done)
    if bar:
        bar.close()
    return summary
