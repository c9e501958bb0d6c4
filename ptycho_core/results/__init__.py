"""The results store (docs/design.md#run-record): every comparison and run, indexed in a database.

    store.py     where the database is (--db / PTYCHO_DB / the user's data folder), opening it,
                 its schema version and migrations, one-line errors
    schema.py    the tables (SQLAlchemy Core) and the ordered migrations
    entries.py   what is kept of a comparison or a run, from the harness's records or a folder
    record.py    writing entries (one transaction each); `record_safely`: errors become warnings
    queries.py   list, leaderboard, show, diff, export
    html.py      the leaderboard page

The run folders stay the source of truth; `ptycho results import DIR` rebuilds the index.
Nothing here imports SQLAlchemy at module level: `ptycho --help` must stay light.
"""

from ptycho_core.results.record import record_comparison, record_safely

__all__ = ["record_comparison", "record_safely"]
