"""Settings from the environment: with `app.telemetry_settings`, the only place that reads it.

Temporal connection settings (address, namespace, API key, TLS, profiles)
are Temporal's own environment configuration, read by the SDK's
`temporalio.envconfig`; the rest is ours. The worker's logs and metrics
endpoint are read in `app.telemetry_settings`, before these.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from app.codec_tokens import SHARED_PERSON, InvalidCodecTokens, named_tokens, strong_token
from app.keys import (
    InvalidKeyRing,
    KeyRing,
    generate_ring,
    read_key_file,
    write_key_file,
)
from app.logs import status
from app.private_files import UnsafeFile, read_private_file, secure_data_dir, write_private_file
from ledger import DEFAULT_CURRENCY, LedgerStore, UnknownCurrency, open_store, validate_currency
from workflows.banks import DEFAULT_TASK_QUEUE, InvalidBankName, bank_of, validate_bank_name

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_UI_PORT = 8233
DEFAULT_CODEC_PORT = 8234
#: The checkout this code runs from: `worker.py`, `starter.py` and `pyproject.toml` are there.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
KEY_FILE_NAME = "encryption-keys"
CODEC_TOKEN_FILE_NAME = "codec-token"
#: A bank's clearing account holds its transfers in flight and, net, what it
#: owes or is owed by the other banks for completed cross-bank transfers.
BANK_CLEARING_OWNER = "Clearing and settlement"
logger = logging.getLogger(__name__)


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Where state is kept without TRANSFER_DATA_DIR: an absolute path, never the cwd's.

    ``.data`` in the project checkout, whichever directory a command runs
    in, so a ``.data/`` planted where someone happens to run it is never
    read. Installed without a checkout (a wheel), the user's data directory:
    ``$XDG_DATA_HOME/saga-transfer``, by default ``~/.local/share/saga-transfer``.
    """
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".data"
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "saga-transfer"


DATA_DIR = default_data_dir(os.environ)


