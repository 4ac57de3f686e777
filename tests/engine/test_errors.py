"""The error tree carries, per class, what the mount answers; one rule unwraps exception groups."""

from __future__ import annotations

import asyncio
import errno

import pytest

from sigmavault.engine import errors
from sigmavault.engine.errors import VaultError, first_error

#: what a FUSE request failing with each class answers (the class, not its message, decides)
EXPECTED = {
    "VaultError": errno.EIO,
    "UsageError": errno.EINVAL,
    "NotADirectory": errno.ENOTDIR,
    "IsADirectory": errno.EISDIR,
    "DirectoryNotEmpty": errno.ENOTEMPTY,
    "AuthError": errno.EACCES,
    "NotFound": errno.ENOENT,
    "VaultNotFound": errno.ENOENT,
    "AlreadyExists": errno.EEXIST,
    "IntegrityError": errno.EIO,
    "RollbackError": errno.EIO,
    "ObjectMissing": errno.EIO,
    "BackendError": errno.EIO,
    "BackendUnavailable": errno.EIO,
    "EndpointUnreachable": errno.EIO,
    "BackendAuthError": errno.EACCES,
    "ObjectLocked": errno.EPERM,
    "LocalIOError": errno.EIO,
    "NoSpace": errno.ENOSPC,
    "ConcurrencyError": errno.EBUSY,
    "LockedError": errno.ENOKEY,
    "Interrupted": errno.EINTR,
}


def _tree(cls: type[VaultError]) -> list[type[VaultError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_tree(sub))
    return out


def test_every_error_class_carries_a_sensible_errno() -> None:
    classes = {c.__name__: c for c in _tree(VaultError) if c.__module__ == errors.__name__}
    assert set(classes) == set(EXPECTED), "a new error class needs its errno here (and in errors.py's tree)"
    for name, cls in classes.items():
        assert cls.errno == EXPECTED[name], name
        assert cls.errno in errno.errorcode and cls.errno != 0
        assert cls("any message").errno == EXPECTED[name]  # instances read it from the class


def test_errno_follows_the_class_not_the_message() -> None:
    assert errors.LocalIOError("the disk is full").errno == errno.EIO
    assert errors.NoSpace("whatever it says").errno == errno.ENOSPC
    assert errors.UsageError("is not a directory").errno == errno.EINVAL


def test_the_subclasses_keep_their_parents_exit_codes() -> None:
    for cls in (errors.NotADirectory, errors.IsADirectory, errors.DirectoryNotEmpty):
        assert issubclass(cls, errors.UsageError) and cls.exit_code == errors.UsageError.exit_code
    assert issubclass(errors.NoSpace, errors.LocalIOError) and errors.NoSpace.exit_code == 11


def test_the_tree_raises_its_specific_classes() -> None:
    from sigmavault.engine.catalog.tree import Dir, File, Meta, Tree

    async def go() -> None:
        async def load(d: Dir) -> dict[bytes, File | Dir]:
            return {}

        tree = Tree(Dir(Meta.now(0o755), children={}), load)  # type: ignore[arg-type]
        await tree.put([b"f"], File(Meta.now(0o644), 0))
        await tree.mkdir([b"d"])
        await tree.mkdir([b"d", b"e"])
        with pytest.raises(errors.NotADirectory):
            await tree.mkdir([b"f", b"x"])
        with pytest.raises(errors.DirectoryNotEmpty):
            await tree.remove([b"d"])

    asyncio.run(go())


# --- the one ExceptionGroup unwrapper --------------------------------------------------------


def test_first_error_is_the_first_leaf_depth_first() -> None:
    a, b, c = ValueError("a"), KeyError("b"), errors.NotFound("c")
    assert first_error(a) is a  # not a group: itself
    assert first_error(BaseExceptionGroup("g", [a, b])) is a
    assert first_error(BaseExceptionGroup("g", [BaseExceptionGroup("inner", [b, c]), a])) is b


def test_first_error_skips_cancellations() -> None:
    cancel, real = asyncio.CancelledError(), errors.IntegrityError()
    assert first_error(BaseExceptionGroup("g", [cancel, real])) is real
    nested = BaseExceptionGroup("g", [BaseExceptionGroup("inner", [cancel]), BaseExceptionGroup("x", [real])])
    assert first_error(nested) is real


def test_a_group_of_only_cancellations_gives_the_first_cancellation() -> None:
    c1, c2 = asyncio.CancelledError("one"), asyncio.CancelledError("two")
    assert first_error(BaseExceptionGroup("g", [BaseExceptionGroup("i", [c1]), c2])) is c1


def test_first_error_from_a_real_task_group() -> None:
    async def fail(exc: BaseException, delay: float) -> None:
        await asyncio.sleep(delay)
        raise exc

    async def go() -> BaseException:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fail(errors.NotFound("first"), 0))
                tg.create_task(fail(errors.IntegrityError(), 0))
                tg.create_task(asyncio.sleep(10))  # cancelled by the failure
        except BaseExceptionGroup as eg:
            return first_error(eg)
        raise AssertionError("no error")

    got = asyncio.run(go())
    assert isinstance(got, errors.NotFound) and got.message == "first"


def test_every_unwrapper_is_the_one_in_errors() -> None:
    from sigmavault.actors import stage
    from sigmavault.cli import main
    from sigmavault.engine.content import pipeline

    assert pipeline.first_error is first_error
    assert vars(stage)["first_error"] is first_error
    assert vars(main)["first_error"] is first_error
