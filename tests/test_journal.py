"""The journal: encrypted records with kinds and keys, replayers per kind, exactly-once replay."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from geo_router.errors import JournalUnavailableError, StoreUnavailableError
from geo_router.intake.secrets import Secrets
from geo_router.journal import Journal
from geo_router.settings import StoreSettings

SECRETS = Secrets.generate()


def _journal(path: Path, secrets: Secrets = SECRETS) -> Journal:
    return Journal(path, secrets, preallocate_bytes=64 * 1024)


def test_records_are_encrypted_on_disk(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    journal.append("report", {"phone": "+6281234567890", "description": "kebakaran"})
    journal.close()
    raw = (tmp_path / "j.bin").read_bytes()
    assert b"6281234567890" not in raw and b"kebakaran" not in raw and b"report" not in raw
    assert _journal(tmp_path / "j.bin").pending()[0].payload["description"] == "kebakaran"


def test_a_pending_record_sharing_a_key_is_answered_instead_of_appended(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    first, appended = journal.append("report", {"n": 1}, keys=("r_1", "idem:k"))
    assert appended
    again, appended = journal.append("report", {"n": 2}, keys=("r_2", "idem:k"))
    assert not appended and again == first
    _, appended = journal.append("audit", {"n": 3}, keys=("idem:k",))  # another kind
    assert appended
    assert journal.pending_count() == 2
    found = journal.find("report", "r_1")
    assert found is not None and found.payload == {"n": 1}
    assert journal.find("report", "r_2") is None


def test_replay_stores_each_record_once_and_empties_the_journal(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    stored: list[dict[str, Any]] = []
    journal.register("report", stored.append)
    for i in range(3):
        journal.append("report", {"n": i})
    result = journal.replay()
    assert (result.replayed, result.failed, result.remaining) == (3, 0, 0)
    assert stored == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert journal.replay().replayed == 0
    assert not journal.has_pending()
    other = _journal(tmp_path / "j.bin")  # a restarted worker finds nothing to replay
    assert other.pending_count() == 0
    assert stored == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_store_unavailable_stops_the_replay_and_keeps_the_rest(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    stored: list[int] = []
    down = {"yes": True}

    def replayer(payload: dict[str, Any]) -> None:
        if down["yes"] and payload["n"] == 1:
            raise StoreUnavailableError("down")
        stored.append(payload["n"])

    journal.register("report", replayer)
    for i in range(3):
        journal.append("report", {"n": i})
    result = journal.replay()
    assert result.store_unavailable and result.replayed == 1 and result.remaining == 2
    down["yes"] = False
    assert journal.replay().replayed == 2
    assert stored == [0, 1, 2]


def test_a_failing_record_stays_pending_and_does_not_block_others(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    stored: list[int] = []

    def replayer(payload: dict[str, Any]) -> None:
        if payload["n"] == 0:
            raise ValueError("bad record")
        stored.append(payload["n"])

    journal.register("report", replayer)
    journal.append("report", {"n": 0})
    journal.append("report", {"n": 1})
    journal.append("audit", {"n": 2})  # no replayer registered for it
    result = journal.replay()
    assert (result.replayed, result.failed, result.remaining) == (1, 2, 2)
    assert stored == [1]
    assert [r.kind for r in journal.pending()] == ["report", "audit"]


def test_records_of_other_secrets_are_kept_not_replayed(tmp_path: Path) -> None:
    _journal(tmp_path / "j.bin").append("report", {"n": 1})
    journal = _journal(tmp_path / "j.bin", Secrets.generate())
    journal.register("report", lambda _p: None)
    assert journal.pending() == [] and journal.pending_count() == 1
    assert journal.replay().failed == 1 and journal.has_pending()


def test_one_replay_at_a_time_across_processes(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    journal.register("report", lambda _p: None)
    journal.append("report", {"n": 1})
    fd = os.open(tmp_path / "j.bin.replay-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process replays
        assert journal.replay().busy
        assert journal.has_pending()
    finally:
        os.close(fd)
    assert journal.replay().replayed == 1


def test_open_from_settings_and_refusal_names_the_path(tmp_path: Path) -> None:
    settings = StoreSettings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    journal = Journal.open(settings, SECRETS)
    assert journal.path == tmp_path / "journal.bin" and journal.path.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(JournalUnavailableError, match="a-file"):
        _journal(blocker / "j.bin")  # its folder is a file


def test_an_unwritable_journal_raises_journal_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _journal(tmp_path / "j.bin")

    def broken(*_args: object) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "pwrite", broken)
    with pytest.raises(JournalUnavailableError, match="Input/output error"):
        journal.append("report", {"n": 1})


def test_replay_of_some_kinds_leaves_the_others_pending_untouched(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "j.bin")
    journal.append("report", {"n": 1})
    journal.append("audit", {"n": 2})
    chained: list[dict[str, Any]] = []
    journal.register("audit", chained.append)  # no "report" replayer in this process
    result = journal.replay(kinds=("audit",))
    assert (result.replayed, result.failed, result.remaining) == (1, 0, 1)
    assert chained == [{"n": 2}]
    assert [r.kind for r in journal.pending()] == ["report"]  # kept, not dropped
    unknown = journal.replay()  # a kind without a replayer fails but stays pending
    assert unknown.failed == 1 and [r.payload for r in journal.pending()] == [{"n": 1}]