@dataclass(frozen=True)
class Settings:
    """What the worker and the starter need besides the Temporal connection.

    Attributes:
        ledger_url: ``LEDGER_URL``: which ledger store (default a SQLite file
            under ``.data/``).
        task_queue: ``TEMPORAL_TASK_QUEUE``: where transfers run.
        ui_url: ``TEMPORAL_UI_URL``: the Web UI, for links printed to people.
        data_dir: ``TRANSFER_DATA_DIR``: where the embedded dev server, the
            default ledger and the key and token files live (default
            `default_data_dir`; kept owner-only, see `app.private_files`).
    """

    #: Kept out of repr: it may carry a password (shown redacted by the stores).
    ledger_url: str = field(repr=False)
    task_queue: str
    ui_url: str
    data_dir: Path = DATA_DIR
    #: ``TRANSFER_BANKS``: the banks served (``north,south``); empty for the
    #: single-bank setup, where one ledger holds every account.
    banks: tuple[str, ...] = ()
    #: Each bank's ledger: ``LEDGER_URL_<BANK>``, else ``LEDGER_URL`` with
    #: ``{bank}`` in it, else ``sqlite:///<data dir>/ledger-<bank>.db``.
    bank_ledger_urls: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: ``TRANSFER_ENCRYPTION``: ``on`` (default) encrypts every payload sent
    #: to Temporal; ``off`` sends them in plain text.
    encryption: bool = True
    #: ``TRANSFER_ENCRYPTION_KEYS``: ``id:base64`` keys, newest first (kept
    #: out of repr: it is secret).
    encryption_keys: str = field(default="", repr=False)
    #: ``TRANSFER_ENCRYPTION_KEY_FILE``: the key file read when
    #: TRANSFER_ENCRYPTION_KEYS is unset (default ``<data dir>/encryption-keys``).
    key_file: Path = DATA_DIR / KEY_FILE_NAME
    #: ``TRANSFER_CODEC_URL``: where the codec server is reached by the Web UI.
    codec_url: str = f"http://localhost:{DEFAULT_CODEC_PORT}"
    #: ``TRANSFER_CODEC_TOKEN``: the bearer token the codec server accepts
    #: (default: the one in ``<data dir>/codec-token``; kept out of repr).
    codec_token: str = field(default="", repr=False)
    #: ``TRANSFER_CODEC_TOKENS``: ``name:token,...``, a token per person
    #: (instead of the shared one; kept out of repr).
    codec_tokens_text: str = field(default="", repr=False)
    #: ``TRANSFER_CODEC_TOKENS_FILE``: the same, one ``name:token`` a line.
    codec_tokens_file: str = ""
    #: ``LEDGER_CURRENCY``: the ISO 4217 currency of accounts opened without
    #: ``--currency``, and of everything a ledger held before it knew
    #: currencies when `migrate` upgrades it (default USD).
    ledger_currency: str = DEFAULT_CURRENCY

    @property
    def multi_bank(self) -> bool:
        """Whether several banks (each with its own ledger and worker) are served."""
        return bool(self.banks)

    def bank_of(self, account_id: str) -> str:
        """The bank of an account, told by its number (raises UnknownBank)."""
        return bank_of(account_id, self.banks)

    def require_bank(self, bank: str) -> str:
        """`bank` if this deployment serves it, else a ConfigError naming those it does."""
        if not self.multi_bank:
            raise ConfigError(
                "No banks are configured (TRANSFER_BANKS): one ledger holds every account"
            )
        if bank not in self.banks:
            raise ConfigError(
                f"Unknown bank {bank!r}: TRANSFER_BANKS serves {', '.join(self.banks)}"
            )
        return bank

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings, falling back to the embedded defaults.

        Raises:
            ConfigError: A bank name is malformed, or the banks' ledgers
                would be one database.
        """
        env = os.environ if env is None else env
        # An explicit relative TRANSFER_DATA_DIR is the user's own choice and
        # means the current directory, as any path typed on a command line.
        data_dir = Path(env.get("TRANSFER_DATA_DIR") or default_data_dir(env))
        banks = _banks(env.get("TRANSFER_BANKS", ""))
        return cls(
            banks=banks,
            bank_ledger_urls={bank: _bank_ledger_url(env, bank, data_dir) for bank in banks},
            ledger_url=env.get("LEDGER_URL") or _sqlite_url(data_dir / "ledger.db"),
            task_queue=env.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            ui_url=(env.get("TEMPORAL_UI_URL") or f"http://localhost:{DEFAULT_UI_PORT}").rstrip(
                "/"
            ),
            data_dir=data_dir,
            encryption=_switch(env, "TRANSFER_ENCRYPTION"),
            encryption_keys=env.get("TRANSFER_ENCRYPTION_KEYS", "").strip(),
            key_file=Path(env.get("TRANSFER_ENCRYPTION_KEY_FILE") or data_dir / KEY_FILE_NAME),
            codec_url=(
                env.get("TRANSFER_CODEC_URL") or f"http://localhost:{DEFAULT_CODEC_PORT}"
            ).rstrip("/"),
            codec_token=env.get("TRANSFER_CODEC_TOKEN", "").strip(),
            codec_tokens_text=env.get("TRANSFER_CODEC_TOKENS", "").strip(),
            codec_tokens_file=env.get("TRANSFER_CODEC_TOKENS_FILE", "").strip(),
            ledger_currency=_currency(env.get("LEDGER_CURRENCY") or DEFAULT_CURRENCY),
        )

    @property
    def has_keys(self) -> bool:
        """Whether encryption keys are configured (or encryption is off, needing none)."""
        return not self.encryption or bool(self.encryption_keys) or self.key_file.exists()

    def key_ring(self, *, create: bool = False) -> KeyRing | None:
        """The encryption keys, or None with TRANSFER_ENCRYPTION=off.

        From TRANSFER_ENCRYPTION_KEYS, else the key file. With `create` (the
        embedded dev setup) a missing key file is created with one new key.

        Raises:
            ConfigError: Encryption is on and no key is configured, or the
                keys are malformed (the message never shows key material).
        """
        if not self.encryption:
            return None
        try:
            if self.encryption_keys:
                return KeyRing.parse(self.encryption_keys, source="TRANSFER_ENCRYPTION_KEYS")
            if self.key_file.exists():
                return read_key_file(self.key_file)
        except InvalidKeyRing as err:
            raise ConfigError(str(err)) from None
        if not create:
            raise ConfigError(
                "Payload encryption is on but no key is configured: set "
                "TRANSFER_ENCRYPTION_KEYS or TRANSFER_ENCRYPTION_KEY_FILE (create a key file "
                f"with `python starter.py keys new`; {self.key_file} is read by default), "
                "or set TRANSFER_ENCRYPTION=off"
            )
        ring = generate_ring()
        write_key_file(self.key_file, ring)
        status(
            logger,
            f"Generated encryption key {ring.current} in {self.key_file} (owner-only). "
            "Keep it: what Temporal stored under it is unreadable without it.",
        )
        return ring

    def codec_token_value(self, *, create: bool = False) -> str:
        """The codec server's bearer token: TRANSFER_CODEC_TOKEN, else the token file.

        With `create` a missing token file is created with a random token.

        Raises:
            ConfigError: No token is configured, or the token file is not
                owner-only and this user's.
        """
        if self.codec_token:
            return _strong(self.codec_token, "TRANSFER_CODEC_TOKEN")
        path = self.data_dir / CODEC_TOKEN_FILE_NAME
        if path.exists():
            try:
                token = read_private_file(path, "codec token file").strip()
            except UnsafeFile as err:
                raise ConfigError(str(err)) from None
            except OSError as err:
                raise ConfigError(f"cannot read codec token file {path}: {err.strerror}") from None
            if token:
                return _strong(token, str(path))
        if not create:
            raise ConfigError(
                f"The codec server needs a bearer token: set TRANSFER_CODEC_TOKEN or put one in "
                f"{path} (`python starter.py codec-server --new-token` creates it)"
            )
        token = secrets.token_urlsafe(32)
        write_private_file(path, token + "\n")
        return token

    def codec_tokens(self, *, create: bool = False) -> dict[str, str]:
        """The codec server's tokens by person (app/codec_tokens.py).

        TRANSFER_CODEC_TOKENS or TRANSFER_CODEC_TOKENS_FILE, else the shared
        token (`codec_token_value`, `create` as there) held by `SHARED_PERSON`.

        Raises:
            ConfigError: The tokens are malformed, weak or ambiguous, or set
                more than one way (the message never shows a token).
        """
        try:
            named = named_tokens(
                tokens=self.codec_tokens_text,
                tokens_file=self.codec_tokens_file,
                shared=self.codec_token,
            )
        except InvalidCodecTokens as err:
            raise ConfigError(str(err)) from None
        return named or {SHARED_PERSON: self.codec_token_value(create=create)}

    def secure_data_dir(self) -> str | None:
        """Close a data directory others can enter; one line saying so, or None.

        Raises:
            ConfigError: It is open to others and not this user's to close.
        """
        try:
            return secure_data_dir(self.data_dir)
        except UnsafeFile as err:
            raise ConfigError(str(err)) from None

    def bank_ledger_url(self, bank: str) -> str:
        """The ledger of one bank."""
        return self.bank_ledger_urls[self.require_bank(bank)]

    def open_ledger(self, bank: str | None = None) -> LedgerStore:
        """The one ledger (no `bank`), or one bank's; PostgreSQL's must be migrated (`migrate`)."""
        if bank is None:
            return open_store(self.ledger_url, currency=self.ledger_currency)
        return open_store(
            self.bank_ledger_url(bank),
            clearing_owner=BANK_CLEARING_OWNER,
            currency=self.ledger_currency,
        )

    def workflow_url(self, namespace: str, workflow_id: str) -> str:
        """The Web UI page of one workflow."""
        return (
            f"{self.ui_url}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id, safe='')}"
        )


class ConfigError(ValueError):
    """The environment asks for something inconsistent."""


def _currency(code: str) -> str:
    """``LEDGER_CURRENCY``, if it is a currency the ledger keeps (ConfigError, one line)."""
    try:
        return validate_currency(code)
    except UnknownCurrency as err:
        raise ConfigError(f"LEDGER_CURRENCY: {err}") from None


def _switch(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "on").strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, not {value!r}")


def _banks(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        banks = tuple(validate_bank_name(name) for name in names)
    except InvalidBankName as err:
        raise ConfigError(f"TRANSFER_BANKS: {err}") from err
    if len(set(banks)) != len(banks):
        raise ConfigError(f"TRANSFER_BANKS names a bank twice: {text}")
    return banks


def _strong(token: str, source: str) -> str:
    try:
        return strong_token(token, source)
    except InvalidCodecTokens as err:
        raise ConfigError(str(err)) from None


def _bank_ledger_url(env: Mapping[str, str], bank: str, data_dir: Path) -> str:
    own = env.get(f"LEDGER_URL_{bank.upper()}")
    if own:
        return own
    shared = env.get("LEDGER_URL")
    if shared:
        if "{bank}" not in shared:
            raise ConfigError(
                "With TRANSFER_BANKS each bank needs a ledger of its own: put {bank} in "
                f"LEDGER_URL (such as ?schema=bank_{{bank}}) or set LEDGER_URL_{bank.upper()}"
            )
        return shared.replace("{bank}", bank)
    return _sqlite_url(data_dir / f"ledger-{bank}.db")


def _sqlite_url(path: Path) -> str:
    """``sqlite:///path``, quoted: a checkout's path may hold '#', '?' or '%'."""
    return f"sqlite:///{quote(str(path))}"
