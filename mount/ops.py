"""The pyfuse3 ``Operations`` of a mounted vault: a thin translator from FUSE requests to the vault.

This module holds the namespace (lookup, mkdir, unlink, rename, ...), file handle and directory
handlers; :mod:`.attrs` holds the attribute side (getattr, setattr, xattrs, statfs) and the
shared helpers. Namespace requests go straight to the vault's tree; content goes through
:class:`~.files.FileContent` (chunk cache, readahead, write-back spool). Every handler is
wrapped by :func:`~.guard.guarded`: only ``FUSEError`` leaves it, vault errors answer the errno
their class carries, anything unexpected is logged with its traceback and becomes EIO (pyfuse3
in asyncio mode would otherwise drop it silently). Namespace changes and flushes are serialized
by one lock so an inode's path never changes while its data is being stored. Lookup counts are
kept in ``lookup``/``forget``; ``readdir`` is resumable by offset over a snapshot taken when a
listing starts.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
from collections.abc import Sequence
from typing import cast

import pyfuse3

from ..engine.catalog.results import Stat
from ..engine.errors import NotFound, ObjectMissing
from .attrs import AttrOps
from .guard import guarded
from .inodes import Parts, UnknownInode, vault_path

log = logging.getLogger(__name__)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR


class Operations(AttrOps):
    """Every FUSE request the mount answers (the attribute handlers come from :class:`AttrOps`)."""

    # --- names --------------------------------------------------------------------------------

    @guarded
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parts = self.inodes.parts(parent_inode)
        if name == b".":
            target = parts
        elif name == b"..":
            target = parts[:-1]
        else:
            target = (*parts, name)
        a = await self._entry(target)
        log.debug("lookup %r -> %d", target, a.st_ino)
        return a

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            try:
                self.inodes.forget(ino, n)
                self.content.forget(ino)
            except Exception:  # forget must not raise
                log.exception("forget failed")

    @guarded
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        parts = self._child(parent_inode, name)
        async with self._ns:
            await self.vault.mkdir(vault_path(parts), mode=mode & ~ctx.umask & 0o7777)
            await self._owner(parts, ctx)
            await self._touch_dir(parts[:-1])
        return await self._entry(parts)

    @guarded
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        parts = self._child(parent_inode, name)
        async with self._ns:
            await self.vault.symlink(vault_path(parts), target)
            await self._owner(parts, ctx)
            await self._touch_dir(parts[:-1])
        return await self._entry(parts)

    async def _remove(self, parent_inode: int, name: bytes, want_dir: bool) -> None:
        self._writable()
        parts = self._child(parent_inode, name)
        async with self._ns:
            st = await self.vault.stat(vault_path(parts))
            if want_dir and st.type != "dir":
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if not want_dir and st.type == "dir":
                raise pyfuse3.FUSEError(errno.EISDIR)
            if want_dir and await self.vault.ls(vault_path(parts)):
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            await self._keep_view(parts)
            await self.vault.rm(vault_path(parts))
            if not want_dir:
                self.watch.deleted()
            ino = self.inodes.unlinked(parts)
            log.debug("removed %r ino %s", parts, ino)
            if ino is not None:
                self.content.unlinked(ino)
            await self._touch_dir(parts[:-1])

    async def _keep_view(self, parts: Parts) -> None:
        """An open file about to lose its name keeps readable content (its chunk refs)."""
        try:
            ino = self.inodes.ino_for(parts)
            node = self.inodes.get(ino)
        except UnknownInode:
            return
        if node.opens:
            await self.content.view(ino)

    @guarded
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, want_dir=False)

    @guarded
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, want_dir=True)

    @guarded
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        src, dst = self._child(parent_inode_old, name_old), self._child(parent_inode_new, name_new)
        if src == dst:
            return
        if dst[: len(src)] == src:
            raise pyfuse3.FUSEError(errno.EINVAL)
        async with self._ns:
            s = await self.vault.stat(vault_path(src))
            old: int | None = None
            try:
                d: Stat | None = await self.vault.stat(vault_path(dst))
            except NotFound:
                d = None
            if d is not None:
                if flags & pyfuse3.RENAME_NOREPLACE:
                    raise pyfuse3.FUSEError(errno.EEXIST)
                if d.type == "dir" and s.type != "dir":
                    raise pyfuse3.FUSEError(errno.EISDIR)
                if d.type != "dir" and s.type == "dir":
                    raise pyfuse3.FUSEError(errno.ENOTDIR)
                if d.type == "dir" and await self.vault.ls(vault_path(dst)):
                    raise pyfuse3.FUSEError(errno.ENOTEMPTY)
                await self._keep_view(dst)
                old = self.inodes.ino_for(dst)
            log.debug("rename %r -> %r (over inode %s)", src, dst, old)
            await self.vault.mv(vault_path(src), vault_path(dst), replace=True)
            if s.type == "file":
                self.watch.renamed(vault_path(src), vault_path(dst))
            if old is not None:
                self.content.unlinked(old)
            self.inodes.moved(src, dst)
            await self._touch_dir(src[:-1])
            if dst[:-1] != src[:-1]:
                await self._touch_dir(dst[:-1])

    @guarded
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)  # the catalog has no hard links

    @guarded
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if not stat_mod.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # no devices, FIFOs or sockets in a vault
        self._writable()
        parts = self._child(parent_inode, name)
        await self._create_file(parts, mode, ctx)
        return await self._entry(parts)

    # --- files --------------------------------------------------------------------------------

    async def _create_file(self, parts: Parts, mode: int, ctx: pyfuse3.RequestContext) -> None:
        async with self._ns:
            try:
                await self.vault.stat(vault_path(parts))
                raise pyfuse3.FUSEError(errno.EEXIST)
            except NotFound:
                pass
            await self.vault.patch(vault_path(parts), 0, {}, mode=mode & ~ctx.umask & 0o7777)
            await self._owner(parts, ctx)
            await self._touch_dir(parts[:-1])

    @guarded
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._writable()
        parts = self._child(parent_inode, name)
        await self._create_file(parts, mode, ctx)
        attrs = await self._entry(parts)
        log.debug("create %r ino %d", parts, attrs.st_ino)
        fh = self.handles.open_file(attrs.st_ino, True)
        self.inodes.opened(attrs.st_ino)
        return pyfuse3.FileInfo(fh=fh), attrs

    @guarded
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        writable = bool(flags & _WRITE_FLAGS)
        if writable:
            self._writable()
        await self._on_open()
        st = await self.vault.stat(self._path(inode))
        if st.type != "file":
            raise pyfuse3.FUSEError(errno.EISDIR if st.type == "dir" else errno.EINVAL)
        fh = self.handles.open_file(inode, writable)
        self.inodes.opened(inode)
        if writable and st.size > 0:
            self.watch.opened(fh)  # an existing file's content may be rewritten
        elif not writable and self.watch.read(inode):
            self.watch.judge_reads(len(await self.vault.file_paths("/")))
        if writable and flags & os.O_TRUNC:  # libfuse enables atomic O_TRUNC: no separate setattr comes
            try:
                await self.content.truncate(inode, 0)
            except BaseException:
                self.handles.close_file(fh)
                self.inodes.closed(inode)
                raise
        return pyfuse3.FileInfo(fh=fh)

    @guarded
    async def read(self, fh: int, off: int, size: int) -> bytes:
        h = self.handles.file(fh)
        try:
            data = await self.content.read(h, off, size)
        except ObjectMissing:  # a prune took what the file's view names (a rewrite moved it): adopt the head, again
            await self._on_open()
            data = await self.content.read(h, off, size)
        # pyfuse3 replies with any contiguous buffer (PyObject_GetBuffer): a view of a cached chunk saves a copy
        return cast(bytes, data)

    @guarded
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self.handles.file(fh)
        if not h.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        self._writable()
        self.watch.wrote(fh, off, buf)
        return await self.content.write(h.ino, off, buf)

    @guarded
    async def flush(self, fh: int) -> None:
        h = self.handles.file(fh)
        if h.writable:
            await self.content.flush(h.ino)

    @guarded
    async def release(self, fh: int) -> None:
        h = self.handles.close_file(fh)
        self.inodes.closed(h.ino)
        self.watch.released(fh)
        try:
            if h.writable:
                await self.content.flush(h.ino)
        finally:
            self.content.settle(h.ino)
            self.content.forget(h.ino)

    @guarded
    async def fsync(self, fh: int, datasync: bool) -> None:
        h = self.handles.file(fh)
        await self.content.flush(h.ino)
        await self.vault.commit()

    # --- directories --------------------------------------------------------------------------

    @guarded
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        st = await self.vault.stat(self._path(inode))
        if st.type != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return self.handles.open_dir(inode)

    @guarded
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        d = self.handles.dir(fh)
        parts = self.inodes.parts(d.ino)
        listing: dict[bytes, Stat] = {}
        if start_id == 0 or d.entries is None:
            listing = {os.fsencode(st.name): st for st in await self.vault.ls(vault_path(parts))}
            d.entries = [(name, 0) for name in listing]
        for i in range(start_id, len(d.entries)):
            name = d.entries[i][0]
            st = listing.get(name)
            if st is None:
                try:
                    st = await self.vault.stat(vault_path((*parts, name)))
                except NotFound:
                    continue  # removed since the listing started
            ino = self.inodes.ino_for((*parts, name))
            if not pyfuse3.readdir_reply(token, name, self._attrs(ino, st), i + 1):
                self.inodes.forget(ino, 0)
                return
            self.inodes.remember(ino)

    @guarded
    async def releasedir(self, fh: int) -> None:
        self.handles.close_dir(fh)

    @guarded
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self.content.flush_all()
        await self.vault.commit()

