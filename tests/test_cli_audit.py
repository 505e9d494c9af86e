"""``geo-router audit`` verify/tail/export/replay, and the audit records of ``keys``."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from geo_router.errors import AuditUnavailableError
from geo_router.intake.audit import AUDIT_KIND, AuditService
from geo_router.intake.secrets import secrets_for_migration
from geo_router.journal import Journal
from geo_router.settings import SecretsSettings, StoreSettings
from geo_router.store import Store
from geo_router.store.audit_repo import AuditRepo


def _invoke(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    from geo_router.cli import app

    env = {"GEO_ROUTER_DATA_DIR": str(tmp_path), "GEO_ROUTER_DATABASE_URL": ""}
    return CliRunner().invoke(app, list(args), env=env)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'geo_router.sqlite3'}"


def _key_id(output: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith("id "))
    return line.split()[1]


def test_key_creation_and_revocation_are_audited(tmp_path: Path) -> None:
    created = _invoke(
        tmp_path, "keys", "create", "--role", "intake", "--name", "sms", "--channel", "sms"
    )
    assert created.exit_code == 0, created.output
    key_id = _key_id(created.output)
    assert _invoke(tmp_path, "keys", "revoke", key_id).exit_code == 0
    tail = _invoke(tmp_path, "audit", "tail", "-n", "5")
    assert tail.exit_code == 0, tail.output
    records = [json.loads(line) for line in tail.stdout.splitlines() if line.startswith("{")]
    assert [r["action"] for r in records] == ["key_create", "key_revoke"]
    for record in records:
        assert record["actor"].startswith("cli:") and record["key_id"] == "cli"
        assert record["purpose"] == "key_management"
        assert record["subjects"] == [f"key:{key_id}"]
    assert records[0]["detail"]["role"] == "intake" and records[0]["detail"]["channel"] == "sms"
    key = next(line for line in created.output.splitlines() if line.startswith("gr_"))
    assert key not in tail.output  # the key itself is never recorded


def test_verify_counts_an_intact_log_and_names_the_first_bad_record(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        assert _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", name).exit_code == 0
    ok = _invoke(tmp_path, "audit", "verify")
    assert ok.exit_code == 0 and "intact: 3 records" in ok.stdout
    engine = sa.create_engine(_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET purpose = 'call_taking' WHERE seq = 2"))
    engine.dispose()
    bad = _invoke(tmp_path, "audit", "verify")
    assert bad.exit_code == 1, bad.output
    assert "BROKEN at record 2" in bad.stdout and "modified" in bad.stdout


def test_export_writes_every_record_with_its_hashes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", name)
    out = _invoke(tmp_path, "audit", "export", "--after", "1")
    assert out.exit_code == 0, out.output
    [line] = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert line["seq"] == 2 and len(line["prev_hash"]) == 64 and len(line["hash"]) == 64


def _journal(tmp_path: Path) -> Journal:
    """The journal the commands open: ``journal.bin`` in the data dir, with its secrets."""
    secrets = secrets_for_migration(SecretsSettings(_env_file=None), _store_settings(tmp_path))
    assert secrets is not None
    return Journal(tmp_path / "journal.bin", secrets, preallocate_bytes=64 * 1024)


def _store_settings(tmp_path: Path) -> StoreSettings:
    return StoreSettings(data_dir=tmp_path, database_url=None, _env_file=None)


def test_replay_chains_the_journaled_audit_records_and_leaves_other_kinds(
    tmp_path: Path,
) -> None:
    assert _invoke(tmp_path, "secrets", "init").exit_code == 0
    _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", "ops")
    journal = _journal(tmp_path)
    with Store.from_url(_url(tmp_path)) as store:

        class Down(AuditRepo):
            def append(self, records: object) -> list[int]:
                raise AuditUnavailableError("down")

        down = AuditService(Down(store.engine))
        down.use_journal(journal)
        down.record(
            "registry_locate", "emergency_location", None, ["report:r_x"], fail_closed=False
        )
    journal.append("report", {"id": "r_x"}, keys=("r_x",))  # the service's kind, not ours
    journal.close()
    replayed = _invoke(tmp_path, "audit", "replay")
    assert replayed.exit_code == 0, replayed.output
    assert "chained 1 journaled audit records" in replayed.stdout
    journal = _journal(tmp_path)
    assert [r.kind for r in journal.pending()] == ["report"]  # left for the service
    journal.close()
    again = _invoke(tmp_path, "audit", "replay")
    assert again.exit_code == 0 and "chained 0 journaled audit records" in again.stdout
    ok = _invoke(tmp_path, "audit", "verify")
    assert ok.exit_code == 0 and "intact: 2 records" in ok.stdout


def test_a_key_change_the_log_cannot_take_is_journaled_then_replayed(tmp_path: Path) -> None:
    assert _invoke(tmp_path, "secrets", "init").exit_code == 0
    assert _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", "a").exit_code == 0
    engine = sa.create_engine(_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head RENAME TO audit_head_away"))
    created = _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", "b")
    assert created.exit_code == 0, created.output  # the key change is not refused
    journal = _journal(tmp_path)
    [kept] = journal.pending(AUDIT_KIND)
    journal.close()
    assert kept.payload["action"] == "key_create"
    assert kept.payload["subjects"] == [f"key:{_key_id(created.output)}"]
    down = _invoke(tmp_path, "audit", "replay")
    assert down.exit_code == 2 and "1 journaled records wait" in down.output
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head_away RENAME TO audit_head"))
    engine.dispose()
    replayed = _invoke(tmp_path, "audit", "replay")
    assert replayed.exit_code == 0 and "chained 1 journaled audit records" in replayed.stdout
    ok = _invoke(tmp_path, "audit", "verify")
    assert ok.exit_code == 0 and "intact: 2 records" in ok.stdout


def test_replay_without_a_journal_or_its_secrets(tmp_path: Path) -> None:
    nothing = _invoke(tmp_path, "audit", "replay")
    assert nothing.exit_code == 0 and "chained 0 journaled audit records" in nothing.stdout
    (tmp_path / "journal.bin").write_bytes(b"")  # a journal, but no secrets to read it
    refused = _invoke(tmp_path, "audit", "replay")
    assert refused.exit_code == 2 and "secrets" in refused.output
