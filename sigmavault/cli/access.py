"""Getting into a vault from the command line: which vault, which credential, the agent first.

Vault: ``--vault URL`` (repeatable), else ``SIGMAVAULT_VAULT``, else the default local vault under
the data directory; a value that names a vault in ``vaults.toml`` stands for its places (:mod:`.named`).
Credential, in this order: the unlock agent (if it holds the KSK of the vault this device has
pinned; a dispersed vault's pin is found by its vault id, read from its places), this device's
key (if it has a device slot in the vault, and the vault is pinned or ``--fingerprint`` given),
then the credential named: ``--recovery-code`` / ``--recovery-code-file``, ``--identity-file``
(an age ``AGE-SECRET-KEY-PQ-1…`` identity for a recipient slot), else a passphrase from
``--passphrase-file`` (``-`` = stdin), ``SIGMAVAULT_PASSPHRASE`` or a prompt on the terminal.
If this device has a device secret, the passphrase goes with it (two-factor slots open too).
Nothing here ever prints or logs a secret.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import sigmavault

from .. import AuthError, IntegrityError, LocalIOError, NotFound, UsageError, VaultNotFound, config, named
from .. import _internal as internal
from .._internal import Credential, Passphrase, RecoveryCode, TwoFactor, XwingKey, passphrase_from_file, secret_env
from . import agent_client
from .agent import socket_path

MAX_SECRET_FILE = 64 * 1024
TRIES = 3  # a passphrase typed at a prompt is asked again this often in all
NO_TERMINAL = "no passphrase given: use --passphrase-file, SIGMAVAULT_PASSPHRASE or run in a terminal"


@dataclass(frozen=True)
class Options:
    """The global options every command shares (``vault``: the ``--vault`` values, in order)."""

    vault: tuple[str, ...] = ()
    json: bool = False
    debug: bool = False
    passphrase_file: str | None = None
    recovery_code: bool = False
    recovery_code_file: str | None = None
    identity_file: str | None = None
    fingerprint: str | None = None
    no_agent: bool = False
    single_writer: bool = False
    audit_host: bool = False
    write_quorum: int | None = None
    writer_credential: str | None = None

    @cached_property
    def places(self) -> list[str]:
        """The chosen vault's places: the ``--vault`` values, else ``SIGMAVAULT_VAULT``, else the
        default vault, with named vaults replaced by their URLs (read once per command); several:
        the places of a dispersed vault."""
        return named.resolve(self.vault or [config.default_vault()])

    @property
    def urls(self) -> list[str]:
        return self.places

    @property
    def url(self) -> str:
        """The vault's location for messages and local lookups (its places, joined, when dispersed)."""
        return ", ".join(self.places)

    @property
    def target(self) -> str | list[str]:
        """What ``sigmavault.open``/``create`` take: one URL, or the list of places."""
        return self.places if len(self.places) > 1 else self.places[0]

    @property
    def is_default(self) -> bool:
        return not self.vault and not os.environ.get("SIGMAVAULT_VAULT")


def _read_secret_file(name: str, what: str) -> bytes:
    try:
        if name == "-":
            return sys.stdin.buffer.read(MAX_SECRET_FILE)
        with open(name, "rb") as f:
            return f.read(MAX_SECRET_FILE)
    except FileNotFoundError:
        raise NotFound(f"{what} file {name}: no such file") from None
    except OSError as exc:
        raise LocalIOError(f"cannot read the {what} file {name}: {exc.strerror}") from exc


def notice(text: str) -> None:
    """A one-line remark from the engine (a new pin, state set aside): stderr, also in JSON mode.
    A remark that starts with ``warning:`` (a degraded dispersed vault) is written as a warning."""
    kind, _, rest = text.partition(": ")
    sys.stderr.write(f"sigmavault: warning: {rest}\n" if kind == "warning" else f"sigmavault: note: {text}\n")
    sys.stderr.flush()


def interactive(opts: Options) -> bool:
    """Whether the passphrase will come from a prompt (so a wrong one may be typed again)."""
    return not opts.passphrase_file and secret_env("SIGMAVAULT_PASSPHRASE") is None and sys.stdin.isatty()


def _prompt(text: str, missing: type[AuthError] | type[UsageError] = AuthError) -> str:
    if not sys.stdin.isatty():
        raise missing(NO_TERMINAL)
    return getpass.getpass(text)


def passphrase(opts: Options, *, confirm: bool = False) -> Passphrase:
    """The passphrase from the file, the environment or a prompt (asked twice when ``confirm``)."""
    if opts.passphrase_file:
        return Passphrase(passphrase_from_file(_read_secret_file(opts.passphrase_file, "passphrase")))
    env = secret_env("SIGMAVAULT_PASSPHRASE")
    if env is not None:
        return Passphrase.of(env)
    return ask_new_passphrase("Passphrase: ") if confirm else Passphrase.of(_prompt("Passphrase: "))


def ask_new_passphrase(label: str, file: str | None = None) -> Passphrase:
    """A new passphrase from ``file`` or typed twice on the terminal (up to three tries).

    UsageError if empty or mismatched (three times), or if there is no terminal to ask on.
    """
    if file:
        new = Passphrase(passphrase_from_file(_read_secret_file(file, "passphrase")))
        if not len(new.secret):
            raise UsageError("the passphrase must not be empty")
        return new
    for attempt in range(1, TRIES + 1):
        first = _prompt(label, UsageError)
        if not first:
            problem = "the passphrase must not be empty"
        elif first != _prompt("Repeat: ", UsageError):
            problem = "the two passphrases differ"
        else:
            return Passphrase.of(first)
        if attempt == TRIES:
            raise UsageError(f"{problem}; nothing was changed")
        sys.stderr.write(f"{problem}; try again\n")
    raise AssertionError("unreachable")


