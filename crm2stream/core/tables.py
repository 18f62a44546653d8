"""The names of the state tables, in digest order.

The compiled core (``native/``) computes them; ``crm2stream.spec`` says what each means.
Change streams and the dead-letter table are not state: they depend on arrival order and
on the bytes received.
"""

from typing import Any

STATE_TABLES = (
    "persons",
    "identity",
    "interactions",
    "relationships",
    "rfm",
    "scores",
    "permissions",
)
#: the tables keyed by person id (``identity`` is keyed by identifier)
PERSON_TABLES = tuple(table for table in STATE_TABLES if table != "identity")
#: one row of a table, a change stream or a topic record, as JSON-ready data
Row = dict[str, Any]
