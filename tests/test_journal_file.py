"""The journal file: preallocated, fsynced frames; torn records and kill -9 tolerated."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from geo_router.journal.file import JournalFile

PREALLOCATE = 64 * 1024


def _open(path: Path) -> JournalFile:
    return JournalFile(path, preallocate_bytes=PREALLOCATE)


def _payloads(path: Path) -> list[bytes]:
    journal = _open(path)
    try:
        with journal.locked():
            return [frame.payload for frame in journal.frames()]
    finally:
        journal.close()


def test_created_private_and_preallocated(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "journal.bin"
    _open(path).close()
    info = path.stat()
    assert info.st_mode & 0o777 == 0o600
    assert info.st_size >= PREALLOCATE
    assert info.st_blocks * 512 >= PREALLOCATE  # real blocks, not a sparse hole


def test_appends_survive_reopening_in_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)
    with journal.locked():
        for i in range(5):
            journal.append(f"record {i}".encode())
    journal.close()
    assert _payloads(path) == [f"record {i}".encode() for i in range(5)]


def test_a_torn_last_record_is_ignored_and_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)
    with journal.locked():
        journal.append(b"first")
        torn = journal.append(b"second, cut in the middle by a crash")
    journal.close()
    # The process died mid-write: the second frame's tail never reached the disk.
    with path.open("r+b") as f:
        f.seek(torn.offset + 16 + 10)
        f.write(bytes(30))
    assert _payloads(path) == [b"first"]
    journal = _open(path)
    with journal.locked():
        journal.append(b"third")
    journal.close()
    assert _payloads(path) == [b"first", b"third"]


def test_a_file_cut_mid_record_keeps_the_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)
    with journal.locked():
        journal.append(b"a" * 100)
        second = journal.append(b"b" * 100)
    journal.close()
    os.truncate(path, second.offset + 16 + 50)  # truncated mid-record
    assert _payloads(path) == [b"a" * 100]
    journal = _open(path)  # preallocates again and appends after the whole record
    with journal.locked():
        journal.append(b"c")
    journal.close()
    assert _payloads(path) == [b"a" * 100, b"c"]


def test_a_corrupt_crc_ends_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)
    with journal.locked():
        journal.append(b"good")
        bad = journal.append(b"flipped")
    journal.close()
    with path.open("r+b") as f:
        f.seek(bad.offset + 16)
        f.write(b"X")
    assert _payloads(path) == [b"good"]


def test_done_marks_and_clear_keep_the_blocks(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)
    other = _open(path)  # another process sharing the file
    with journal.locked():
        frame = journal.append(b"x" * 1000)
        journal.mark_done(frame)
    with other.locked():
        assert [f.done for f in other.frames()] == [True]
    blocks = path.stat().st_blocks
    with journal.locked():
        journal.clear()
        assert journal.frames() == []
    with other.locked():  # sees the new generation, not the old frame
        assert other.frames() == []
        other.append(b"y")
    with journal.locked():
        assert [f.payload for f in journal.frames()] == [b"y"]
    assert path.stat().st_blocks >= blocks
    journal.close()
    other.close()


def test_appends_use_the_reserved_space_when_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.bin"
    journal = _open(path)

    def disk_full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", disk_full)
    with journal.locked():
        for _ in range(20):  # 20 x 1 KiB fit in the 64 KiB reserved at creation
            journal.append(b"e" * 1000)
        with pytest.raises(OSError, match="No space"):
            journal.append(b"e" * PREALLOCATE)  # beyond the reserve: the disk says no
        journal.append(b"still fits")
    journal.close()
    assert len(_payloads(path)) == 21


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from geo_router.journal.file import JournalFile

    journal = JournalFile(Path(sys.argv[1]), preallocate_bytes=64 * 1024)
    i = 0
    while True:
        with journal.locked():
            journal.append(f"{sys.argv[2]}-{i:06d}".encode() * 20)
        print(i, flush=True)  # acknowledged: fsynced
        i += 1
    """
)


def _start_writer(path: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )


def test_kill_9_during_appends_of_two_processes_loses_no_acknowledged_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.bin"
    _open(path).close()
    writers = {name: _start_writer(path, name) for name in ("p", "q")}
    acknowledged: dict[str, int] = {}
    first: dict[str, str] = {}
    try:
        for name, proc in writers.items():  # both write (however slow a loaded machine is)
            assert proc.stdout is not None
            first[name] = proc.stdout.readline()
        time.sleep(0.5)
    finally:
        for name, proc in writers.items():
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=30)
            lines = (first.get(name, "") + out).split()
            acknowledged[name] = int(lines[-1]) + 1 if lines else 0
    payloads = _payloads(path)
    for name, count in acknowledged.items():
        mine = [p for p in payloads if p.startswith(f"{name}-".encode())]
        assert count > 0
        # Every acknowledged record is there, in order, once (one more may have been
        # written but not yet acknowledged when the kill came).
        assert len(mine) in (count, count + 1)
        assert mine == [f"{name}-{i:06d}".encode() * 20 for i in range(len(mine))]
