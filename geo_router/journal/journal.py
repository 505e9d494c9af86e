"""The local durable journal: what could not be stored now is stored later, exactly once.

When the database is unavailable, work that must not be lost (an emergency report, the
audit record of reading the registry for one) is appended here as a record with a ``kind``,
a JSON ``payload`` and ``keys`` (ids it can be found and deduplicated by). Each record is
encrypted with the service's secrets (``Secrets.encrypt``, Fernet) and written to a
preallocated, fsynced file (:mod:`geo_router.journal.file`), so neither a full disk nor a
``kill -9`` loses or corrupts an acknowledged record.

Each kind has one replayer, registered by whoever writes that kind::

    journal.register("report", store_report)   # store_report(payload) -> None

:meth:`Journal.replay` hands each pending record to its kind's replayer, oldest first, and
marks it replayed once the replayer returns; ``replay(kinds=...)`` replays only those kinds
and leaves the others pending untouched (a command that knows one kind's replayer). A
record whose kind has no replayer in this process stays pending (counted as failed). A
replayer must be idempotent (insert by id,
skip when present): a crash between its write and the mark replays the record again. A
``StoreUnavailableError`` stops the replay until the next attempt; any other error leaves
that record pending (logged) and goes on. Replays of several processes sharing the file are
serialized by a lock file beside it; when nothing is left pending the file is emptied.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from geo_router.errors import GeoRouterError, JournalUnavailableError, StoreUnavailableError
from geo_router.journal.file import Frame, JournalFile
from geo_router.settings import StoreSettings

__all__ = ["Cipher", "Journal", "JournalRecord", "ReplayResult", "Replayer"]

log = logging.getLogger(__name__)

#: Stores one record's payload for good; idempotent; raises ``StoreUnavailableError`` to wait.
Replayer = Callable[[dict[str, Any]], None]


class Cipher(Protocol):
    """What encrypts records (``geo_router.intake.secrets.Secrets``)."""

    def encrypt(self, text: str) -> str:
        """An authenticated token of ``text``."""
        ...

    def decrypt(self, token: str) -> str:
        """The text of a token made by :meth:`encrypt`."""
        ...


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journaled record: its kind, the ids it answers to, its payload, when it came."""

    kind: str
    keys: tuple[str, ...]
    payload: dict[str, Any]
    at: str  #: ISO 8601 UTC time of the append


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replay did: records stored, records that failed, records still pending."""

    replayed: int = 0
    failed: int = 0
    remaining: int = 0
    store_unavailable: bool = False  #: the replay stopped: the store is still unavailable
    busy: bool = False  #: another process or thread was replaying


class Journal:
    """Records kept until their replayer stores them (see the module doc).

    Parameters
    ----------
    path
        The journal file (created 0600 with its folder).
    cipher
        Encrypts and decrypts records (the service's ``Secrets``).
    preallocate_bytes
        Space reserved up front and in each later step.
    """

    def __init__(
        self, path: Path, cipher: Cipher, *, preallocate_bytes: int = 8 * 1024 * 1024
    ) -> None:
        self.path = path
        self._cipher = cipher
        try:
            self._file = JournalFile(path, preallocate_bytes=preallocate_bytes)
        except OSError as exc:
            raise JournalUnavailableError(
                f"the journal {path} cannot be opened: {exc.strerror or exc}",
                detail={"reason": "journal unavailable"},
            ) from exc
        self._replayers: dict[str, Replayer] = {}
        self._decoded: dict[tuple[int, int], JournalRecord | None] = {}  # (gen, offset)
        self._replay_thread_lock = threading.Lock()

    @classmethod
    def open(cls, settings: StoreSettings, cipher: Cipher) -> Journal:
        """The journal at ``GEO_ROUTER_JOURNAL_PATH`` (``journal.bin`` in the data dir)."""
        return cls(
            settings.effective_journal_path,
            cipher,
            preallocate_bytes=settings.journal_preallocate_bytes,
        )

    def register(self, kind: str, replayer: Replayer) -> None:
        """Store records of ``kind`` with ``replayer`` (one per kind; the last one wins)."""
        self._replayers[kind] = replayer

    # -- writing ---------------------------------------------------------------------------

    def append(
        self, kind: str, payload: dict[str, Any], *, keys: tuple[str, ...] = ()
    ) -> tuple[JournalRecord, bool]:
        """Append a record, fsynced, unless a pending record of ``kind`` shares one of ``keys``.

        Returns
        -------
        (record, appended)
            The new record and True; or the pending record found and False (nothing written).

        Raises
        ------
        JournalUnavailableError
            The journal cannot be written (disk full beyond its reserved space, I/O error).
        """
        record = JournalRecord(kind, tuple(keys), payload, datetime.now(UTC).isoformat())
        data = orjson.dumps(
            {"kind": kind, "keys": list(record.keys), "payload": payload, "at": record.at}
        )
        token = self._cipher.encrypt(data.decode("utf-8")).encode("ascii")
        with self._file.locked():
            if keys:
                found = self._find_locked(kind, set(keys))
                if found is not None:
                    return found, False
            try:
                frame = self._file.append(token)
            except OSError as exc:
                log.critical("the journal %s cannot be written: %s", self.path, exc)
                raise JournalUnavailableError(
                    "the database is unavailable and the local journal cannot be written "
                    f"({exc.strerror or exc}); try again shortly",
                    detail={"reason": "journal unavailable"},
                ) from exc
            self._decoded[(self._file.generation, frame.offset)] = record
        return record, True

    # -- reading ---------------------------------------------------------------------------

    def find(self, kind: str, key: str) -> JournalRecord | None:
        """The pending record of ``kind`` answering to ``key``, if any."""
        if not self.has_pending():
            return None
        with self._file.locked():
            return self._find_locked(kind, {key})

    def pending(self, kind: str | None = None) -> list[JournalRecord]:
        """Pending records (of ``kind``, or all), oldest first; undecryptable ones left out."""
        with self._file.locked():
            return [
                record
                for _, record in self._pending_locked()
                if record is not None and (kind is None or record.kind == kind)
            ]

    def pending_count(self) -> int:
        """How many records wait for replay (undecryptable ones included)."""
        with self._file.locked():
            return sum(1 for _ in self._pending_locked())

    def has_pending(self) -> bool:
        """Whether anything waits for replay (cheap: no decryption)."""
        with self._file.locked():
            return any(not frame.done for frame in self._file.frames())

    def _find_locked(self, kind: str, keys: set[str]) -> JournalRecord | None:
        for _, record in self._pending_locked():
            if record is not None and record.kind == kind and keys.intersection(record.keys):
                return record
        return None

    def _pending_locked(self) -> Iterator[tuple[Frame, JournalRecord | None]]:
        frames = self._file.frames()
        generation = self._file.generation
        if any(key[0] != generation for key in self._decoded):
            self._decoded = {k: v for k, v in self._decoded.items() if k[0] == generation}
        for frame in frames:
            if not frame.done:
                yield frame, self._decode(frame)

    def _decode(self, frame: Frame) -> JournalRecord | None:
        """The record of a frame (cached), or None when it cannot be decrypted or parsed."""
        key = (self._file.generation, frame.offset)
        if key in self._decoded:
            return self._decoded[key]
        try:
            data = orjson.loads(self._cipher.decrypt(frame.payload.decode("ascii")))
            record: JournalRecord | None = JournalRecord(
                str(data["kind"]), tuple(data["keys"]), dict(data["payload"]), str(data["at"])
            )
        except (GeoRouterError, ValueError, KeyError, TypeError) as exc:
            log.error(
                "journal record at byte %d of %s cannot be read (%s): wrong secrets?",
                frame.offset,
                self.path,
                type(exc).__name__,
            )
            record = None
        self._decoded[key] = record
        return record

    # -- replay ----------------------------------------------------------------------------

    def replay(self, kinds: Collection[str] | None = None) -> ReplayResult:
        """Store every pending record (of ``kinds``, or of every kind) with its kind's
        replayer, then empty a drained journal.

        Records of other kinds are left pending and not counted as failed. Returns at once
        with ``busy=True`` while another thread or process replays.
        """
        with self._replay_lock() as acquired:
            if not acquired:
                return ReplayResult(busy=True)
            with self._file.locked():
                todo = [
                    (frame, record)
                    for frame, record in self._pending_locked()
                    if kinds is None or (record is not None and record.kind in kinds)
                ]
            replayed = failed = 0
            unavailable = False
            for frame, record in todo:
                if record is None:
                    failed += 1
                    continue
                outcome = self._replay_one(record)
                if outcome is None:
                    unavailable = True
                    break
                if outcome:
                    with self._file.locked():
                        self._file.mark_done(frame)
                    replayed += 1
                else:
                    failed += 1
            with self._file.locked():
                remaining = sum(1 for frame in self._file.frames() if not frame.done)
                if remaining == 0 and self._file.frames():
                    self._file.clear()
        if replayed or failed:
            log.info("journal replay: %d stored, %d failed, %d left", replayed, failed, remaining)
        return ReplayResult(replayed, failed, remaining, unavailable)

    def _replay_one(self, record: JournalRecord) -> bool | None:
        """True when stored, False when it failed (left pending), None: store unavailable."""
        replayer = self._replayers.get(record.kind)
        if replayer is None:
            log.error("no replayer registered for journal records of kind %r", record.kind)
            return False
        try:
            replayer(record.payload)
        except StoreUnavailableError:
            return None
        except Exception:  # one bad record must not block the others; it stays pending
            log.exception("replaying a journal record of kind %r failed", record.kind)
            return False
        return True

    @contextmanager
    def _replay_lock(self) -> Iterator[bool]:
        """One replay at a time: this process (thread lock) and others (a lock file)."""
        if not self._replay_thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            lock_path = self.path.with_name(self.path.name + ".replay-lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # releases the flock
        finally:
            self._replay_thread_lock.release()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
