"""``VaultFileSystem``: a sigmavault vault as an fsspec filesystem (protocol ``sigmavault``).

One vault is opened per filesystem instance, lazily on the filesystem's event loop (fsspec's IO
thread, or the caller's loop with ``asynchronous=True``), and shared by every call. Credentials
come the way the command line finds them (:mod:`sigmavault.cli.access`): an explicit
``passphrase=``; else the unlock agent's key for a vault this device has pinned; else
``SIGMAVAULT_PASSPHRASE``; a device secret joins the passphrase for two-factor slots. The
passphrase never appears in the repr, in ``storage_options`` (so neither in ``to_json`` nor in a
pickle: a copy elsewhere finds its credential from the environment or the agent) nor in errors.

Paths: ``sigmavault://a/b``, ``sigmavault:///a/b`` and ``/a/b`` all name the vault path ``/a/b``.
Vault errors come out as the built-in errors fsspec callers expect (:mod:`.errors`). Edits are
committed after each changing call and each closed write file (``commit="close"``), or only by
:meth:`VaultFileSystem.commit` (``commit="manual"``). The open files are in :mod:`.files`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import warnings
from typing import Any

from fsspec.asyn import AsyncFileSystem, sync
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import _Cached
from fsspec.utils import stringify_path

import sigmavault

from .. import AuthError, Stat, Vault, named
from .._internal import Passphrase, secret_env
from ..cli import access
from .errors import translated
from .files import VaultReadFile, VaultWriteFile

COMMIT_MODES = ("close", "manual")
SECRET_VAR = "SIGMAVAULT_PASSPHRASE"  # noqa: S105 (the name of the variable, not a secret)
NO_CREDENTIAL = ("no passphrase for the vault: pass passphrase=…, set SIGMAVAULT_PASSPHRASE, "
                 "or unlock it with `sigmavault unlock`")


class _NoSecrets(_Cached):  # type: ignore[misc]
    """fsspec's instance cache, minus the secrets: the passphrase is dropped from ``storage_options``
    (which ``to_json`` and pickling reuse), and a filesystem around a given ``Vault`` is never shared."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("vault_obj") is not None:
            kwargs["skip_instance_cache"] = True
        fs = super().__call__(*args, **kwargs)
        fs.storage_options.pop("passphrase", None)
        return fs


def entry(path: str, st: Stat) -> dict[str, Any]:
    """fsspec's info dict for a vault stat."""
    kind = {"file": "file", "dir": "directory"}.get(st.type, "other")
    out: dict[str, Any] = {"name": path, "size": st.size, "type": kind, "mtime": st.mtime_ns / 1e9,
                           "mode": st.mode}
    if st.target is not None:
        out["destination"] = st.target
    return out


