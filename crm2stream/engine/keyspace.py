"""The key space of the embedded engine's store: one rocksdict database holding the event
log, the output topics, the checkpointed facts and the positions, so that one WriteBatch
can change any of them atomically (``store.Store`` reads them, ``write.Write`` writes).

Key space (raw bytes):
  ``l/<first>``      a page of the log: up to ``PAGE_LINES`` raw input lines of one batch,
                     the first at log position ``first``, joined by newlines (so that
                     reading one line reads one page, not its whole batch)
  ``b/<start>``      how many lines the batch at ``start`` holds, when it takes more than
                     one page (a batch without it is one page: every batch written before
                     pages was)
  ``r/<start>``      the bytes received of that chunk's lines a log line could not hold
                     as they were (an array element spanning lines), for their dead
                     letters: a JSON object, index -> base64
  ``a/<start>``      when that chunk's lines arrived (microseconds since the epoch): what
                     ``future_timestamp`` is judged against, at ingest and at every replay
                     (chunks written before it was kept have none)
  ``e/<event_id>``   the start of the chunk that accepted the event: the all-time index
                     of accepted ids, read a chunk's ids at a time (an id is a duplicate
                     of a chunk when an earlier chunk accepted it; a chunk applied again
                     after a crash finds its own ids, not earlier ones)
  ``k/<start>``      the event_ids that chunk accepted, as directories written before the
                     index kept them (moved into ``e/`` on open)
  ``x/<identifier>\x1f<position>``
                     the log position of an accepted event naming the identifier
  ``g/<identifier>\x1f<identifier>``
                     a link between two identifiers that stands now, in both directions:
                     with ``x/``, what one person's history reads, and nothing else
  ``o/<topic>/<n>``  output records as NDJSON, n the offset of the first in the topic: a
                     batch's dead letters, score changes and triggers, or a part of a
                     publication of the table topics
  ``c/<seq>/<part>`` a part of checkpoint segment number seq (see ``segments``): the
                     facts records one checkpoint wrote
  ``i/<identifier>\x1f<seq>``
                     an identifier's body as checkpoint seq (or a batch ahead of it) wrote
                     it: its day buckets, ties, consent and sums
  ``t/<person id>``  the persons a person's relationship records in the table topic name,
                     written with them: what the next publication tombstones or keeps
  ``n/<person id>``  the identifier anchoring a person the table topics hold, written with
                     its records (deleted with a retired person id's): with ``g/``, what
                     one person's history reads when asked by person id
  ``m/log``          log end, output ends, in-progress file ingests
  ``m/state``        the log position the checkpointed facts stand at, and the segments
"""

#: Values at least this large (log pages, output batches, checkpoint parts) live in blob
#: files: written once and never rewritten by RocksDB's compactions.
BLOB_MIN_BYTES = 4 << 10

#: The key prefix of checkpoint segment parts.
SEGMENTS = b"c/"
#: The log: its pages, and the sizes of batches of more than one page.
LOG = b"l/"
BATCHES = b"b/"
#: Lines per page of the log: one line read reads about this many. A person's ``history``
#: reads about a page per event, as a person's events are spread over the whole log
#: (``docs/architecture.md``).
PAGE_LINES = 32
#: The index of accepted event ids, and where a chunk's ids were kept before it.
ACCEPTED = b"e/"
LEGACY_ACCEPTED = b"k/"
#: The indexes of one person's history: mentions of identifiers, links standing now.
MENTIONS = b"x/"
LINKS = b"g/"
#: Identifier bodies, each under its key and the checkpoint that wrote it
#: (``i/<identifier>\x1f<checkpoint, 8 hex digits>``; the core makes the keys).
BODIES = b"i/"
#: Each person's published ties: the persons its relationship records in the table topic
#: name (``t/<person id>``; the core makes the keys), written with those records.
PUBLISHED_TIES = b"t/"
#: Each published person's anchor (``n/<person id>``; the core makes the keys).
ANCHORS = b"n/"
#: Where checkpoint records were kept one per key before segments: cleared on rebuild.
LEGACY_RECORDS = b"s/"
#: Output topics' records (``o/<topic>/<offset>``).
OUTPUTS = b"o/"
#: Per log chunk: the bytes received of lines the log holds otherwise, and the arrival time.
ORIGINALS = b"r/"
ARRIVALS = b"a/"
#: The positions (``m/log``, ``m/state``).
META = b"m/"
#: Everything but the log: what an in-place replay forgets.
DERIVED = (
    SEGMENTS,
    ACCEPTED,
    LEGACY_ACCEPTED,
    MENTIONS,
    LINKS,
    BODIES,
    PUBLISHED_TIES,
    ANCHORS,
    OUTPUTS,
    LEGACY_RECORDS,
    META,
)


def key_number(value: int) -> bytes:
    """A log position, checkpoint number or offset as it sorts in a key: 16 hex digits."""
    return b"%016x" % value


def output_prefix(topic: str) -> bytes:
    """Where an output topic's parts are kept."""
    return OUTPUTS + topic.encode() + b"/"


def end_of(prefix: bytes) -> bytes:
    """The first key after every key under a one-letter ``prefix`` (``x/`` -> ``x0``)."""
    return prefix[:-1] + b"0"
