"""``geo-router audit`` verify/tail/export/replay, and the audit records of ``keys``."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from geo_router.errors import AuditUnavailableError
from geo_router.intake.audit import SPOOL_FILE_NAME, AuditService, SpoolFile
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


def test_replay_chains_what_was_spooled(tmp_path: Path) -> None:
    _invoke(tmp_path, "keys", "create", "--role", "admin", "--name", "ops")
    with Store.from_url(_url(tmp_path)) as store:

        class Down(AuditRepo):
            def append(self, records: object) -> list[int]:
                raise AuditUnavailableError("down")

        spool = SpoolFile(tmp_path / SPOOL_FILE_NAME)
        down = AuditService(Down(store.engine), fallback=spool)
        down.record(
            "registry_locate", "emergency_location", None, ["report:r_x"], fail_closed=False
        )
    replayed = _invoke(tmp_path, "audit", "replay")
    assert replayed.exit_code == 0 and "chained 1 spooled records" in replayed.stdout
    ok = _invoke(tmp_path, "audit", "verify")
    assert ok.exit_code == 0 and "intact: 2 records" in ok.stdout
