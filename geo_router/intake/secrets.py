"""Secrets: the HMAC pepper for phone lookups and the Fernet key for data at rest.

Nothing here logs a secret or a plaintext; errors name the setting or file, never the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets as _random
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from geo_router.errors import ConfigurationError
from geo_router.settings import SecretsSettings, StoreSettings

log = logging.getLogger(__name__)

#: Name of the generated file in the data dir (embedded default only).
SECRETS_FILENAME = "secrets.json"

#: What to do when secrets are missing: one command makes them.
SECRETS_INIT_HINT = (
    "make them with 'geo-router secrets init --file PATH' and set GEO_ROUTER_SECRETS_FILE=PATH "
    "(or GEO_ROUTER_PEPPER and GEO_ROUTER_ENCRYPTION_KEY)"
)

_PRODUCTION_MESSAGE = f"production refuses to start without secrets: {SECRETS_INIT_HINT}"

#: What the store's check values are HMACs of (under the pepper, under each Fernet key).
CHECK_LABEL = b"geo_router store secrets check v1"


def _split_keys(encryption_key: str) -> list[str]:
    """The comma-separated Fernet keys, first (the one that encrypts) first."""
    return [k.strip() for k in encryption_key.split(",") if k.strip()]


def _fernet(encryption_key: str, source: str) -> MultiFernet:
    """A MultiFernet from comma-separated keys: the first encrypts, all decrypt (rotation)."""
    keys = _split_keys(encryption_key)
    if not keys:
        raise ConfigurationError(f"{source}: the encryption key is empty")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, binascii.Error, TypeError):
        raise ConfigurationError(
            f"{source}: the encryption key is not a Fernet key (32 url-safe base64 bytes; "
            "make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)"
        ) from None


class Secrets:
    """Pepper and encryption keys.

    Parameters
    ----------
    pepper
        Secret HMAC key for phone lookups (at least 16 characters).
    encryption_key
        Fernet key, or several comma-separated (the first encrypts; older ones still decrypt).
    source
        Where they came from (for messages; never the values).
    file
        The secrets file they were read from (None: environment or arguments).
    bound_store
        The id of the store the secrets file is bound to (``store_id`` in the file), if any.
    """

    __slots__ = (
        "_fernet",
        "_pepper",
        "bound_store",
        "encryption_key",
        "file",
        "pepper",
        "source",
    )

    def __init__(
        self,
        pepper: str,
        encryption_key: str,
        *,
        source: str = "arguments",
        file: Path | None = None,
        bound_store: str | None = None,
    ) -> None:
        if not isinstance(pepper, str) or len(pepper) < 16:
            raise ConfigurationError(f"{source}: the pepper must have at least 16 characters")
        if not isinstance(encryption_key, str):
            raise ConfigurationError(f"{source}: the encryption key must be text")
        self.pepper = pepper
        self.encryption_key = encryption_key
        self.source = source
        self.file = file
        self.bound_store = bound_store
        self._pepper = pepper.encode("utf-8")
        self._fernet = _fernet(encryption_key, source)

    def __repr__(self) -> str:
        return f"Secrets(source={self.source!r})"  # never the values

    @classmethod
    def generate(cls, source: str = "generated") -> Secrets:
        """Fresh random secrets."""
        return cls(_random.token_urlsafe(32), Fernet.generate_key().decode("ascii"), source=source)

    @classmethod
    def load(cls, settings: SecretsSettings, store: StoreSettings) -> Secrets:
        """Secrets from the settings, a secrets file, or (embedded default) a generated file.

        Order: ``GEO_ROUTER_PEPPER`` + ``GEO_ROUTER_ENCRYPTION_KEY``; else
        ``GEO_ROUTER_SECRETS_FILE`` (JSON with ``pepper`` and ``encryption_key``); else, for the
        embedded SQLite database only, ``secrets.json`` in the store's data dir, created with
        mode 0600 on the first run and reused afterwards.

        Raises
        ------
        ConfigurationError
            Half-configured secrets, an unreadable secrets file, or nothing configured in
            production or with an external database.
        """
        if settings.pepper or settings.encryption_key:
            if not (settings.pepper and settings.encryption_key):
                missing = "GEO_ROUTER_ENCRYPTION_KEY" if settings.pepper else "GEO_ROUTER_PEPPER"
                raise ConfigurationError(
                    f"{missing} is not set: GEO_ROUTER_PEPPER and GEO_ROUTER_ENCRYPTION_KEY "
                    "go together"
                )
            return cls(settings.pepper, settings.encryption_key, source="environment")
        if settings.secrets_file is not None:
            return _read_file(settings.secrets_file)
        if settings.production:
            raise ConfigurationError(_PRODUCTION_MESSAGE)
        if store.external:
            # A file on one host must not become the only key to a shared database.
            raise ConfigurationError(
                f"an external database needs configured secrets: {SECRETS_INIT_HINT}"
            )
        return _read_or_create(store.data_dir / SECRETS_FILENAME, store.sqlite_path)

    def hash_phone(self, e164: str) -> str:
        """HMAC-SHA256 hex of a normalized number: the lookup key, useless without the pepper."""
        return hmac.new(self._pepper, e164.encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt(self, text: str) -> str:
        """Encrypt text (authenticated, Fernet); a fresh token every call."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by ``encrypt``.

        Raises
        ------
        ConfigurationError
            The token was made with another key (wrong or rotated-out encryption key) or is
            corrupt.
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError, binascii.Error):
            raise ConfigurationError(
                f"cannot decrypt stored data with the encryption key from {self.source}: "
                "wrong key, a key rotated out, or corrupt data"
            ) from None

    def to_json(self) -> str:
        """The secrets as the JSON a secrets file holds (with the store they are bound to)."""
        data = {"pepper": self.pepper, "encryption_key": self.encryption_key}
        if self.bound_store is not None:
            data["store_id"] = self.bound_store
        return json.dumps(data)

    def pepper_check(self) -> str:
        """HMAC of a fixed label under the pepper: tells a pepper apart, reveals nothing of it."""
        return hmac.new(self._pepper, CHECK_LABEL, hashlib.sha256).hexdigest()

    def key_checks(self) -> tuple[str, ...]:
        """HMAC of a fixed label under each Fernet key, the encrypting key first."""
        return tuple(
            hmac.new(base64.urlsafe_b64decode(key), CHECK_LABEL, hashlib.sha256).hexdigest()
            for key in _split_keys(self.encryption_key)
        )

    def bind(self, store_id: str) -> bool:
        """Record in the secrets file that it belongs to store ``store_id``.

        Returns False when there is no file (secrets from the environment) or it cannot be
        rewritten (read-only mount): the binding is a second line of defence, the store's own
        check values are the first.
        """
        if self.file is None:
            return False
        bound = Secrets(
            self.pepper,
            self.encryption_key,
            source=self.source,
            file=self.file,
            bound_store=store_id,
        )
        try:
            write_secrets_file(self.file, bound, replace=True)
        except OSError as exc:
            log.warning("cannot record the store id in %s: %s", self.file, exc.strerror)
            return False
        self.bound_store = store_id
        return True


