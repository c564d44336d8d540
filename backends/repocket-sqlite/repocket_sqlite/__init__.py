"""repocket-sqlite: a repocket storage backend on one SQLite file.

Install it next to repocket and choose it by URL::

    from repocket.connections import configure

    configure.from_url("sqlite:///app.db")            # relative to the working directory
    configure.from_url("sqlite:////var/lib/app.db")   # absolute
    configure.from_url("sqlite://:memory:")           # private, in memory

The backend is found through the ``repocket.backends`` entry point group
(scheme ``sqlite``); see :mod:`repocket_sqlite.storage` for the layout.
"""

from __future__ import annotations

from .storage import SQLiteStorage, SQLiteURLError

__all__ = ["SQLiteStorage", "SQLiteURLError", "__version__"]

__version__ = "0.1.0"
