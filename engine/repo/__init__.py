"""Objects in a backend: the object store, open packs, the commit history and chain, the create-only probe, key
changes.

May import the pure rooms (errors, format, keys), ``backends``, ``actors`` and ``engine.local``.
"""
