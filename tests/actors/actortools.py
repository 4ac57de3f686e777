"""Test helpers for actors: wire stages in a TaskGroup (the engine's pipeline does this for real)."""

from __future__ import annotations

import asyncio
from typing import Any

from sigmavault.actors.stage import Stage
from sigmavault.engine.errors import first_error


async def run_pipeline(*stages: Stage[Any, Any]) -> None:
    """Run every stage in one TaskGroup; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            for stage in stages:
                tg.create_task(stage(), name=stage.name)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
