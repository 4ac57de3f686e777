"""The byte format, pure: canonical JSON, AEAD records, framing and padding, the object envelope, refs and pages,
the commit codec, drop records of write-only clients, bech32.

Imports only ``engine.errors`` and ``engine.keys``; no asyncio, no I/O, no backends, no actors
(tests/test_layers.py).
"""
