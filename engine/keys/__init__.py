"""Keys, pure: the key schedule, secrets, slots, X-Wing, the keyring and keystore codec, credentials, process
hygiene.

Imports only ``engine.errors`` and ``engine.format``; no asyncio, no I/O, no backends, no actors.
"""
