"""File bytes through the actors: the write pipeline, the dedup index, the chunk reader, open files.

May import everything below it (pure rooms, backends, actors, local, repo, catalog), never the Vault front.
"""
