"""The catalog: the in-memory tree and its three-way merge, pages in and out of the store, diffs, the records the
API reports.

May import the pure rooms, ``backends``, ``actors``, ``engine.local`` and ``engine.repo``.
"""
