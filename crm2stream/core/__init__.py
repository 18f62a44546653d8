"""The pure core: what an event does to the facts, and every table derived from them.

No I/O, no engine imports: both engines run exactly this code.
"""