class VaultFileSystem(AsyncFileSystem, metaclass=_NoSecrets):  # type: ignore[misc]
    """A sigmavault vault through fsspec: ``fsspec.filesystem("sigmavault", vault=URL, passphrase=…)``.

    ``vault``: the vault's URL or local path (default ``SIGMAVAULT_VAULT``, else the default
    vault); ``passphrase`` (default: the unlock agent, then ``SIGMAVAULT_PASSPHRASE``);
    ``commit``: ``"close"`` (default) or ``"manual"``; ``vault_obj``: an open :class:`~sigmavault.Vault`
    to use instead (it must live on this filesystem's event loop; closing the filesystem commits
    as the mode says but leaves that vault open); ``fingerprint``: pins a vault new to this device.
    """

    protocol = "sigmavault"
    root_marker = "/"

    def __init__(self, vault: str | None = None, *, passphrase: str | None = None, commit: str = "close",
                 vault_obj: Vault | None = None, fingerprint: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if commit not in COMMIT_MODES:
            raise ValueError(f"commit must be 'close' or 'manual', not {commit!r}")
        self.commit_mode = commit
        #: one URL, or the places of a dispersed vault (``vault`` may also name a vault in vaults.toml)
        self._target = vault_obj.url if vault_obj is not None else named.default_vault_url(vault)
        self._url = self._target if isinstance(self._target, str) else ", ".join(self._target)
        self.__passphrase = passphrase
        self._fingerprint = fingerprint
        self._given = vault_obj
        self._open_vault: Vault | None = vault_obj
        self._opening: asyncio.Future[Vault] | None = None

    def __repr__(self) -> str:
        return f"<VaultFileSystem {self._url.partition('?')[0]!r} commit={self.commit_mode!r}>"

    __str__ = __repr__

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """``sigmavault://a/b``, ``sigmavault:///a/b``, ``a/b/`` → ``/a/b``; lists element-wise."""
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        for prefix in ("sigmavault://", "sigmavault::"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        return "/" + "/".join(p for p in text.split("/") if p)

    # --- the vault: opened once, lazily, on our loop -------------------------------------------

    async def _vault(self) -> Vault:
        if self._open_vault is not None:
            return self._open_vault
        if self._given is not None:
            raise ValueError("the filesystem is closed (its vault was given as vault_obj)")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._unlock())
        try:
            vault = await asyncio.shield(self._opening)
        except BaseException:
            if self._opening.done():
                self._opening = None  # a failed open is tried again by the next call
            raise
        self._open_vault = vault
        return vault

    async def _unlock(self) -> Vault:
        """Open the vault the way the command line does, without ever prompting."""
        secret = self.__passphrase
        if secret is None:
            vault = (await access.from_agent(self._target, fingerprint=self._fingerprint)
                     if isinstance(self._target, str) else None)  # the agent keys a vault by one URL
            if vault is not None:
                return vault
            secret = secret_env(SECRET_VAR)
            if secret is None:
                raise AuthError(NO_CREDENTIAL)
        return await sigmavault.open(self._target, credential=access.with_device(Passphrase.of(secret)),
                                     fingerprint=self._fingerprint)

    async def _changed(self) -> None:
        """After an edit: commit it when the mode is ``"close"``."""
        if self.commit_mode == "close":
            vault = await self._vault()
            await vault.commit()

    async def _commit(self) -> int:
        vault = await self._vault()
        return await vault.commit()

    def commit(self) -> int:
        """Commit pending edits now; returns the vault's generation."""
        return sync(self.loop, self._commit)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Commit what is pending (``commit="close"``; ``"manual"`` warns and drops it), then close the
        vault unless it was given as ``vault_obj``. The filesystem reopens the vault if used again."""
        vault, self._open_vault = self._open_vault, None
        self._opening = None
        if vault is None:
            return
        try:
            if vault.pending:
                if self.commit_mode == "close":
                    await vault.commit()
                else:
                    warnings.warn("sigmavault: closing with uncommitted edits (commit='manual'); they are dropped",
                                  stacklevel=2)
        finally:
            if self._given is None:
                await vault.aclose()

    def close(self) -> None:
        """:meth:`aclose` from synchronous code."""
        sync(self.loop, self.aclose)

    # --- reads ---------------------------------------------------------------------------------

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            return entry(p, await vault.stat(p))

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            st = await vault.stat(p)
            stats = await vault.ls(p) if st.type == "dir" else [st]
        out = [entry(posixpath.join(p, s.name) if st.type == "dir" else p, s) for s in stats]
        return out if detail else [e["name"] for e in out]

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            await self._info(path)
        except FileNotFoundError:
            return False
        return True

    async def _isdir(self, path: str) -> bool:
        try:
            return bool((await self._info(path))["type"] == "directory")
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def _isfile(self, path: str) -> bool:
        try:
            return bool((await self._info(path))["type"] == "file")
        except (FileNotFoundError, NotADirectoryError):
            return False

    async def _size(self, path: str) -> int:
        return int((await self._info(path))["size"])

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The file's bytes ``[start, end)`` (negative: from the end), through the vault's ranged read."""
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            if start is None and end is None:
                return await vault.read_bytes(p)
            size = (await vault.stat(p)).size
            first = 0 if start is None else (max(0, size + start) if start < 0 else start)
            last = size if end is None else (size + end if end < 0 else min(end, size))
            return await vault.read_bytes(p, first, max(0, last - first))

    async def _get_file(self, rpath: str, lpath: str, callback: Any = DEFAULT_CALLBACK, **kwargs: Any) -> None:
        """Stream a vault file to the local ``lpath`` piece by piece (a directory: made locally)."""
        p = self._strip_protocol(rpath)
        vault = await self._vault()
        with translated():
            st = await vault.stat(p)
            if st.type == "dir":
                await asyncio.to_thread(os.makedirs, lpath, exist_ok=True)
                return
            callback.set_size(st.size)
            f = await asyncio.to_thread(open, lpath, "wb")
            try:
                async for piece in vault.open_read(p):
                    await asyncio.to_thread(f.write, piece)
                    callback.relative_update(len(piece))
            except BaseException:
                await asyncio.to_thread(f.close)
                with contextlib.suppress(OSError):
                    os.unlink(lpath)  # no truncated copy under the real name
                raise
            await asyncio.to_thread(f.close)

    # --- writes --------------------------------------------------------------------------------

    async def _pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            await self._check_target(vault, p, create=mode == "create")
            await vault.put(p, bytes(value))
        await self._changed()

    async def _put_file(self, lpath: str, rpath: str, callback: Any = DEFAULT_CALLBACK, mode: str = "overwrite",
                        **kwargs: Any) -> None:
        """Store the local file ``lpath`` at ``rpath``, streamed (a local directory: made in the vault)."""
        p = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            await self._makedirs(p, exist_ok=True)
            return
        vault = await self._vault()
        with translated():
            await self._check_target(vault, p, create=mode == "create")
            st = await vault.put(p, lpath)
        callback.set_size(st.size)
        callback.relative_update(st.size)
        await self._changed()

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy inside the vault, streamed through the read and write routes (a directory: made)."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        vault = await self._vault()
        with translated():
            if (await vault.stat(src)).type == "dir":
                await vault.mkdir(dst, parents=True, exist_ok=True)
            else:
                await self._check_target(vault, dst, create=False)
                await vault.put(dst, vault.open_read(src))
        await self._changed()

    async def _check_target(self, vault: Vault, p: str, *, create: bool) -> None:
        """Fail before any upload: ``p`` a directory, its parent a file, or (``create``) ``p`` taken."""
        with contextlib.suppress(sigmavault.NotFound):
            st = await vault.stat(p)
            if st.type == "dir":
                raise sigmavault.IsADirectory(f"{p} is a directory")
            if create:
                raise sigmavault.AlreadyExists(f"{p} already exists")
        with contextlib.suppress(sigmavault.NotFound):
            parent = posixpath.dirname(p)
            if (await vault.stat(parent)).type != "dir":
                raise sigmavault.NotADirectory(f"{parent} is not a directory")

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            await vault.mkdir(p, parents=create_parents)
        await self._changed()

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        p = self._strip_protocol(path)
        vault = await self._vault()
        if p == "/":
            if exist_ok:
                return
            raise FileExistsError(f"{p} already exists")
        with translated():
            await vault.mkdir(p, parents=True, exist_ok=exist_ok)
        await self._changed()

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        p = self._strip_protocol(path)
        vault = await self._vault()
        with translated():
            if (await vault.stat(p)).type == "dir":
                raise sigmavault.IsADirectory(f"{p} is a directory")
            await vault.rm(p)
        await self._changed()

    async def _rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None,
                  **kwargs: Any) -> None:
        """Remove files and directories (a non-empty one only with ``recursive``); globs expand."""
        vault = await self._vault()
        named = self._strip_protocol(path if isinstance(path, list) else [path])
        if maxdepth is None and not any(_magic(p) for p in named):
            targets = sorted(set(named), reverse=True)  # no walk: the vault removes a tree in one step
        else:
            targets = sorted(await self._expand_path(path, recursive=recursive, maxdepth=maxdepth), reverse=True)
        gone: list[str] = []
        with translated():
            for p in targets:
                if any(p.startswith(g.rstrip("/") + "/") for g in gone):
                    continue
                try:
                    await vault.rm(p, recursive=recursive)
                except sigmavault.NotFound:
                    if not any(p.startswith(t.rstrip("/") + "/") for t in targets if t != p):
                        raise
                if recursive:
                    gone.append(p)
        await self._changed()

    async def _mv(self, path1: str | list[str], path2: str | list[str], recursive: bool = False,
                  maxdepth: int | None = None, **kwargs: Any) -> None:
        """Move or rename inside the vault (no copy); into ``path2`` when it is an existing directory."""
        if isinstance(path1, list) or isinstance(path2, list):
            if not (isinstance(path1, list) and isinstance(path2, list)) or len(path1) != len(path2):
                raise ValueError("mv of lists needs two lists of the same length")
            for a, b in zip(path1, path2):
                await self._mv_one(a, b)
        else:
            await self._mv_one(path1, path2)
        await self._changed()

    async def _mv_one(self, path1: str, path2: str) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if src == dst:
            return
        vault = await self._vault()
        with translated():
            if await self._isdir(dst):
                dst = posixpath.join(dst, posixpath.basename(src))
            await vault.mkdir(posixpath.dirname(dst) or "/", parents=True, exist_ok=True)
            await vault.mv(src, dst)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Move or rename inside the vault: a catalog change, no bytes copied."""
        sync(self.loop, self._mv, path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    # --- open ----------------------------------------------------------------------------------

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> VaultReadFile | VaultWriteFile:
        p = self._strip_protocol(path)
        if mode == "ab":
            raise NotImplementedError("sigmavault: append mode 'ab' is not supported (write the whole file with 'wb')")
        if mode not in ("rb", "wb", "xb"):
            raise ValueError(f"sigmavault: unsupported file mode {mode!r} (use rb, wb or xb)")
        vault = sync(self.loop, self._vault)
        size = block_size or vault.chunk_size
        if mode == "rb":
            source = sync(self.loop, self._open_source, vault, p)
            return VaultReadFile(self, p, source, block_size=size, cache_options=cache_options, **kwargs)
        sync(self.loop, self._check_write, vault, p, mode == "xb")
        return VaultWriteFile(self, p, mode, block_size=size, **kwargs)

    async def _open_source(self, vault: Vault, p: str) -> Any:
        with translated():
            return await vault.open(p)

    async def _check_write(self, vault: Vault, p: str, create: bool) -> None:
        with translated():
            await self._check_target(vault, p, create=create)


def _magic(path: str) -> bool:
    return any(c in path for c in "*?[")
