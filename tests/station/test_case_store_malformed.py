"""Malformed case databases: each one refused in one line naming the file, in bounded time and memory.

Every case builds a broken ``cases.sqlite`` (or something that is not one); a forked child
(``builders.run_bounded``: timeout, memory limit) opens it with ``CaseStore`` -- writable, as
``fol station`` does, and read-only, as ``fol cases`` does -- and uses it: ``verify``, then
``search``, ``get``, ``history`` and ``audit_rows`` of every row. The only acceptable
outcomes: a ``StoreError`` whose message is one line, starts with the path and is short, or
(for the cases listed in ``OPENS``) a store that opens and reports the problem. A hang, any
other exception, or the memory limit is a failure; and the file must be byte-for-byte what
it was (a refused database is never "repaired", migrated or checkpointed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest

from builders import run_bounded

from fol.cases.store import CaseStore, StoreError
from fol.cli import main

CASE_TIMEOUT_S = 30
#: the uid the cases run as when the tests run as root (root ignores file permissions)
NOBODY = 65534


def _result(i: int) -> dict:
    return {"format_version": 1, "verdict": "mixture", "alarm": i % 2 == 0, "technique": "raman",
            "alarm_classes": ["fentanyl-analogue"] if i % 2 == 0 else [],
            "components": [{"name": "mannitol", "class": "cutting-agent", "fraction": 0.8, "confidence": 0.99}],
            "hits": [], "quality": {"snr": 50.0, "flags": []}, "library": {"name": "lib", "sha256": "ab" * 32},
            "fol_version": "test"}


def good(path: Path, n: int = 3) -> str:
    with CaseStore(path) as store:
        for i in range(n):
            store.add_measurement(case={"case_no": "2026-0412", "item_no": str(i), "operator": "J. Smit",
                                        "description": "white powder", "notes": ""},
                                  recording=f"r{i}.h5", entry="scan_0000", spectrum_sha256="11" * 32,
                                  recording_sha256="22" * 32, instrument={"serial": "SIM1"},
                                  settings={"integration_ms": 100.0}, result=_result(i))
    return str(path)


def _use(path: str, readonly: bool, as_uid: int | None) -> tuple[str, str]:
    """Open and use the store; ("StoreError", message) | ("ok", verify's problems) | ("crash", traceback)."""
    if as_uid is not None:
        os.setgid(as_uid)
        os.setuid(as_uid)
    try:
        with CaseStore(path, readonly=readonly, busy_timeout_s=1.0) as store:
            problems = store.verify(check_evidence=False)
            rows = store.search(limit=1000, include_corrected=True)
            for r in rows:
                store.get(r["id"])
                store.history(r["id"])
            store.audit_rows()
            store.count()
            for problem in problems:  # each problem verify reports is one bounded line
                if "\n" in problem or len(problem) > 600:
                    return "crash", f"verify reported an unbounded problem: {problem[:2000]!r}"
            return "ok", " | ".join(problems)[:500]
    except StoreError as e:
        return "StoreError", str(e)
    except BaseException as e:  # noqa: BLE001 - the test reports it
        return "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"


def outcome(path: str, readonly: bool, as_uid: int | None = None) -> tuple[str, str]:
    return run_bounded(_use, path, readonly, as_uid, timeout_s=CASE_TIMEOUT_S)


def _fingerprint(path: str) -> tuple:
    """What must not change: the bytes of the file and of its -wal, or what kind of thing it is.

    A reader of a WAL database may create an empty ``-wal`` (and a ``-shm`` index) beside it,
    as SQLite's readers do: an empty -wal holds nothing, so it counts as no -wal.
    """
    out = []
    for p in (path, path + "-wal", path + "-journal"):
        try:
            st = os.lstat(p)
        except OSError:
            out.append(None)
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(None if p != path and st.st_size == 0 else
                       ("file", st.st_mode, hashlib.sha256(Path(p).read_bytes()).hexdigest()))
        elif stat.S_ISLNK(st.st_mode):
            out.append(("link", os.readlink(p)))
        else:
            out.append((stat.S_IFMT(st.st_mode), st.st_mode))
    return tuple(out)


# --------------------------------------------------------------------------- the table: name -> builder(tmp)


def _bytes(data: bytes):
    def build(tmp):
        (tmp / "c.sqlite").write_bytes(data)
        return str(tmp / "c.sqlite")
    return build


def _truncated(at):
    def build(tmp):
        path = good(tmp / "c.sqlite", n=30)
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            fh.truncate(at if at >= 1 else int(size * at))
        return path
    return build


def _flips(lo: int, hi: int | None, seed: int, n: int = 16):
    def build(tmp):
        path = good(tmp / "c.sqlite", n=30)
        data = bytearray(Path(path).read_bytes())
        rng = np.random.default_rng(seed)
        for at in rng.integers(lo, hi or len(data), size=n):
            data[at] ^= 1 << int(rng.integers(0, 8))
        Path(path).write_bytes(bytes(data))
        return path
    return build


def _sql(*statements, drop_triggers=True, n=3):
    """A good store edited behind its back with the sqlite3 shell's powers."""
    def build(tmp):
        path = good(tmp / "c.sqlite", n=n)
        con = sqlite3.connect(path)
        if drop_triggers:
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
                con.execute(f"DROP TRIGGER {name}")
        for s in statements:
            con.execute(s)
        con.commit()
        con.close()
        return path
    return build


def _other_schema(tmp):
    path = tmp / "c.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    con.execute("INSERT INTO contacts VALUES ('a', '1')")
    con.commit()
    con.close()
    return str(path)


def _fol_tables_no_migrations(tmp):
    return _sql("DROP TABLE schema_migrations")(tmp)


def _dir(tmp):
    (tmp / "c.sqlite").mkdir()
    return str(tmp / "c.sqlite")


def _fifo(tmp):
    os.mkfifo(tmp / "c.sqlite")
    return str(tmp / "c.sqlite")


def _link_to(target_builder):
    def build(tmp):
        (tmp / "t").mkdir()
        target = target_builder(tmp / "t")
        os.symlink(target, tmp / "link.sqlite")
        return str(tmp / "link.sqlite")
    return build


def _dangling(tmp):
    os.symlink(tmp / "nowhere.sqlite", tmp / "link.sqlite")
    return str(tmp / "link.sqlite")


def _loop(tmp):
    os.symlink(tmp / "b.sqlite", tmp / "a.sqlite")
    os.symlink(tmp / "a.sqlite", tmp / "b.sqlite")
    return str(tmp / "a.sqlite")


def _row(**columns):
    """A measurement row (id 4) inserted behind the store's back, with ``columns`` as SQL expressions."""
    base = {"id": "4", "created_utc": "'2026-05-01T10:00:00.000000Z'", "case_no": "'2026-0412'", "item_no": "'9'",
            "operator": "'x'", "description": "''", "notes": "''", "recording": "'r.h5'", "entry": "'e'",
            "spectrum_sha256": "'11'", "recording_sha256": "'22'", "technique": "'raman'",
            "instrument_json": "'{}'", "settings_json": "'{}'", "verdict": "'mixture'", "alarm": "0",
            "alarm_classes": "''", "substances": "''", "quality_flags": "''", "library_name": "''",
            "library_sha256": "''", "fol_version": "''", "result_json": "'{\"verdict\": \"mixture\"}'",
            "row_sha256": "'00'"}
    base.update(columns)
    return _sql(f"INSERT INTO measurements ({','.join(base)}) VALUES ({','.join(base.values())})",
                drop_triggers=False)


def _nested(depth):
    return "'" + "[" * depth + "]" * depth + "'"


CASES = {
    "empty file": _bytes(b""),
    "truncated at 50 bytes": _truncated(50),
    "truncated at 100 bytes": _truncated(100),
    "truncated at 4096 bytes": _truncated(4096),
    "truncated at 50%": _truncated(0.5),
    "truncated by 1 byte": lambda tmp: _truncated(os.path.getsize(good(tmp / "x.sqlite", n=30)) - 1)(tmp),
    "random bytes 4 KiB": _bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    "random bytes 1 MiB": _bytes(np.random.default_rng(2).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()),
    "SQLite magic then junk": _bytes(b"SQLite format 3\0" + bytes(np.random.default_rng(3).integers(
        0, 256, 8192, dtype=np.uint8))),
    "text file": _bytes(b"case_no,item_no\n2026-0412,1\n"),
    "bit flips in the header 1": _flips(16, 100, 1, n=4),
    "bit flips in the header 2": _flips(16, 100, 2, n=4),
    "bit flips in the pages 1": _flips(100, None, 3),
    "bit flips in the pages 2": _flips(100, None, 4),
    "bit flips in the pages 3": _flips(4096, None, 5, n=64),
    "another schema": _other_schema,
    "fol tables without schema_migrations": _fol_tables_no_migrations,
    "schema_migrations only": _sql("DROP TABLE audit", "DROP TABLE components", "DROP TABLE measurements"),
    "future schema version": _sql("INSERT INTO schema_migrations VALUES (99, 'future', 'x')", drop_triggers=False),
    "schema version 0": _sql("DELETE FROM schema_migrations", "INSERT INTO schema_migrations VALUES (0, 'z', 'x')"),
    "schema version as text": _sql("DROP TABLE schema_migrations",
                                   "CREATE TABLE schema_migrations (version TEXT, name TEXT, applied_utc TEXT)",
                                   "INSERT INTO schema_migrations VALUES ('one', 'z', 'x')"),
    "a directory": _dir,
    "a FIFO": _fifo,
    "symlink to a FIFO": _link_to(_fifo),
    "symlink to a directory": _link_to(_dir),
    "dangling symlink": _dangling,
    "symlink loop": _loop,
    "case_no as a blob": _row(case_no="X'00ff'"),
    "alarm as text": _row(alarm="'yes'"),
    "created_utc as a number": _row(created_utc="1.5"),
    "result_json as a blob": _row(result_json="X'7b7d'"),
    "case_no not UTF-8": _row(case_no="CAST(X'ff' || randomblob(200000) AS TEXT)"),
    "notes not UTF-8": _row(notes="CAST(X'c328' AS TEXT)"),
    "huge blob in substances": _row(substances="randomblob(64 * 1024 * 1024)"),
    "huge text in case_no": _row(case_no="printf('%.*c', 64 * 1024 * 1024, 'x')"),
    "result_json not JSON": _row(result_json="'{verdict'"),
    "result_json not an object": _row(result_json="'[1, 2]'"),
    "result_json deeply nested": _row(result_json=_nested(200_000)),
    "component fraction as text": _sql("INSERT INTO components VALUES (1, 5, 'x', 'y', 'a lot', 0.5)",
                                       drop_triggers=False),
    "component name as a blob": _sql("INSERT INTO components VALUES (1, 5, X'ff00', 'y', 0.1, 0.5)",
                                     drop_triggers=False),
    "audit detail as a blob": _sql("INSERT INTO audit VALUES (99, 'x', 'a', 'measurement', 1, X'00', 'p', 's')",
                                   drop_triggers=False),
    "audit seq huge": _sql("INSERT INTO audit VALUES (9223372036854775807, 'x', 'a', 'b', NULL, '{}', 'p', 's')",
                           drop_triggers=False),
    "corrects loop": _sql("DROP TRIGGER m_no_update", "UPDATE measurements SET corrects = 2 WHERE id = 1",
                          "UPDATE measurements SET corrects = 1 WHERE id = 2", drop_triggers=False),
}
#: cases a store opens (the file is a case database; the damage is in its rows): verify must name
#: the problem, and a read of the damaged row may refuse it (StoreError) but nothing may crash
OPENS = {"case_no as a blob", "alarm as text", "created_utc as a number", "result_json as a blob",
         "case_no not UTF-8", "notes not UTF-8", "huge blob in substances", "huge text in case_no",
         "result_json not JSON", "result_json not an object", "result_json deeply nested",
         "component fraction as text", "component name as a blob", "audit detail as a blob", "audit seq huge",
         "corrects loop"}
#: bit flips may hit bytes SQLite does not check (free space, unused header fields): read, not crash
MAY_OPEN = {n for n in CASES if n.startswith("bit flips") or n == "truncated by 1 byte"}
#: what the one line must say
WORDING = {"empty file": "empty", "a directory": "is a directory", "a FIFO": "not a regular file",
           "symlink to a FIFO": "not a regular file", "symlink to a directory": "is a directory",
           "another schema": "not a case database", "fol tables without schema_migrations": "not a case database",
           "schema_migrations only": "missing", "future schema version": "newer than this fol",
           "schema version 0": "schema version", "schema version as text": "schema version",
           "random bytes 4 KiB": "not a case database", "text file": "not a case database",
           "symlink loop": "symbolic links"}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("readonly", [False, True], ids=["station", "cases"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_case_database_is_refused_in_one_line(tmp_path, case, readonly):
    path = CASES[case](tmp_path)
    before = _fingerprint(path)
    kind, message = outcome(path, readonly)
    assert kind in ("StoreError", "ok"), f"{case}: {kind}: {message}"
    assert "\n" not in message and len(message) < 600, message[:2000]
    if kind == "StoreError":
        assert message.startswith(path), message
        if case in WORDING:
            assert WORDING[case] in message, message
    elif case in OPENS:
        assert message, f"{case}: verify found nothing wrong"
    else:
        assert case in MAY_OPEN, f"{case}: opened and used without complaint"
    if case == "dangling symlink" and readonly is False:
        assert kind == "StoreError" and "missing" in message, message
    assert _fingerprint(path) == before, f"{case}: the file was changed"


def test_the_good_database_of_the_table_is_used(tmp_path):
    path = good(tmp_path / "c.sqlite")
    assert outcome(path, False) == ("ok", "") and outcome(path, True) == ("ok", "")
    link = _link_to(lambda d: good(d / "c.sqlite"))(tmp_path)
    assert outcome(link, True) == ("ok", "") and outcome(link, False) == ("ok", "")  # a link to a database: fine


def test_a_damaged_database_is_read_but_not_written_to(tmp_path):
    """Bit flips SQLite reads past: fol cases reads what is left (verify names the damage); the station,
    which would write into it, refuses it after its integrity check."""
    path = CASES["bit flips in the header 1"](tmp_path)
    before = _fingerprint(path)
    kind, message = outcome(path, False)
    assert kind == "StoreError" and message.startswith(f"{path}: damaged (SQLite integrity check"), message
    kind, message = outcome(path, True)
    assert kind == "ok" and message.startswith("sqlite integrity check:"), message
    assert _fingerprint(path) == before


# --------------------------------------------------------------------------- permissions and locks


@pytest.fixture
def shared_tmp():
    """A directory the unprivileged uid can use (the cases drop root, which ignores permissions)."""
    d = Path(tempfile.mkdtemp(prefix="fol-store-"))
    os.chmod(d, 0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    shutil.rmtree(d)


def _unprivileged(path: Path) -> int | None:
    if os.geteuid() != 0:
        return None
    for p in [path.parent, *path.parent.rglob("*")]:
        os.chown(p, NOBODY, NOBODY)
    return NOBODY


@pytest.mark.timeout(120)
def test_a_read_only_file_is_read_but_not_opened_for_writing(shared_tmp):
    (shared_tmp / "db").mkdir()
    path = Path(good(shared_tmp / "db" / "c.sqlite"))
    uid = _unprivileged(path)
    os.chmod(path, 0o444)
    before = _fingerprint(str(path))
    kind, message = outcome(str(path), False, uid)
    assert (kind, message.startswith(str(path)), "read-only" in message) == ("StoreError", True, True), message
    assert outcome(str(path), True, uid) == ("ok", "")
    assert _fingerprint(str(path)) == before


@pytest.mark.timeout(120)
def test_a_read_only_directory_is_read_but_not_opened_for_writing(shared_tmp):
    (shared_tmp / "db").mkdir()
    path = Path(good(shared_tmp / "db" / "c.sqlite"))
    uid = _unprivileged(path)
    os.chmod(path.parent, 0o555)
    before = _fingerprint(str(path))
    kind, message = outcome(str(path), False, uid)
    assert (kind, message.startswith(str(path)), "read-only" in message) == ("StoreError", True, True), message
    assert outcome(str(path), True, uid) == ("ok", "")  # read as an immutable snapshot: nobody can write here
    assert _fingerprint(str(path)) == before and not os.path.exists(str(path) + "-shm")


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    con.execute("PRAGMA locking_mode=EXCLUSIVE")
con.execute("BEGIN IMMEDIATE")
con.execute("INSERT INTO audit (seq, at_utc, actor, action, detail_json, prev_sha256, sha256) "
            "VALUES (1000, 'x', 'holder', 'x', '{}', 'p', 's')")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["write", "exclusive"])
def test_a_locked_database_is_refused_for_writing_in_bounded_time(tmp_path, mode):
    """Another program holds a write lock: the station refuses it after the busy timeout; ``fol cases``
    reads the last committed state (WAL readers are not blocked) unless the lock is exclusive."""
    path = good(tmp_path / "c.sqlite")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        kind, message = outcome(path, False)
        assert kind == "StoreError" and message.startswith(path) and "locked by another program" in message, message
        kind, message = outcome(path, True)
        if mode == "write":
            assert (kind, message) == ("ok", "")
        else:
            assert kind == "StoreError" and "locked by another program" in message, message
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert outcome(path, False) == ("ok", "")  # the holder's transaction was never committed


# --------------------------------------------------------------------------- the real entry points


CLI_CASES = ["empty file", "random bytes 4 KiB", "another schema", "future schema version", "a FIFO", "a directory",
             "truncated at 4096 bytes", "case_no not UTF-8", "huge text in case_no", "result_json deeply nested"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CLI_CASES)
def test_fol_cases_on_a_malformed_database_prints_one_line(tmp_path, case):
    path = CASES[case](tmp_path)
    before = _fingerprint(path)
    for mode in (["list"], ["show", "4"], ["verify", "--no-evidence"]):
        run = subprocess.run([sys.executable, "-m", "fol", "cases", *mode, "--db", path], capture_output=True,
                             text=True, timeout=60)
        lines = run.stderr.strip().splitlines()
        assert "Traceback" not in run.stderr, (mode, run.stderr[-2000:])
        assert len(run.stdout) < 10_000 and all(len(line) < 600 for line in lines), (mode, run.stderr[:2000])
        if case in OPENS and mode == ["list"]:  # the summary columns are fine; show and verify find the row
            continue
        assert run.returncode in (1, 2) and lines and path in run.stderr, (mode, run.returncode, run.stderr)
        if case not in OPENS:
            assert len(lines) == 1 and lines[0].startswith(f"fol: error: {path}: "), (mode, lines)
    assert _fingerprint(path) == before


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["another schema", "a FIFO"])
def test_fol_station_refuses_a_malformed_database_before_serving(tmp_path, case):
    pytest.importorskip("uvicorn")
    path = CASES[case](tmp_path)
    before = _fingerprint(path)
    run = subprocess.run([sys.executable, "-m", "fol", "station", "--simulate", "blank", "--db", path,
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=90)
    assert run.returncode != 0 and "Traceback" not in run.stderr and "serving on" not in run.stdout, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"fol: error: {path}: "), run.stderr
    assert _fingerprint(path) == before


def test_cli_main_reports_a_store_error_in_process(tmp_path, capsys):
    path = _other_schema(tmp_path)
    assert main(["cases", "list", "--db", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fol: error: {path}: ") and err.count("\n") == 1
