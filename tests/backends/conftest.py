"""Session fixtures: one SeaweedFS and one Azurite on 127.0.0.1 for the whole test session.

``s3_server`` / ``azure_server`` yield the running server (endpoint, credentials, and
``new_bucket()`` / ``new_container()`` to get a fresh empty namespace per test). Tests that kill
or restart a server start their own with ``servers.SeaweedServer(root=tmp_path)`` so they never
disturb the shared ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import AzuriteServer, SeaweedServer, running


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(root=tmp_path_factory.mktemp("seaweedfs"))
    with running(server):
        yield server


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    server = AzuriteServer(root=tmp_path_factory.mktemp("azurite"))
    with running(server):
        yield server
