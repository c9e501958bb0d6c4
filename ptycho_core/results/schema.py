"""The results database's tables (SQLAlchemy Core) and its ordered, forward-only migrations.

    schema_version  one row per applied migration (version, description, when)
    comparisons     one per `ptycho compare` (its folder, data, provenance, status)
    runs            one per finished run: a comparison's (generator, seed), `ptycho train`,
                    `ptycho reconstruct`; what ran, on which data, with which versions, its cost
    metrics         (run, name, value): every score and cost number of a run, one row each, so
                    that the leaderboard sorts by any of them in SQL

A migration is a function of a connection inside the opening transaction; `MIGRATIONS[k]` takes
a database from version k to k + 1. Tables are built by `tables()` on first use, never at import.
A later migration that changes a table alters it (and step 1 must keep creating the old shape).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace


@functools.cache
def tables() -> SimpleNamespace:
    """The current schema's tables and indexes, bound to one `MetaData`."""
    import sqlalchemy as sa  # lazy: `ptycho results --help` must not import SQLAlchemy

    md = sa.MetaData()
    version = sa.Table(
        "schema_version",
        md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied", sa.Float, nullable=False),
    )
    comparisons, runs = _comparisons(sa, md), _runs(sa, md)
    metrics = sa.Table(
        "metrics",
        md,
        sa.Column("run_id", sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float),
    )
    indexes = {
        "ix_runs_comparison": sa.Index("ix_runs_comparison", runs.c.comparison_id),
        "ix_metrics_name_run": sa.Index("ix_metrics_name_run", metrics.c.name, metrics.c.run_id, metrics.c.value),
        "ix_runs_data_generator": sa.Index("ix_runs_data_generator", runs.c.data_fingerprint, runs.c.generator),
        "ix_runs_started": sa.Index("ix_runs_started", runs.c.started),
    }
    return SimpleNamespace(
        metadata=md, version=version, comparisons=comparisons, runs=runs, metrics=metrics, indexes=indexes
    )


def _comparisons(sa, md):
    name, fp = sa.String(200), sa.String(64)
    return sa.Table(
        "comparisons",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", fp, nullable=False, unique=True),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("started", sa.Float),
        sa.Column("wall_seconds", sa.Float),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("ptycho_version", name),
        sa.Column("git_sha", name),
        sa.Column("data_fingerprint", fp),
        sa.Column("data_description", sa.Text),
        sa.Column("gridsize", sa.Integer),
        sa.Column("seeds", sa.Integer),
        sa.Column("provenance", sa.JSON),
        sa.Column("recorded", sa.Float, nullable=False),
    )


def _runs(sa, md):
    name, fp = sa.String(200), sa.String(64)
    named = ("plugin", "plugin_version", "framework", "device", "precision", "gpu", "ptycho_version", "git_sha")
    return sa.Table(
        "runs",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("comparison_id", sa.ForeignKey("comparisons.id", ondelete="CASCADE")),
        sa.Column("command", sa.String(20), nullable=False),
        sa.Column("name", name, nullable=False),
        sa.Column("generator", name, nullable=False),
        *(sa.Column(column, name) for column in named),
        sa.Column("factory", sa.Text),
        *(sa.Column(column, sa.JSON) for column in ("options", "train_config", "split", "hardware")),
        sa.Column("data_fingerprint", fp),
        sa.Column("data_description", sa.Text),
        *(sa.Column(column, sa.Integer) for column in ("gridsize", "seed", "epochs")),
        *(sa.Column(column, sa.Float) for column in ("train_timeout", "started", "finished")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("reused", sa.Boolean),
        sa.Column("folder", sa.Text),
        sa.Column("hash", fp),
        sa.Column("recorded", sa.Float, nullable=False),
    )


def _create(conn, *, tables_: tuple = (), indexes: tuple = ()) -> None:
    """Emit CREATE TABLE / CREATE INDEX for exactly these (a table's indexes are separate steps)."""
    from sqlalchemy.schema import CreateIndex, CreateTable  # lazy: `ptycho results --help` must not import SQLAlchemy

    t = tables()
    for name in tables_:
        conn.execute(CreateTable(getattr(t, name)))
    for name in indexes:
        conn.execute(CreateIndex(t.indexes[name]))


def _create_tables(conn) -> None:
    _create(conn, tables_=("version", "comparisons", "runs", "metrics"), indexes=("ix_runs_comparison",))


def _leaderboard_indexes(conn) -> None:
    """Indexes for the leaderboard: metric rows by name, runs by dataset and generator, by date."""
    _create(conn, indexes=("ix_metrics_name_run", "ix_runs_data_generator", "ix_runs_started"))


#: Ordered migrations: MIGRATIONS[k] takes the schema from version k to k + 1. Append only.
MIGRATIONS = (
    ("tables: comparisons, runs, metrics", _create_tables),
    ("indexes for the leaderboard", _leaderboard_indexes),
)
SCHEMA_VERSION = len(MIGRATIONS)
