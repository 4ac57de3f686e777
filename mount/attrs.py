"""The attribute side of the mount's FUSE operations: stat, setattr, readlink, statfs, extended attributes.

:class:`AttrOps` holds what every handler shares (the vault, the inode and handle tables, the
content layer, the namespace lock) and the helpers that build ``EntryAttributes`` from a vault
``Stat``; :class:`~.ops.Operations` adds the namespace, file and directory handlers on top. Each
handler is :func:`~.guard.guarded`: only ``FUSEError`` leaves it.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pyfuse3

from ..engine.catalog.results import Stat
from ..engine.errors import NotFound
from ..engine.vault import Vault
from .files import FileContent
from .guard import guarded
from .inodes import HandleTable, InodeTable, Parts, vault_path
from .options import MountOptions
from .watch import Watch

_KIND = {"file": stat_mod.S_IFREG, "dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK}


class AttrOps(pyfuse3.Operations):
    """The shared state and helpers of the mount's handlers, and the attribute handlers themselves."""

    def __init__(self, vault: Vault, opts: MountOptions, content: FileContent, inodes: InodeTable,
                 ns_lock: Any, on_open: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self.vault = vault
        self.opts = opts
        self.content = content
        self.inodes = inodes
        self.watch = Watch(opts)
        self.handles = HandleTable()
        self._ns = ns_lock
        self._on_open = on_open
        self.enable_writeback_cache = False
        self.supports_dot_lookup = True

    # --- helpers ------------------------------------------------------------------------------

    def _path(self, ino: int) -> bytes:
        return vault_path(self.inodes.parts(ino))

    def _child(self, parent: int, name: bytes) -> Parts:
        return (*self.inodes.parts(parent), name)

    def _writable(self) -> None:
        if self.opts.read_only or self.watch.frozen is not None:
            raise pyfuse3.FUSEError(errno.EROFS)
        self.content.last_activity = time.monotonic()

    def _attrs(self, ino: int, st: Stat) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        a.entry_timeout = self.opts.attr_timeout
        a.attr_timeout = self.opts.attr_timeout
        a.st_mode = _KIND[st.type] | (st.mode & 0o7777)
        a.st_nlink = 1
        a.st_uid, a.st_gid = st.uid, st.gid
        a.st_rdev = 0
        size = self.content.size(ino) if st.type == "file" else None
        a.st_size = st.size if size is None else size
        a.st_blksize = min(self.content.cs, 1 << 20)
        a.st_blocks = -(-a.st_size // 512)
        mtime = self.content.mtime(ino) if st.type == "file" else None
        a.st_mtime_ns = st.mtime_ns if mtime is None else mtime
        a.st_atime_ns = a.st_mtime_ns
        a.st_ctime_ns = st.ctime_ns
        return a

    async def _attrs_of(self, ino: int) -> pyfuse3.EntryAttributes:
        return self._attrs(ino, await self.vault.stat(self._path(ino)))

    async def _entry(self, parts: Parts) -> pyfuse3.EntryAttributes:
        st = await self.vault.stat(vault_path(parts))
        ino = self.inodes.ino_for(parts)
        self.inodes.remember(ino)
        return self._attrs(ino, st)

    async def _touch_dir(self, parts: Parts) -> None:
        if parts:  # the root's own metadata is not stored
            await self.vault.set_meta(vault_path(parts), mtime_ns=time.time_ns())

    async def _owner(self, parts: Parts, ctx: pyfuse3.RequestContext) -> None:
        if (ctx.uid, ctx.gid) != (os.getuid(), os.getgid()):
            await self.vault.set_meta(vault_path(parts), uid=ctx.uid, gid=ctx.gid)

    # --- attributes ---------------------------------------------------------------------------

    @guarded
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return await self._attrs_of(inode)

    @guarded
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        path = self._path(inode)
        if fields.update_size:
            st = await self.vault.stat(path)
            if st.type != "file":
                raise pyfuse3.FUSEError(errno.EISDIR if st.type == "dir" else errno.EINVAL)
            await self.content.truncate(inode, attr.st_size)
            if not self.inodes.get(inode).opens:  # truncate(2) by path: nobody will release it
                await self.content.flush(inode)
        mode = attr.st_mode & 0o7777 if fields.update_mode else None
        uid = attr.st_uid if fields.update_uid else None
        gid = attr.st_gid if fields.update_gid else None
        mtime = attr.st_mtime_ns if fields.update_mtime else None
        if mode is not None or uid is not None or gid is not None or mtime is not None:
            async with self._ns:
                await self.vault.set_meta(self._path(inode), mode=mode, uid=uid, gid=gid, mtime_ns=mtime)
            if mtime is not None:
                self.content.set_mtime(inode, mtime)
        return await self._attrs_of(inode)

    @guarded
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        st = await self.vault.stat(self._path(inode))
        if st.target is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(st.target)

    @guarded
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 1 << 40  # object storage: no meaningful limit (4 PiB shown)
        s.f_files = s.f_ffree = s.f_favail = 1 << 32
        s.f_namemax = 255
        return s

    # --- extended attributes ------------------------------------------------------------------

    @staticmethod
    def _xattr_name(name: bytes) -> None:
        if name.startswith((b"system.", b"security.")):
            raise pyfuse3.FUSEError(errno.ENOTSUP)  # ACLs and security labels are not stored

    @guarded
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._xattr_name(name)
        if len(name) > 255:
            raise pyfuse3.FUSEError(errno.ERANGE)
        if len(value) > 65536:
            raise pyfuse3.FUSEError(errno.E2BIG)
        async with self._ns:
            await self.vault.set_xattr(self._path(inode), name, value)

    @guarded
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self._xattr_name(name)
        value = (await self.vault.xattrs(self._path(inode))).get(name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    @guarded
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        return sorted(await self.vault.xattrs(self._path(inode)))

    @guarded
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._xattr_name(name)
        async with self._ns:
            try:
                await self.vault.set_xattr(self._path(inode), name, None)
            except NotFound:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