def secrets_for_migration(settings: SecretsSettings, store: StoreSettings) -> Secrets | None:
    """The secrets for opening (migrating) a store, or None when none exist yet.

    Commands that do not otherwise need the secrets (keys, imports, ``db upgrade``) pass
    them to ``Store.open`` so that a migration which encrypts stored data (0006) can run;
    without them such a migration refuses a database holding that data, naming the fix.
    Unlike :meth:`Secrets.load` this never generates secrets: a store holding data already
    has them.
    """
    configured = settings.pepper or settings.encryption_key or settings.secrets_file
    try:
        if configured:
            return Secrets.load(settings, store)
        path = store.data_dir / SECRETS_FILENAME
        return _read_file(path) if not store.external and path.exists() else None
    except ConfigurationError:
        return None


def _read_file(path: Path) -> Secrets:
    """Secrets from a JSON file with ``pepper`` and ``encryption_key``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"secrets file {path} does not exist") from None
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"secrets file {path} is not readable JSON: {type(exc).__name__}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"secrets file {path}: expected a JSON object")
    for key in ("pepper", "encryption_key"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigurationError(f"secrets file {path}: key {key!r} is missing or not text")
    bound = data.get("store_id")
    if bound is not None and not isinstance(bound, str):
        raise ConfigurationError(f"secrets file {path}: key 'store_id' is not text")
    return Secrets(
        data["pepper"],
        data["encryption_key"],
        source=f"secrets file {path}",
        file=path,
        bound_store=bound,
    )


def _fsync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secrets_file(path: Path, secrets: Secrets, *, replace: bool = False) -> None:
    """Write ``secrets`` to ``path`` atomically: mode 0600, fsynced, then linked or renamed.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``replace`` is False (a concurrent first run won).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_random.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and refuses to overwrite
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def keep_previous_secrets_file(path: Path) -> Path:
    """Copy ``path`` beside itself as ``<name>.previous-<UTC time>`` (mode 0600); the copy."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = path.with_name(f"{path.name}.previous-{stamp}")
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(path.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_folder(path.parent)
    return kept


def write_new_secrets_file(path: Path) -> Secrets:
    """Create ``path`` (mode 0600, fsynced, atomically) holding fresh secrets.

    Raises
    ------
    FileExistsError
        ``path`` exists: it is never overwritten, since data encrypted with the secrets it holds
        could not be read again.
    """
    fresh = Secrets.generate(source=f"secrets file {path}")
    fresh.file = path
    write_secrets_file(path, fresh)
    return fresh


def _read_or_create(path: Path, database: Path) -> Secrets:
    """Reuse ``path`` or create it with fresh secrets, mode 0600, race-free.

    Never for a database that already holds data or was bound to secrets: new secrets could not
    read it, and would hide that the old ones are lost.
    """
    if path.exists():
        return _read_file(path)
    from geo_router.store.secrets_check import embedded_store_in_use

    if embedded_store_in_use(database):
        raise ConfigurationError(
            f"the secrets file {path} is missing but the database {database} holds data "
            "encrypted with it: restore the file from its backup (new secrets could not read "
            "the data, so none are generated)"
        )
    try:
        fresh = write_new_secrets_file(path)
    except FileExistsError:
        return _read_file(path)
    log.warning("generated new secrets in %s (mode 0600); back this file up", path)
    return fresh
