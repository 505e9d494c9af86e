"""The journal file: fsynced, preallocated, encrypted, framed records; torn tails ignored.

Layout (all integers big-endian)::

    header  16 bytes   b"GRJ1" | generation u64 | 4 zero bytes
    frame   16 bytes   b"GRJR" | length u32 | crc32 u32 | state u8 | 3 zero bytes
            payload    ``length`` bytes: a Fernet token of the record's JSON
    ...                zeros: preallocated space (``os.posix_fallocate``)

A frame is valid when its magic, length and CRC check out; the first invalid one (zeros, or
the torn half of a record whose process died mid-write) ends the journal, and the next append
overwrites it. ``state`` is the one byte changed in place: 0 pending, 1 replayed; it is not
covered by the CRC. When every record is replayed the used space is zeroed in place and the
generation bumped, which keeps the preallocated blocks (a full disk cannot take them back).

Every append and state change is fsynced before it returns. ``fcntl.flock`` on the file
serializes processes sharing it; a thread lock serializes threads of one process.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Frame", "JournalFile"]

_HEADER = struct.Struct(">4sQ4x")
_FRAME = struct.Struct(">4sIIB3x")
_HEADER_MAGIC = b"GRJ1"
_FRAME_MAGIC = b"GRJR"
#: A record larger than this is refused on append and treated as torn on read.
MAX_PAYLOAD = 16 * 1024 * 1024
PENDING, DONE = 0, 1
_STATE_OFFSET = 12  # of the state byte inside a frame


@dataclass(slots=True)
class Frame:
    """One record as stored: where its frame starts, its payload and whether it was replayed."""

    offset: int
    payload: bytes
    done: bool


class JournalFile:
    """The frames of one journal file (no encryption, no meaning: see ``Journal``).

    Parameters
    ----------
    path
        The file; created 0600 (and its folder) when missing.
    preallocate_bytes
        Space reserved when the file is created, and again each time it fills up.
    """

    def __init__(self, path: Path, *, preallocate_bytes: int) -> None:
        self.path = path
        self.preallocate_bytes = preallocate_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._generation = -1  # the generation the cached frames belong to
        self._frames: list[Frame] = []
        self._end = _HEADER.size
        with self.locked():  # writes the header of a new file (see _read_generation)
            self._reserve(self.preallocate_bytes)

    # -- locking ---------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file (every process) and this object (every thread); re-entrant."""
        with self._thread_lock:
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                if self._depth == 1:
                    self._sync()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    # -- reading ---------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many times the file was emptied (frames are identified by it and offset)."""
        return self._generation

    def frames(self) -> list[Frame]:
        """Every valid frame, oldest first, with its current state (call while locked)."""
        return list(self._frames)

    def _sync(self) -> None:
        """Catch up with what other processes wrote since this one last looked."""
        generation = self._read_generation()
        if generation != self._generation:
            self._generation, self._frames, self._end = generation, [], _HEADER.size
        for known in self._frames:
            known.done = os.pread(self._fd, 1, known.offset + _STATE_OFFSET) == bytes([DONE])
        size = os.fstat(self._fd).st_size
        while (frame := self._read_frame(self._end, size)) is not None:
            self._frames.append(frame)
            self._end = frame.offset + _FRAME.size + len(frame.payload)

    def _read_frame(self, offset: int, size: int) -> Frame | None:
        """The valid frame at ``offset``, or None (end of the journal, or a torn record)."""
        if offset + _FRAME.size > size:
            return None
        magic, length, crc, state = _FRAME.unpack(os.pread(self._fd, _FRAME.size, offset))
        if magic != _FRAME_MAGIC or not 0 < length <= MAX_PAYLOAD:
            return None
        if offset + _FRAME.size + length > size:
            return None
        payload = os.pread(self._fd, length, offset + _FRAME.size)
        if len(payload) != length or zlib.crc32(payload) != crc:
            return None
        return Frame(offset, payload, state == DONE)

    def _read_generation(self) -> int:
        data = os.pread(self._fd, _HEADER.size, 0)
        magic, generation = _HEADER.unpack(data.ljust(_HEADER.size, b"\0"))
        if magic != _HEADER_MAGIC:
            # Only a crash while the file was being created leaves no header: nothing in it.
            self._write_header(0)
            return 0
        return int(generation)

    # -- writing ---------------------------------------------------------------------------

    def append(self, payload: bytes) -> Frame:
        """Write one frame after the last valid one and fsync it (call while locked).

        Raises
        ------
        OSError
            The disk has no room left beyond the preallocated space, or cannot be written.
        ValueError
            An empty payload or one over ``MAX_PAYLOAD``.
        """
        if not 0 < len(payload) <= MAX_PAYLOAD:
            raise ValueError(f"a journal record holds 1 to {MAX_PAYLOAD} bytes")
        frame = _FRAME.pack(_FRAME_MAGIC, len(payload), zlib.crc32(payload), PENDING) + payload
        self._reserve(self._end + len(frame))
        written = os.pwrite(self._fd, frame, self._end)
        if written != len(frame):
            raise OSError(f"short write to the journal ({written} of {len(frame)} bytes)")
        os.fsync(self._fd)
        record = Frame(self._end, payload, False)
        self._frames.append(record)
        self._end += len(frame)
        return record

    def mark_done(self, frame: Frame) -> None:
        """Mark a frame replayed, fsynced (call while locked, same generation)."""
        os.pwrite(self._fd, bytes([DONE]), frame.offset + _STATE_OFFSET)
        os.fsync(self._fd)
        frame.done = True

    def clear(self) -> None:
        """Zero the used space and start a new generation, keeping the blocks (call locked)."""
        chunk = bytes(min(1 << 20, max(1, self._end - _HEADER.size)))
        offset = _HEADER.size
        while offset < self._end:
            size = min(len(chunk), self._end - offset)
            os.pwrite(self._fd, chunk[:size], offset)
            offset += size
        os.fsync(self._fd)
        self._write_header(self._generation + 1)
        self._generation, self._frames, self._end = self._generation + 1, [], _HEADER.size

    def _reserve(self, needed: int) -> None:
        """Make sure the file's blocks reach ``needed`` bytes (in preallocation steps)."""
        size = os.fstat(self._fd).st_size
        if size >= max(needed, self.preallocate_bytes):
            return
        target = max(size, self.preallocate_bytes)
        while target < needed:
            target += self.preallocate_bytes
        os.posix_fallocate(self._fd, 0, target)
        os.fsync(self._fd)

    def _write_header(self, generation: int) -> None:
        os.pwrite(self._fd, _HEADER.pack(_HEADER_MAGIC, generation), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file."""
        with self._thread_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