def credential(opts: Options) -> Credential:
    if opts.recovery_code or opts.recovery_code_file:
        if opts.recovery_code_file:
            text = _read_secret_file(opts.recovery_code_file, "recovery code").decode("ascii", "replace")
        else:
            text = secret_env("SIGMAVAULT_RECOVERY_CODE") or _prompt("Recovery code: ")
        try:
            return RecoveryCode.parse(text)
        except IntegrityError:
            raise AuthError("this is not a valid recovery code (check for typos)") from None
    if opts.identity_file:
        text = _read_secret_file(opts.identity_file, "identity").decode("ascii", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        try:
            return XwingKey(internal.parse_identity(lines[0] if lines else ""))
        except IntegrityError:
            raise AuthError("the identity file holds no AGE-SECRET-KEY-PQ-1… identity") from None
    return with_device(passphrase(opts))


def with_device(pw: Passphrase) -> Credential:
    """The passphrase, with this device's second factor if it has one (two-factor slots open too)."""
    device = internal.device_secret()
    return TwoFactor(pw, device) if device is not None else pw


async def from_agent(url: str | list[str], *, fingerprint: str | None = None, single_writer: bool = False,
                     on_notice: Callable[[str], None] | None = None,
                     write_quorum: int | None = None) -> sigmavault.Vault | None:
    """The vault at ``url`` (or over several places: a dispersed vault, pinned by its vault id)
    opened with the key the unlock agent holds for it, or None (no pin, no agent, no key, or a key
    that no longer fits because the keys rotated)."""
    if not isinstance(url, str) and not socket_path().exists():
        return None  # no agent: spare a dispersed vault the keystore read its pin lookup needs
    pin = await internal.pinned(url)
    got = await agent_client.fetch(pin.fingerprint) if pin is not None else None
    if got is None:
        return None
    try:
        return await sigmavault.open(url, ksk=got[0], ksk_slot=got[1], fingerprint=fingerprint,
                                     single_writer=single_writer, on_notice=on_notice, write_quorum=write_quorum)
    except AuthError:
        return None


async def probe(opts: Options) -> None:
    """Fail early (before any prompt) for a bad URL or a missing vault, saying what to do."""
    if len(opts.urls) > 1:
        return  # a dispersed vault: opening reads its keystore by majority and says what is wrong
    if not await internal.has_vault(opts.url):
        if opts.is_default:
            raise VaultNotFound(f"there is no default vault yet (at {opts.url}): create it with `sigmavault create`, "
                                "or choose a vault with --vault URL or SIGMAVAULT_VAULT")
        raise VaultNotFound(f"no vault at {opts.url}: check the URL, or create one with `sigmavault create`")


async def open_vault(opts: Options, *, use_agent: bool = True) -> sigmavault.Vault:
    """Open and unlock the chosen vault: the agent's key if it has one, else the credential."""
    await probe(opts)
    vault = await without_asking(opts) if use_agent else None
    return vault if vault is not None else (await unlock(opts))[0]


async def without_asking(opts: Options) -> sigmavault.Vault | None:
    """The vault opened with the agent's key, else this device's key (unless a credential is named),
    or None: then the credential must be asked for."""
    explicit = opts.recovery_code or opts.recovery_code_file or opts.identity_file
    vault = None
    if not opts.no_agent and not explicit:
        vault = await from_agent(opts.target, fingerprint=opts.fingerprint, single_writer=opts.single_writer,
                                 on_notice=notice, write_quorum=opts.write_quorum)
    if vault is None and not explicit and not opts.passphrase_file:
        vault = await from_device(opts)
    return None if vault is None else _one_generation(vault, opts)


async def from_device(opts: Options) -> sigmavault.Vault | None:
    """The vault opened with this device's key, or None (no device key, no device slot for it, or no
    pin: a public-key slot never pins a vault on first use)."""
    device = internal.device_key()
    if device is None or (opts.fingerprint is None and await internal.pinned(opts.target) is None):
        return None
    try:
        return await sigmavault.open(opts.target, credential=device, fingerprint=opts.fingerprint,
                                     single_writer=opts.single_writer, on_notice=notice,
                                     write_quorum=opts.write_quorum)
    except AuthError:
        return None


async def unlock(opts: Options) -> tuple[sigmavault.Vault, Credential]:
    """Open the vault with the user's credential, asking again (up to three times) for a mistyped
    passphrase; returns the vault and the credential that opened it."""
    prompted = interactive(opts) and not (opts.recovery_code or opts.recovery_code_file or opts.identity_file)
    for attempt in range(1, TRIES + 1):
        cred = credential(opts)  # not in a thread: Ctrl-C at a prompt must not wait for the prompt to return
        try:
            vault = await sigmavault.open(opts.target, credential=cred, fingerprint=opts.fingerprint,
                                          single_writer=opts.single_writer, on_notice=notice,
                                          write_quorum=opts.write_quorum)
            return _one_generation(vault, opts), cred
        except AuthError:
            if not prompted or attempt == TRIES:
                raise
            sys.stderr.write("wrong passphrase; try again\n")
    raise AssertionError("unreachable")


def _one_generation(vault: sigmavault.Vault, opts: Options) -> sigmavault.Vault:
    """A command reads the generation it opened (an export never mixes two); the mount refreshes itself.
    Its commits record the host name only with ``--audit-host``."""
    vault.refresh_interval = None
    vault.audit_host = opts.audit_host
    return vault
