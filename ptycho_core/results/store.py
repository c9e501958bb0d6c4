"""Opening the results database: where it is, its engine, its schema version, its migrations.

`Store.open(db)` takes `--db` (a SQLAlchemy URL, or a file path for SQLite), else `PTYCHO_DB`,
else `results.db` in the user's data folder (platformdirs). SQLite runs in WAL mode (synchronous
NORMAL: a power cut may lose the last records, never corrupt the file) with a busy timeout, and
every write transaction takes the write lock first (BEGIN IMMEDIATE), so that two
processes recording at once both land. A database that is corrupt, not ours, or of a newer schema
is a `StoreError` (a `PtychoError`: one line naming it and what to do).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ptycho_core.errors import PtychoError
from ptycho_core.results import schema
from ptycho_core.results.schema import tables

ENV = "PTYCHO_DB"
DEFAULT_FILE = "results.db"
#: Seconds a writer waits for another process's transaction on SQLite.
BUSY_TIMEOUT_S = 60
#: Key of the PostgreSQL advisory lock held while a process checks and migrates the schema.
_PG_LOCK = 0x70747963


class StoreError(PtychoError):
    """The results database cannot be used (corrupt, not ours, newer schema, unreachable)."""


def default_path() -> Path:
    """`results.db` in the user's data folder, e.g. ~/.local/share/ptycho/results.db."""
    import platformdirs  # lazy: only the default results path needs it

    return platformdirs.user_data_path("ptycho", appauthor=False) / DEFAULT_FILE


def resolve_url(db: str | os.PathLike | None = None) -> str:
    """The SQLAlchemy URL for `--db` (a URL or a file path), else `PTYCHO_DB`, else the default file."""
    value = str(db) if db else os.environ.get(ENV, "").strip()
    if not value:
        value = str(default_path())
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


def describe_url(url: str) -> str:
    """The database as a message names it: the file for SQLite, the URL without password otherwise."""
    from sqlalchemy.engine import make_url  # lazy: `ptycho results --help` must not import SQLAlchemy

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def _engine(url: str):
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # WAL: no corruption on a crash, one fsync per checkpoint
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    """An open, migrated results database. Use `Store.open(db)`; `close()` when done."""

    def __init__(self, engine, url: str):
        self.engine = engine
        self.url = url
        self.where = describe_url(url)

    @classmethod
    def open(cls, db: str | os.PathLike | None = None, *, migrate: bool = True) -> Store:
        """Open (creating or migrating when needed) the database named by `db` / PTYCHO_DB / default."""
        url = resolve_url(db)
        try:
            store = cls(_engine(url), url)
        except PtychoError:
            raise
        except Exception as exc:  # a malformed URL or a missing driver
            raise StoreError(f"{url}: cannot open the results database ({_reason(exc)}): check --db / {ENV}") from None
        store.guarded(store._prepare if migrate else store.schema_version)
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def guarded(self, work, *args):
        """`work(*args)`, with database errors turned into one-line `StoreError`s naming the database."""
        import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

        try:
            return work(*args)
        except PtychoError:
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(f"{self.where}: {_advice(exc, self.url)}") from None

    def transaction(self):
        """A connection in one transaction (committed on success, rolled back on any error)."""
        return self.engine.begin()

    def schema_version(self, conn=None) -> int:
        """The applied schema version (0: an empty database); StoreError when it is not ours."""
        import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

        if conn is None:
            with self.transaction() as conn:
                return self.schema_version(conn)
        names = set(sa.inspect(conn).get_table_names())
        if "schema_version" not in names:
            if names:
                raise StoreError(
                    f"{self.where}: not a ptycho results database (tables {', '.join(sorted(names))}): "
                    f"pass another --db / {ENV}"
                )
            return 0
        return conn.execute(sa.select(sa.func.max(tables().version.c.version))).scalar() or 0

    def _prepare(self) -> None:
        """Check the schema version and apply the missing migrations, in one transaction."""
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
            current = self.schema_version(conn)
            if current > schema.SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where}: the results database has schema version {current}, newer than this ptycho "
                    f"understands ({schema.SCHEMA_VERSION}): upgrade ptycho, or pass another --db / {ENV}"
                )
            for version in range(current, schema.SCHEMA_VERSION):
                description, step = schema.MIGRATIONS[version]
                step(conn)
                conn.execute(
                    tables().version.insert().values(version=version + 1, description=description, applied=time.time())
                )


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _advice(exc: BaseException, url: str) -> str:
    reason = _reason(exc)
    if url.startswith("sqlite") and ("not a database" in reason or "malformed" in reason):
        return (
            f"not a readable SQLite database ({reason}): move it aside (`ptycho results import DIR` rebuilds the "
            f"index from comparison folders) or pass another --db / {ENV}"
        )
    return f"results database error ({reason}): check the database, or pass another --db / {ENV}"
