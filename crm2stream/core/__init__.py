"""The contract and the pure parts the engines share: the event models and their decoder,
the value settings and their exact integer forms, labels, the table names.

No I/O, no engine imports. The incremental core itself is compiled (``native/``, behind
``engine.core``); what its tables mean is ``crm2stream.spec``.
"""
