"""The pyfuse3 ``Operations`` of a mounted vault: a thin translator from FUSE requests to the vault.

Namespace requests (lookup, mkdir, rename, ...) go straight to the vault's tree; content goes
through :class:`content.FileContent` (chunk cache, readahead, write-back spool). Every handler is
wrapped by :func:`_guarded`: only ``FUSEError`` leaves it, vault errors map to an errno, anything
unexpected is logged with its traceback and becomes EIO (pyfuse3 in asyncio mode would otherwise
drop it silently). Namespace changes and flushes are serialized by one lock so an inode's path
never changes while its data is being stored. Lookup counts are kept in ``lookup``/``forget``;
``readdir`` is resumable by offset over a snapshot taken when a listing starts.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat as stat_mod
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from ..engine.errors import AlreadyExists, LocalIOError, NotFound, UsageError, VaultError
from ..engine.results import Stat
from ..engine.vault import Vault
from .content import FileContent
from .inodes import HandleTable, InodeTable, Parts, vault_path
from .options import MountOptions

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR


def _errno_of(exc: VaultError) -> int:
    if isinstance(exc, NotFound):
        return errno.ENOENT
    if isinstance(exc, AlreadyExists):
        return errno.EEXIST
    if isinstance(exc, UsageError):
        return errno.EINVAL
    if isinstance(exc, LocalIOError) and "full" in exc.message:
        return errno.ENOSPC
    return errno.EIO


def _guarded(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except KeyError:  # an inode or handle the tables no longer know
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        except VaultError as exc:
            code = _errno_of(exc)
            if code == errno.EIO:
                log.error("%s failed: %s", fn.__name__, exc.message)
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


_KIND = {"file": stat_mod.S_IFREG, "dir": stat_mod.S_IFDIR, "symlink": stat_mod.S_IFLNK}


class Operations(pyfuse3.Operations):
    def __init__(self, vault: Vault, opts: MountOptions, content: FileContent, inodes: InodeTable,
                 ns_lock: Any, on_open: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self.vault = vault
        self.opts = opts
        self.content = content
        self.inodes = inodes
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
        if self.opts.read_only:
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

    # --- names --------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return await self._attrs_of(inode)

    @_guarded
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

    @_guarded
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        st = await self.vault.stat(self._path(inode))
        if st.target is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return os.fsencode(st.target)

    @_guarded
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._writable()
        parts = self._child(parent_inode, name)
        async with self._ns:
            await self.vault.mkdir(vault_path(parts), mode=mode & ~ctx.umask & 0o7777)
            await self._owner(parts, ctx)
            await self._touch_dir(parts[:-1])
        return await self._entry(parts)

    @_guarded
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
        except KeyError:
            return
        if node.opens:
            await self.content.view(ino)

    @_guarded
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, want_dir=False)

    @_guarded
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, want_dir=True)

    @_guarded
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
            if old is not None:
                self.content.unlinked(old)
            self.inodes.moved(src, dst)
            await self._touch_dir(src[:-1])
            if dst[:-1] != src[:-1]:
                await self._touch_dir(dst[:-1])

    @_guarded
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)  # the catalog has no hard links

    @_guarded
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

    @_guarded
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

    @_guarded
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
        if writable and flags & os.O_TRUNC:  # libfuse enables atomic O_TRUNC: no separate setattr comes
            try:
                await self.content.truncate(inode, 0)
            except BaseException:
                self.handles.close_file(fh)
                self.inodes.closed(inode)
                raise
        return pyfuse3.FileInfo(fh=fh)

    @_guarded
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.content.read(self.handles.file(fh), off, size)

    @_guarded
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self.handles.file(fh)
        if not h.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        self._writable()
        return await self.content.write(h.ino, off, buf)

    @_guarded
    async def flush(self, fh: int) -> None:
        h = self.handles.file(fh)
        if h.writable:
            await self.content.flush(h.ino)

    @_guarded
    async def release(self, fh: int) -> None:
        h = self.handles.close_file(fh)
        self.inodes.closed(h.ino)
        try:
            if h.writable:
                await self.content.flush(h.ino)
        finally:
            self.content.settle(h.ino)
            self.content.forget(h.ino)

    @_guarded
    async def fsync(self, fh: int, datasync: bool) -> None:
        h = self.handles.file(fh)
        await self.content.flush(h.ino)
        await self.vault.commit()

    # --- directories --------------------------------------------------------------------------

    @_guarded
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        st = await self.vault.stat(self._path(inode))
        if st.type != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return self.handles.open_dir(inode)

    @_guarded
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

    @_guarded
    async def releasedir(self, fh: int) -> None:
        self.handles.close_dir(fh)

    @_guarded
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self.content.flush_all()
        await self.vault.commit()

    @_guarded
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

    @_guarded
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._xattr_name(name)
        if len(name) > 255:
            raise pyfuse3.FUSEError(errno.ERANGE)
        if len(value) > 65536:
            raise pyfuse3.FUSEError(errno.E2BIG)
        async with self._ns:
            await self.vault.set_xattr(self._path(inode), name, value)

    @_guarded
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self._xattr_name(name)
        value = (await self.vault.xattrs(self._path(inode))).get(name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    @_guarded
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        return sorted(await self.vault.xattrs(self._path(inode)))

    @_guarded
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._writable()
        self._xattr_name(name)
        async with self._ns:
            try:
                await self.vault.set_xattr(self._path(inode), name, None)
            except NotFound:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
