"""This device: the state folder and its MAC'd pin, the sealed SQLite cache, device settings.

May import the pure rooms and ``backends``; nothing above.
"""
