"""The read-write FUSE mount (pyfuse3 on asyncio): ops adapter, inode tables, chunk cache, write-back spool.

Entry point: ``session.Session(vault, MountOptions(...)).serve(mountpoint)``; the CLI is ``sigmavault.cli.mount``.
"""
