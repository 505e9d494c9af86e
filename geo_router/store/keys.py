"""API keys: created once and shown once, stored as sha256, verified on every request."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from geo_router.errors import InputError, NotFoundError, StoreUnavailableError
from geo_router.store.engine import write_transaction
from geo_router.store.schema import CHANNELS, ROLES, api_keys, new_uuid, utcnow

log = logging.getLogger(__name__)

#: Every key starts with this, so leaked keys are easy to grep for.
KEY_PREFIX = "gr_"
#: Characters of the key kept in clear for listing (includes ``gr_``).
PREFIX_LENGTH = 8


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What is stored about a key (never the key itself)."""

    id: str
    name: str
    role: str
    channel: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the key has not been revoked."""
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The sha256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _record(row: sa.Row) -> ApiKeyRecord:  # type: ignore[type-arg]
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        channel=row.channel,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.role,
    api_keys.c.channel,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
)


class KeyStore:
    """Create, verify, list and revoke API keys.

    Parameters
    ----------
    engine
        The store's engine (tables migrated).
    cache_ttl_s
        Positive verifications are cached in-process this long
        (``GEO_ROUTER_KEY_CACHE_TTL_S``). A revocation in this process takes effect at once;
        one in another process within ``cache_ttl_s``. While the database is unavailable
        (``StoreUnavailableError``), a key verified before keeps working from the cache
        however old the entry (no revocation can be recorded meanwhile), so an outage does
        not stop routing; a key never seen before gets that error (503), not a 401.
    touch_interval_s
        ``last_used_at`` is written at most this often per key and process (0 disables it),
        so the hot path stays read-only.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        cache_ttl_s: float = 5.0,
        touch_interval_s: float = 60.0,
        cache_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self.cache_ttl_s = cache_ttl_s
        self.touch_interval_s = touch_interval_s
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}  # key hash -> (expiry, record)
        self._touched: dict[str, float] = {}  # key id -> monotonic time of last write
        self._lock = threading.Lock()

    def create(
        self, role: str, name: str, *, channel: str | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """Create a key; the key itself is returned here and never again.

        Parameters
        ----------
        role
            One of ``intake``, ``planner``, ``analyst``, ``admin``.
        name
            Who uses it (``sms-gateway``).
        channel
            Intake keys only: ``call``, ``sms``, ``social``, ``web`` or ``app``.

        Returns
        -------
        (key, record)
        """
        _check_new_key(role, name, channel)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            id=new_uuid(),
            name=name.strip(),
            role=role,
            channel=channel,
            prefix=key[:PREFIX_LENGTH],
            created_at=utcnow(),
            revoked_at=None,
            last_used_at=None,
        )
        with write_transaction(self.engine) as conn:
            conn.execute(
                api_keys.insert().values(
                    id=record.id,
                    name=record.name,
                    role=record.role,
                    channel=record.channel,
                    prefix=record.prefix,
                    key_hash=hash_key(key),
                    created_at=record.created_at,
                )
            )
        log.info("created api key id=%s prefix=%s role=%s", record.id, record.prefix, role)
        return key, record

    def verify(self, key: str) -> ApiKeyRecord | None:
        """The record of an active key, or None for a malformed, unknown or revoked key."""
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        record = cached[1] if cached is not None and cached[0] > now else None
        if record is None:
            try:
                record = self._lookup(digest)
            except StoreUnavailableError:
                if cached is None:
                    raise
                log.warning("database unavailable: key id=%s verified from cache", cached[1].id)
                # Ask again after another TTL, not on every request of the outage.
                self._remember(digest, cached[1], now)
                return cached[1]
            if record is None:
                with self._lock:
                    self._cache.pop(digest, None)
                return None
            self._remember(digest, record, now)
        self._touch(record, now)
        return record

    def warm(self) -> int:
        """Cache every active key now; returns how many.

        Called at startup, so that during a database outage a key this process has not
        verified yet still works (until the outage ends and the cache is checked again).
        """
        if self.cache_ttl_s <= 0:
            return 0
        query = sa.select(*_COLUMNS, api_keys.c.key_hash).where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        now = time.monotonic()
        for row in rows[: self._cache_size]:
            self._remember(row.key_hash, _record(row), now)
        return len(rows)

    def list(self) -> list[ApiKeyRecord]:
        """Every key, active and revoked, oldest first."""
        query = sa.select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def get(self, key_id_or_prefix: str) -> ApiKeyRecord:
        """One key by id or by its 8-character prefix.

        Raises
        ------
        NotFoundError
            No key has that id or prefix.
        InputError
            The prefix is shared by several keys (use the id).
        """
        with self.engine.connect() as conn:
            return _record(self._find(conn, key_id_or_prefix))

    def revoke(self, key_id_or_prefix: str) -> ApiKeyRecord:
        """Revoke a key by id or prefix; revoking a revoked key changes nothing.

        Raises
        ------
        NotFoundError
            No key has that id or prefix.
        InputError
            The prefix is shared by several keys (use the id).
        """
        with write_transaction(self.engine) as conn:
            row = self._find(conn, key_id_or_prefix)
            if row.revoked_at is None:
                conn.execute(
                    api_keys.update().where(api_keys.c.id == row.id).values(revoked_at=utcnow())
                )
            row = conn.execute(sa.select(*_COLUMNS).where(api_keys.c.id == row.id)).one()
        record = _record(row)
        with self._lock:
            self._cache = {h: v for h, v in self._cache.items() if v[1].id != record.id}
        log.info("revoked api key id=%s prefix=%s", record.id, record.prefix)
        return record

    def count_active(self) -> int:
        """How many keys are not revoked (open mode depends on :meth:`count_all`, not this)."""
        query = sa.select(sa.func.count()).where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def count_all(self) -> int:
        """How many keys were ever created, revoked ones included (revoking keeps the row).

        Above 0, the API never runs open again, whatever is revoked.
        """
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one())

    def clear_cache(self) -> None:
        """Forget cached verifications (tests, or after bulk revocation elsewhere)."""
        with self._lock:
            self._cache.clear()

    def _lookup(self, digest: str) -> ApiKeyRecord | None:
        query = sa.select(*_COLUMNS).where(
            api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def _remember(self, digest: str, record: ApiKeyRecord, now: float) -> None:
        if self.cache_ttl_s <= 0:
            return
        with self._lock:
            if len(self._cache) >= self._cache_size:
                # Drop expired entries first; if still full, start over (bounded memory).
                self._cache = {h: v for h, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
            self._cache[digest] = (now + self.cache_ttl_s, record)

    def _touch(self, record: ApiKeyRecord, now: float) -> None:
        """Record use, at most once per interval; best effort, never fails a request."""
        if self.touch_interval_s <= 0:
            return
        with self._lock:
            last = self._touched.get(record.id)
            if last is not None and now - last < self.touch_interval_s:
                return
            self._touched[record.id] = now
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == record.id)
                    .values(last_used_at=utcnow())
                )
        except (sa.exc.OperationalError, StoreUnavailableError) as exc:  # try next interval
            log.debug("could not record use of api key id=%s: %s", record.id, exc)

    @staticmethod
    def _find(conn: sa.Connection, key_id_or_prefix: str) -> sa.Row:  # type: ignore[type-arg]
        needle = (key_id_or_prefix or "").strip()
        rows = conn.execute(
            sa.select(*_COLUMNS).where(sa.or_(api_keys.c.id == needle, api_keys.c.prefix == needle))
        ).all()
        by_id = [row for row in rows if row.id == needle]
        if by_id:
            return by_id[0]
        if not rows:
            raise NotFoundError(f"no API key with id or prefix {needle!r}", detail={"key": needle})
        if len(rows) > 1:
            raise InputError(
                f"prefix {needle!r} matches {len(rows)} keys: revoke by id",
                detail={"key": needle, "ids": [row.id for row in rows]},
            )
        return rows[0]


def _check_new_key(role: str, name: str, channel: str | None) -> None:
    if role not in ROLES:
        raise InputError(
            f"unknown role {role!r}: expected one of {', '.join(ROLES)}",
            detail={"field": "role", "allowed": list(ROLES)},
        )
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise InputError(
            "a key needs a name of 1 to 200 characters (who uses it)", detail={"field": "name"}
        )
    if channel is None:
        return
    if role != "intake":
        raise InputError(
            f"only intake keys have a channel (role {role!r} given channel {channel!r})",
            detail={"field": "channel"},
        )
    if channel not in CHANNELS:
        raise InputError(
            f"unknown channel {channel!r}: expected one of {', '.join(CHANNELS)}",
            detail={"field": "channel", "allowed": list(CHANNELS)},
        )
