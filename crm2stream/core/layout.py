"""Positions of the counters inside the integer vectors the facts are made of."""

DAY_US = 86_400_000_000

# Layout of a day bucket: one list of integer counters per identifier and day.
DONE = {"identify": 0, "unlink": 1, "share": 2, "comment": 3, "purchase": 4, "permission": 5}
RECEIVED = ("share", "comment", "reply", "recipient")
R_SHARE, R_COMMENT, R_REPLY, R_RECIPIENT = 6, 7, 8, 9
PURCHASES, AMOUNT = 10, 11
BUCKET_WIDTH = 12
# The four exact decayed sums an identifier carries (see ``decay``):
S_CONSUMPTION, S_POPULARITY, S_REACH, S_REVENUE = 0, 1, 2, 3
# Layout of an edge day: counts of the four interaction kinds from one identifier to another,
# stored after the day as [day, reply, comment, share, recipient].
E_REPLY, E_COMMENT, E_SHARE, E_RECIPIENT = 0, 1, 2, 3
EDGE_WIDTH = 5
EDGE_KINDS = ("reply", "comment", "share", "recipient")
