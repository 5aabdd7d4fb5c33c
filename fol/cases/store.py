"""SQLite case store: measurements, their components, and an append-only hash-chained audit log.

One database file in WAL mode (``synchronous=FULL``: a committed measurement survives a
kill or a power cut), opened through the standard library's ``sqlite3``. The schema is
versioned: ``schema_migrations`` lists the migrations applied; ``MIGRATIONS`` holds them
in order and ``CaseStore`` applies the missing ones, each in one transaction, on open.

Rows are never updated or deleted: triggers refuse it, and the audit log makes it
detectable when someone goes around them (``verify``). Every measurement row carries
``row_sha256`` (canonical JSON of its columns and its components); its insertion writes
one audit row naming that hash; each audit row's ``sha256`` covers its own fields and
the previous row's ``sha256``. A correction of the case fields is a new measurement row
(same spectrum and result) whose ``corrects`` points at the row it corrects; searches
show only rows nothing corrects.

Opening refuses, in one line naming the file, what is not a case database of this
schema (a directory, a FIFO, an empty or foreign file, another program's tables, a
future or malformed schema version) before anything is written; a writable open also
needs a writable file and directory, the write lock, and a passing ``quick_check``.
Every SQLite error, a row fol could not have written (wrong storage class, text that is
not UTF-8, a huge value, JSON that is not an object) and runaway nesting become a
one-line ``StoreError``; ``verify`` reports such rows as problems (docs/station.md).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

import numpy as np

from fol.errors import FolError
from fol.paths import special_kind

SCHEMA_VERSION = 1
GENESIS = "0" * 64
#: case fields of a measurement, in display order
CASE_FIELDS = ("case_no", "item_no", "operator", "description", "notes")
#: columns covered by ``row_sha256`` (all but ``id`` itself is covered: id is included too)
ROW_COLUMNS = ("id", "created_utc", *CASE_FIELDS, "recording", "entry", "spectrum_sha256", "recording_sha256",
               "technique", "instrument_json", "settings_json", "verdict", "alarm", "alarm_classes", "substances",
               "quality_flags", "library_name", "library_sha256", "fol_version", "result_json", "corrects", "correction_reason")


class StoreError(FolError):
    """The case database cannot be opened, or an operation on it was refused."""


#: the tables a case database of ``SCHEMA_VERSION`` has
TABLES = ("schema_migrations", "measurements", "components", "audit")
#: longest text a column may hold (the station accepts 64 KiB request bodies); the JSON result may be longer
MAX_TEXT = 1 << 20
MAX_JSON = 16 << 20
#: how long a writer waits for another program's write lock before giving up (seconds)
BUSY_TIMEOUT_S = 30.0
_SQLITE_MAGIC = b"SQLite format 3\0"
#: column -> SQLite storage classes allowed (every other column is NOT NULL TEXT)
_M_TYPES = {"id": ("integer",), "alarm": ("integer",), "corrects": ("integer", "null"),
            "correction_reason": ("text", "null")}
_C_TYPES = {"measurement_id": ("integer",), "position": ("integer",), "name": ("text",), "class": ("text",),
            "fraction": ("real", "integer", "null"), "confidence": ("real", "integer", "null")}
_A_TYPES = {"seq": ("integer",), "measurement_id": ("integer", "null")}
_JSON_COLUMNS = ("instrument_json", "settings_json", "result_json")


class _NotText(Exception):
    """A TEXT value whose bytes are not UTF-8 (raised by the connections' text factory)."""


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotText(len(data)) from None


def _kind(value) -> str:
    """The SQLite storage class of a value as Python's sqlite3 returns it."""
    return {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob"}.get(type(value), "?")


def _row_problem(row: dict, types: dict) -> str:
    """Why a row read from the database is not one fol wrote ('' if it could be)."""
    for key, value in row.items():
        allowed = types.get(key, ("text",))
        kind = _kind(value)
        if kind not in allowed:
            return f"column {key} holds {'a ' + kind if kind != 'integer' else 'an integer'} value, not {allowed[0]}"
        limit = MAX_JSON if key in _JSON_COLUMNS else MAX_TEXT
        if kind == "text" and len(value) > limit:
            return f"column {key} holds {len(value)} characters (at most {limit})"
    return ""


def _load_json(text: str, what: str):
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"{what} is not JSON ({str(e)[:80]})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _sqlite_problem(e: BaseException) -> str:
    """A one-line reason for an SQLite error (its message is short and names no data)."""
    text = str(e).split("\n", 1)[0][:200]
    if "database is locked" in text or "database table is locked" in text:
        return "locked by another program (it holds a write lock); try again when it is done"
    if "file is not a database" in text:
        return "not a case database (not an SQLite database, or its header is damaged)"
    if "malformed" in text or "disk I/O error" in text:
        return f"damaged ({text})"
    if "readonly" in text or "read-only" in text:
        return f"read-only ({text})"
    return text


def _guarded(method):
    """Turn SQLite errors, undecodable text and runaway nesting into a one-line ``StoreError`` naming the file."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {_sqlite_problem(e)}") from None
        except _NotText as e:
            raise StoreError(f"{self.path}: a text value of {e.args[0]} bytes is not UTF-8: the database was "
                             "edited outside fol (fol cases verify names the row)") from None
        except RecursionError:
            raise StoreError(f"{self.path}: a value is nested too deeply to read") from None

    return call


_V1 = """
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    created_utc TEXT NOT NULL,
    case_no TEXT NOT NULL COLLATE NOCASE,
    item_no TEXT NOT NULL COLLATE NOCASE,
    operator TEXT NOT NULL,
    description TEXT NOT NULL,
    notes TEXT NOT NULL,
    recording TEXT NOT NULL,
    entry TEXT NOT NULL,
    spectrum_sha256 TEXT NOT NULL,
    recording_sha256 TEXT NOT NULL,
    technique TEXT NOT NULL,
    instrument_json TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    verdict TEXT NOT NULL,
    alarm INTEGER NOT NULL,
    alarm_classes TEXT NOT NULL,
    substances TEXT NOT NULL,
    quality_flags TEXT NOT NULL,
    library_name TEXT NOT NULL,
    library_sha256 TEXT NOT NULL,
    fol_version TEXT NOT NULL,
    result_json TEXT NOT NULL,
    corrects INTEGER REFERENCES measurements(id),
    correction_reason TEXT,
    row_sha256 TEXT NOT NULL
);
CREATE TABLE components (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    class TEXT NOT NULL,
    fraction REAL,
    confidence REAL,
    PRIMARY KEY (measurement_id, position)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at_utc TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    measurement_id INTEGER,
    detail_json TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX m_created ON measurements(created_utc);
CREATE INDEX m_case ON measurements(case_no, created_utc);
CREATE INDEX m_item ON measurements(item_no, case_no);
CREATE INDEX m_alarm ON measurements(alarm, created_utc);
CREATE INDEX m_corrects ON measurements(corrects);
CREATE INDEX m_recording ON measurements(recording);
CREATE INDEX c_name ON components(name, measurement_id);
CREATE TRIGGER m_no_update BEFORE UPDATE ON measurements BEGIN SELECT RAISE(ABORT, 'measurements are append-only'); END;
CREATE TRIGGER m_no_delete BEFORE DELETE ON measurements BEGIN SELECT RAISE(ABORT, 'measurements are append-only'); END;
CREATE TRIGGER c_no_update BEFORE UPDATE ON components BEGIN SELECT RAISE(ABORT, 'components are append-only'); END;
CREATE TRIGGER c_no_delete BEFORE DELETE ON components BEGIN SELECT RAISE(ABORT, 'components are append-only'); END;
CREATE TRIGGER a_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER a_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

#: (version, name, SQL) in order; a new schema version appends one (never edits an old one)
MIGRATIONS: tuple[tuple[int, str, str], ...] = ((1, "measurements, components, audit log", _V1),)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(obj) -> str:
    """Canonical JSON (sorted keys, no spaces, UTF-8): what the hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spectrum_sha256(wavenumber, intensity) -> str:
    """SHA-256 of a raw spectrum: ``b"fol-spectrum-v1\\0"``, then the axis and the intensities
    as little-endian float64 (the values as the instrument returned them)."""
    h = hashlib.sha256(b"fol-spectrum-v1\0")
    h.update(np.ascontiguousarray(wavenumber, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(intensity, dtype="<f8").tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def row_hash(row: dict, components: list[dict]) -> str:
    body = {k: row[k] for k in ROW_COLUMNS}
    body["components"] = [[c["name"], c["class"], c["fraction"], c["confidence"]] for c in components]
    return sha256_text(canonical(body))


def audit_hash(prev: str, seq: int, at_utc: str, actor: str, action: str, measurement_id, detail_json: str) -> str:
    return sha256_text(prev + canonical([seq, at_utc, actor, action, measurement_id, detail_json]))


def _components_of(result: dict) -> list[dict]:
    out = []
    for c in result.get("components") or []:
        frac = c.get("fraction")
        conf = c.get("confidence")
        out.append({"name": str(c["name"]), "class": str(c.get("class", "")),
                    "fraction": None if frac is None else float(frac),
                    "confidence": None if conf is None else float(conf)})
    return out


class CaseStore:
    """The case database at ``path`` (created, and migrated to ``SCHEMA_VERSION``, on open).

    Safe to use from several threads (one connection per thread). ``evidence_dir`` is
    where the evidence recordings live; ``recording`` paths in rows are relative to it.
    """

    def __init__(self, path: str | Path, *, evidence_dir: str | Path | None = None, readonly: bool = False,
                 busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = str(path)
        self.evidence_dir = Path(evidence_dir) if evidence_dir else Path(self.path).with_suffix("").parent / (
            Path(self.path).stem + "-evidence")
        self.readonly = readonly
        self.busy_timeout_s = float(busy_timeout_s)
        self._local = threading.local()
        self._lock = threading.Lock()
        exists = self._check_file()
        if not readonly:
            self._check_writable(exists)
        try:
            con = self._con()
            if readonly:
                self._check_schema(con)
            else:
                self._migrate(con)  # checks first: a database that is not a case database is never written
                con.execute("PRAGMA journal_mode=WAL")
        except StoreError:
            self.close()
            raise
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"{self.path}: {_sqlite_problem(e)}") from None
        except _NotText:
            self.close()
            raise StoreError(f"{self.path}: not a case database (a schema name is not UTF-8)") from None

    # -- connections and schema

    def _check_file(self) -> bool:
        """Refuse what is not a regular SQLite file before SQLite sees it (a FIFO would block it); True if it exists."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if os.path.islink(self.path):
                raise StoreError(f"{self.path}: a symbolic link to a missing file ({os.readlink(self.path)[:200]}): "
                                 + ("no such case database" if self.readonly else
                                    "refusing to create a case database there")) from None
            if self.readonly:
                raise StoreError(f"{self.path}: no such case database") from None
            return False
        except OSError as e:
            what = "too many levels of symbolic links" if e.errno == errno.ELOOP else (e.strerror or str(e))
            raise StoreError(f"{self.path}: cannot open the case database ({what})") from None
        kind = special_kind(st.st_mode)
        if kind == "a directory":
            raise StoreError(f"{self.path}: is a directory, not a case database")
        if kind:
            raise StoreError(f"{self.path}: is {kind}, not a regular file, not a case database")
        if st.st_size == 0:
            raise StoreError(f"{self.path}: an empty file, not a case database (remove it to start a new one)")
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise StoreError(f"{self.path}: cannot read the case database ({e.strerror or e})") from None
        if head != _SQLITE_MAGIC or st.st_size < 512:
            raise StoreError(f"{self.path}: not a case database (not an SQLite database file)")
        return True

    def _check_writable(self, exists: bool) -> None:
        """The station writes: a read-only file or directory is refused now, not at the first measurement."""
        folder = os.path.dirname(os.path.realpath(self.path)) or "."
        if exists and not os.access(self.path, os.W_OK):
            raise StoreError(f"{self.path}: read-only: the station must write to its case database "
                             "(fol cases can read it)")
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(f"{self.path}: in a read-only directory ({folder}): the station must create the "
                             "database's -wal and -shm files beside it (fol cases can read it)")

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                if self.readonly:
                    folder = os.path.dirname(os.path.realpath(self.path)) or "."
                    flags = "mode=ro"
                    if not os.access(folder, os.W_OK | os.X_OK) and not os.path.exists(self.path + "-shm"):
                        # nobody can write here (a writer needs its -wal/-shm beside the file): a snapshot
                        if os.path.exists(self.path + "-wal"):
                            raise StoreError(f"{self.path}: in a read-only directory with an uncheckpointed -wal "
                                             "file: copy the three files to a writable directory to read them")
                        flags = "immutable=1"
                    con = sqlite3.connect(f"file:{quote(self.path)}?{flags}", uri=True, timeout=self.busy_timeout_s,
                                          isolation_level=None)
                else:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                    con = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
                con.text_factory = _text
                if not self.readonly:
                    con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path}: {_sqlite_problem(e)}") from None
            con.row_factory = sqlite3.Row
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _schema(self, con: sqlite3.Connection) -> tuple[set[str], list[int]]:
        """The tables and the applied schema versions, checked to be a case database's (or an empty file's)."""
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "schema_migrations" not in tables:
            names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(f"{self.path}: not a case database (an SQLite database with the tables {names[:200]})")
        if not tables:
            return tables, []
        rows = con.execute("SELECT version, typeof(version) FROM schema_migrations LIMIT 1000").fetchall()
        bad = [r[0] for r in rows if r[1] != "integer"]
        if bad:
            raise StoreError(f"{self.path}: schema version {str(bad[0])[:40]!r} is not a number: not a case database")
        versions = sorted(r[0] for r in rows)
        if versions and versions[-1] > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {versions[-1]} is newer than this fol "
                             f"(knows {SCHEMA_VERSION}); upgrade fol")
        if versions and versions != list(range(1, versions[-1] + 1)):
            raise StoreError(f"{self.path}: schema versions {versions[:10]} are not the migrations fol applies "
                             f"(1 to {SCHEMA_VERSION} in order): not a case database")
        if versions:
            missing = [t for t in TABLES if t not in tables]
            if missing:
                raise StoreError(f"{self.path}: tables missing ({', '.join(missing)}) although schema version "
                                 f"{versions[-1]} is recorded: not a complete case database")
        elif tables - {"schema_migrations"}:
            raise StoreError(f"{self.path}: not a case database (no schema version recorded, but the tables "
                             f"{', '.join(sorted(tables - {'schema_migrations'}))[:200]})")
        return tables, versions

    def _check_schema(self, con: sqlite3.Connection) -> None:
        """Read-only use: the database must be a case database of this fol's schema, as it is."""
        _, versions = self._schema(con)
        if not versions:
            raise StoreError(f"{self.path}: not a case database (no case tables)")
        if versions[-1] < SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {versions[-1]} is older than this fol's "
                             f"({SCHEMA_VERSION}); open it once with fol station to migrate it")

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Check the schema and the file's integrity (``PRAGMA quick_check``), then apply the missing
        migrations, in one write transaction (which also shows, within the busy timeout, that no other
        program holds the write lock)."""
        con.execute("BEGIN IMMEDIATE")
        try:
            _, versions = self._schema(con)
            if versions:  # the station is about to write into it: a damaged file is refused, not written to
                check = con.execute("PRAGMA quick_check(1)").fetchone()[0]
                if check != "ok":
                    first = " ".join(str(check).split())[:200]
                    raise StoreError(f"{self.path}: damaged (SQLite integrity check: {first}): restore it from a "
                                     "backup (fol cases verify reads what is left)")
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                        "name TEXT NOT NULL, applied_utc TEXT NOT NULL)")
            for version, name, sql in MIGRATIONS:
                if version in versions:
                    continue
                for stmt in sql.split(";\n"):
                    if stmt.strip():
                        con.execute(stmt)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, utc_now()))
                if version == 1:
                    self._append_audit(con, "fol", "store-created", None, {"schema_version": SCHEMA_VERSION})
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @_guarded
    def schema_version(self) -> int:
        row = self._con().execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # -- writing

    def _append_audit(self, con, actor: str, action: str, measurement_id, detail: dict) -> int:
        last = con.execute("SELECT seq, sha256 FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        at = utc_now()
        detail_json = canonical(detail)
        digest = audit_hash(prev, seq, at, actor, action, measurement_id, detail_json)
        con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, at, actor, action, measurement_id, detail_json, prev, digest))
        return seq

    @_guarded
    def audit(self, actor: str, action: str, detail: dict, measurement_id: int | None = None) -> int:
        """Append an event (an export, a login ...) to the audit log; returns its sequence number."""
        con = self._con()
        with self._lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                seq = self._append_audit(con, actor, action, measurement_id, detail)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return seq

    @_guarded
    def add_measurement(self, *, case: dict, recording: str, entry: str, spectrum_sha256: str,
                        recording_sha256: str, instrument: dict, settings: dict, result: dict,
                        actor: str | None = None, action: str = "measurement", corrects: int | None = None,
                        correction_reason: str | None = None, created_utc: str | None = None) -> int:
        """Insert one measurement, its components and its audit row in one transaction; returns its id."""
        comps = _components_of(result)
        row = {
            "created_utc": created_utc or utc_now(),
            **{k: str(case.get(k) or "").strip() for k in CASE_FIELDS},
            "recording": str(recording), "entry": str(entry), "spectrum_sha256": spectrum_sha256,
            "recording_sha256": recording_sha256, "technique": str(result.get("technique", "")),
            "instrument_json": canonical(instrument), "settings_json": canonical(settings),
            "verdict": str(result.get("verdict", "")), "alarm": int(bool(result.get("alarm"))),
            "alarm_classes": ",".join(result.get("alarm_classes") or []),
            "substances": ",".join(c["name"] for c in comps),
            "quality_flags": ",".join((result.get("quality") or {}).get("flags") or []),
            "library_name": str((result.get("library") or {}).get("name", "")),
            "library_sha256": str((result.get("library") or {}).get("sha256", "")),
            "fol_version": str(result.get("fol_version", "")), "result_json": canonical(result),
            "corrects": corrects, "correction_reason": correction_reason,
        }
        con = self._con()
        with self._lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                last = con.execute("SELECT MAX(id) FROM measurements").fetchone()[0]
                row["id"] = (last or 0) + 1
                row["row_sha256"] = row_hash(row, comps)
                cols = (*ROW_COLUMNS, "row_sha256")
                con.execute(f"INSERT INTO measurements ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                            [row[c] for c in cols])
                con.executemany("INSERT INTO components VALUES (?, ?, ?, ?, ?, ?)",
                                [(row["id"], i, c["name"], c["class"], c["fraction"], c["confidence"])
                                 for i, c in enumerate(comps)])
                self._append_audit(con, actor or row["operator"] or "station", action, row["id"],
                                   {"row_sha256": row["row_sha256"], "case_no": row["case_no"],
                                    "item_no": row["item_no"], "spectrum_sha256": spectrum_sha256,
                                    **({"corrects": corrects} if corrects is not None else {})})
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return row["id"]

    @_guarded
    def correct(self, measurement_id: int, changes: dict, *, reason: str, actor: str) -> int:
        """A correction of the case fields: a new row pointing at the current one; returns its id."""
        if not str(reason or "").strip():
            raise StoreError("a correction needs a reason")
        old = self.get(measurement_id)
        if old is None:
            raise StoreError(f"{self.path}: no measurement {measurement_id}")
        if old["corrected_by"]:
            raise StoreError(f"measurement {measurement_id} was already corrected by {old['corrected_by']}: "
                             "correct that one")
        case = {k: changes.get(k, old[k]) for k in CASE_FIELDS}
        return self.add_measurement(case=case, recording=old["recording"], entry=old["entry"],
                                    spectrum_sha256=old["spectrum_sha256"], recording_sha256=old["recording_sha256"],
                                    instrument=old["instrument"], settings=old["settings"], result=old["result"],
                                    actor=actor, action="correction", corrects=measurement_id,
                                    correction_reason=str(reason).strip(), created_utc=old["created_utc"])

    # -- reading

    def _bad_row(self, what: str, problem: str) -> StoreError:
        return StoreError(f"{self.path}: {what}: {problem}: not a row fol wrote (fol cases verify lists every "
                          "problem)")

    def _decode(self, row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        d = dict(row)
        problem = _row_problem(d, {**_M_TYPES, "corrected_by": ("integer", "null")})
        if problem:
            raise self._bad_row(f"measurement {d.get('id')}", problem)
        try:
            for key, name in (("instrument_json", "instrument"), ("settings_json", "settings"),
                              ("result_json", "result")):
                d[name] = _load_json(d.pop(key), f"column {key}")
        except ValueError as e:
            raise self._bad_row(f"measurement {d['id']}", str(e)) from None
        return d

    @_guarded
    def get(self, measurement_id: int) -> dict | None:
        """One measurement (with ``result``, ``instrument``, ``settings`` decoded, ``corrected_by``)."""
        con = self._con()
        row = con.execute("SELECT m.*, (SELECT MAX(c.id) FROM measurements c WHERE c.corrects = m.id) AS corrected_by "
                          "FROM measurements m WHERE m.id = ?", (int(measurement_id),)).fetchone()
        return self._decode(row)

    @_guarded
    def history(self, measurement_id: int) -> list[dict]:
        """The measurement and every row in its correction chain, oldest first."""
        con = self._con()
        cur, seen = self.get(measurement_id), set()
        while cur is not None and cur["corrects"] is not None and cur["id"] not in seen:
            seen.add(cur["id"])
            cur = self.get(cur["corrects"])
        rows: list[dict] = []
        while cur is not None and all(r["id"] != cur["id"] for r in rows):
            rows.append(cur)
            nxt = con.execute("SELECT id FROM measurements WHERE corrects = ?", (cur["id"],)).fetchone()
            cur = self.get(nxt[0]) if nxt else None
        return rows

    @_guarded
    def search(self, *, case_no: str = "", item_no: str = "", date_from: str = "", date_to: str = "",
               substance: str = "", alarm: bool | None = None, limit: int = 200, offset: int = 0,
               include_corrected: bool = False) -> list[dict]:
        """Current measurements matching every filter given, newest first (summary columns only).

        ``case_no``/``substance``: case-insensitive prefix; ``item_no``: case-insensitive exact; dates ``YYYY-MM-DD``
        (inclusive, UTC); ``alarm`` True/False or None for both.
        """
        where, args = [], []
        if case_no:
            where.append("m.case_no LIKE ? ESCAPE '\\'")
            args.append(_prefix(case_no))
        if item_no:  # alone, an item number is not selective: walk the date index instead ("+")
            where.append("m.item_no = ?" if case_no else "+m.item_no = ?")
            args.append(str(item_no).strip())
        if date_from:
            where.append("m.created_utc >= ?")
            args.append(_day(date_from))
        if date_to:
            where.append("m.created_utc < ?")
            args.append(_day(date_to, next_day=True))
        if alarm is not None:
            where.append("m.alarm = ?")
            args.append(int(bool(alarm)))
        if substance:
            where.append("m.id IN (SELECT measurement_id FROM components WHERE name LIKE ? ESCAPE '\\')")
            args.append(_prefix(substance))
        if not include_corrected:
            where.append("NOT EXISTS (SELECT 1 FROM measurements c WHERE c.corrects = m.id)")
        sql = ("SELECT m.id, m.created_utc, m.case_no, m.item_no, m.operator, m.description, m.verdict, m.alarm, "
               "m.alarm_classes, m.substances, m.quality_flags, m.library_name, m.corrects FROM measurements m"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY m.created_utc DESC, m.id DESC LIMIT ? OFFSET ?")
        rows = [dict(r) for r in self._con().execute(sql, (*args, int(limit), int(offset)))]
        for r in rows:
            problem = _row_problem(r, _M_TYPES)
            if problem:
                raise self._bad_row(f"measurement {r['id']}", problem)
        return rows

    @_guarded
    def count(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    @_guarded
    def case_measurements(self, case_no: str) -> list[dict]:
        """Every current measurement of one case (exact case number), oldest first, decoded."""
        ids = [r[0] for r in self._con().execute(
            "SELECT id FROM measurements m WHERE m.case_no = ? AND NOT EXISTS "
            "(SELECT 1 FROM measurements c WHERE c.corrects = m.id) ORDER BY created_utc, id", (case_no,))]
        return [self.get(i) for i in ids]

    @_guarded
    def indexed_recordings(self) -> set[str]:
        return {r[0] for r in self._con().execute("SELECT DISTINCT recording FROM measurements")}

    @_guarded
    def audit_rows(self, measurement_id: int | None = None) -> list[dict]:
        con = self._con()
        if measurement_id is None:
            rows = con.execute("SELECT * FROM audit ORDER BY seq")
        else:
            rows = con.execute("SELECT * FROM audit WHERE measurement_id = ? ORDER BY seq", (int(measurement_id),))
        out = [dict(r) for r in rows]
        for a in out:
            problem = _row_problem(a, _A_TYPES)
            if problem:
                raise self._bad_row(f"audit row {a['seq']}", problem)
        return out

    # -- verification

    @_guarded
    def verify(self, *, check_evidence: bool = True) -> list[str]:
        """Every problem found (empty: the database is intact).

        Checks the audit chain (contiguous sequence numbers, each hash over its fields
        and its predecessor's), every measurement's ``row_sha256`` against its columns
        and components and against the audit row that recorded it, that every recorded
        measurement still exists, and (``check_evidence``) that every evidence file the
        database names exists with its recorded SHA-256 and every evidence file in the
        evidence directory is in the database.
        """
        con = self._con()
        problems: list[str] = []
        try:
            integrity = con.execute("PRAGMA quick_check").fetchone()[0]
        except (sqlite3.DatabaseError, _NotText) as e:
            return [f"{self.path}: database unreadable ({_sqlite_problem(e)})"]
        if integrity != "ok":
            problems.append(f"sqlite integrity check: {' '.join(str(integrity).split())[:300]}")
        prev, expected_seq = GENESIS, 1
        recorded: dict[int, str] = {}
        for a, problem in self._checked_rows(con, "audit", _A_TYPES, "seq"):
            if problem:
                problems.append(f"audit log: {problem}")
                continue
            if a["seq"] != expected_seq:
                problems.append(f"audit log: row {expected_seq} missing (next is {a['seq']})")
            if a["prev_sha256"] != prev:
                problems.append(f"audit log: row {a['seq']} does not chain to the row before it")
            digest = audit_hash(a["prev_sha256"], a["seq"], a["at_utc"], a["actor"], a["action"],
                                a["measurement_id"], a["detail_json"])
            if digest != a["sha256"]:
                problems.append(f"audit log: row {a['seq']} was altered (hash mismatch)")
            if a["action"] in ("measurement", "correction", "recovered") and a["measurement_id"] is not None:
                try:
                    recorded[int(a["measurement_id"])] = str(_load_json(a["detail_json"], "details")
                                                            .get("row_sha256", ""))
                except ValueError:
                    problems.append(f"audit log: row {a['seq']} has unreadable details")
            prev, expected_seq = a["sha256"], a["seq"] + 1
        if expected_seq == 1:
            problems.append("audit log is empty (the store-created row is missing)")
        comps: dict[int, list[dict]] = {}
        broken: set[int] = set()
        for c, problem in self._checked_rows(con, "components", _C_TYPES, "measurement_id, position"):
            if problem:
                problems.append(f"components: {problem}")
                mid = c.get("measurement_id") if c else None
                if isinstance(mid, int):
                    broken.add(mid)
                continue
            comps.setdefault(c["measurement_id"], []).append(c)
        seen = set()
        for d, problem in self._checked_rows(con, "measurements", _M_TYPES, "id", (*ROW_COLUMNS, "row_sha256")):
            if problem:
                problems.append(f"measurements: {problem}")
                if d and isinstance(d.get("id"), int):
                    seen.add(d["id"])
                continue
            seen.add(d["id"])
            if d["id"] in broken or row_hash(d, comps.get(d["id"], [])) != d["row_sha256"]:
                problems.append(f"measurement {d['id']}: row or components altered (hash mismatch)")
            if d["id"] not in recorded:
                problems.append(f"measurement {d['id']}: not in the audit log (inserted behind its back)")
            elif recorded[d["id"]] != d["row_sha256"]:
                problems.append(f"measurement {d['id']}: differs from what the audit log recorded")
        for mid in sorted(set(recorded) - seen):
            problems.append(f"measurement {mid}: recorded in the audit log but deleted")
        for mid in sorted(set(comps) - seen):
            problems.append(f"components of a missing measurement {mid}")
        if check_evidence:
            problems += self._verify_evidence(con)
        return problems

    def _checked_rows(self, con, table: str, types: dict, order: str, columns: tuple[str, ...] | None = None):
        """``(row, '')`` for each row of ``table`` fol could have written, else ``(partial row, problem)``.

        Values are fetched as bytes with their storage class, so a text that is not UTF-8,
        a blob or a number where text belongs, or a huge value is one problem naming the
        row, not an exception that ends the check.
        """
        if columns is None:
            columns = tuple(r[1] for r in con.execute(f"PRAGMA table_info({table})"))
        key = order.split(",")[0].strip()
        select = ", ".join(f"CASE WHEN length({c}) > {MAX_JSON if c in _JSON_COLUMNS else MAX_TEXT} THEN NULL "
                           f"ELSE {c} END, typeof({c}), length({c})" for c in columns)  # huge values stay in the file
        cur = con.cursor()
        cur.row_factory = None
        saved = con.text_factory
        con.text_factory = bytes
        try:
            for raw in cur.execute(f"SELECT {select} FROM {table} ORDER BY {order}"):
                row, problem = {}, ""
                for i, col in enumerate(columns):
                    value, kind, size = raw[3 * i: 3 * i + 3]
                    kind = kind.decode("ascii")
                    limit = MAX_JSON if col in _JSON_COLUMNS else MAX_TEXT
                    if kind not in types.get(col, ("text",)):
                        problem = problem or f"column {col} holds a {kind} value, not {types.get(col, ('text',))[0]}"
                    elif kind == "text" and (size or 0) > limit:
                        problem = problem or f"column {col} holds {size} characters (at most {limit})"
                    elif kind == "text":
                        try:
                            value = value.decode("utf-8")
                        except UnicodeDecodeError:
                            problem = problem or f"column {col} holds text that is not UTF-8"
                    row[col] = value if kind != "blob" else None
                if problem:
                    ident = row.get(key)
                    yield row, f"row {ident if isinstance(ident, int) else '?'}: {problem}"
                else:
                    yield row, ""
        finally:
            con.text_factory = saved

    def _verify_evidence(self, con) -> list[str]:
        out = []
        named = {}
        for r, problem in self._checked_rows(con, "measurements", _M_TYPES, "id", ("id", "recording",
                                                                                  "recording_sha256")):
            if not problem:  # a broken row is already reported
                named.setdefault(r["recording"], (r["id"], r["recording_sha256"]))
        for rec, (mid, digest) in sorted(named.items()):
            path = self.evidence_dir / rec
            if not path.is_file():
                out.append(f"measurement {mid}: evidence file {path} is missing")
            elif file_sha256(path) != digest:
                out.append(f"measurement {mid}: evidence file {path} was altered (SHA-256 mismatch)")
        for path in unindexed(self.evidence_dir, set(named)):
            out.append(f"evidence file {path} is not in the database (run the station to index it)")
        return out


def evidence_files(evidence_dir: Path) -> Iterable[Path]:
    if not evidence_dir.is_dir():
        return []
    return sorted(p for p in evidence_dir.rglob("*.h5") if p.is_file())


def unindexed(evidence_dir: Path, indexed: set[str]) -> list[Path]:
    """Evidence files under ``evidence_dir`` that no measurement names."""
    return [p for p in evidence_files(evidence_dir) if p.relative_to(evidence_dir).as_posix() not in indexed]


def _prefix(text: str) -> str:
    t = str(text).strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return t + "%"


def _day(text: str, next_day: bool = False) -> str:
    try:
        d = datetime.strptime(str(text).strip()[:10], "%Y-%m-%d")
    except ValueError:
        raise StoreError(f"date {text!r} is not YYYY-MM-DD") from None
    if next_day:
        d += timedelta(days=1)
    return d.strftime("%Y-%m-%dT00:00:00")


def fsync_dir(path: str | Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
