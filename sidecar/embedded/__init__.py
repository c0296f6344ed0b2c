"""The embedded engine: ClickHouse in process, through chdb.

The modules, in the order a call passes through them:

* :mod:`.pool`: :class:`EmbeddedPool` owns the data directory, the chdb
  engine and the worker threads, and kills running statements.
* :mod:`.client`: :class:`EmbeddedClient` runs a query as a result stream,
  a statement, or an insert with its body.
* :mod:`.statement`: one statement on its own chdb connection (blocking,
  in a worker thread), and chdb's errors translated.
* :mod:`.splicing`: chdb's per-block output joined into one document.

Only this package imports chdb, and nothing imports this package until the
embedded engine is chosen: an install without chdb serves over HTTP.
"""

from .client import EmbeddedClient
from .pool import DataDirectoryInUseError, EmbeddedPool

__all__ = ["DataDirectoryInUseError", "EmbeddedClient", "EmbeddedPool"]
