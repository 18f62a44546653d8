"""The executable specification: what every state table means, computed from scratch.

The engine is incremental, compiled and keyed; this package is none of those things. It
takes the accepted events, sorts them by ``(occurred_at, event_id)``, keeps those up to the
end of the as-of day, folds them into plain data (``history``), groups identifiers into
persons by union-find (``persons``), values them (``value``) and writes every table
(``tables``). It has no caches and no incremental updates, so that a newcomer learns what a
table means by reading it, and the tests hold the engine to it with hypothesis: any event
set, order, batching, crash point and as-of day gives the rows the spec gives.

The decayed sums are the exact fixed-point integers of ``core.decay``: they are part of
the contract (scores do not depend on the order events arrive in), not an optimisation.
"""

from crm2stream.core.tables import STATE_TABLES, Row
from crm2stream.spec.tables import state_tables

__all__ = ["STATE_TABLES", "Row", "state_tables"]
