"""The audit trail: a hash-chained ``audit_log`` and its one head row ``audit_head``.

Revision ID: 0007_audit_log
Revises: 0006_encrypted_homes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from geo_router.store.schema import JSONType, UTCDateTime

revision = "0007_audit_log"
down_revision = "0006_encrypted_homes"
branch_labels = None
depends_on = None

# Literal copies: a revision stays what it was when it was written.
_ACTIONS = (
    "caller_lookup",
    "subscriber_read",
    "subscriber_list",
    "subscriber_export",
    "registry_locate",
    "key_create",
    "key_revoke",
    "auth_failure",
    "layer_change",
    "facility_change",
)
_PURPOSES = (
    "call_taking",
    "emergency_location",
    "report_location",
    "registry_admin",
    "key_management",
    "access_control",
    "city_maintenance",
)
_GENESIS = "0" * 64


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _seq() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", _seq(), nullable=False, autoincrement=False),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("subjects", JSONType, nullable=False),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.CheckConstraint(_in("action", _ACTIONS), name="ck_audit_log_action"),
        sa.CheckConstraint(_in("purpose", _PURPOSES), name="ck_audit_log_purpose"),
    )
    op.create_index("ix_audit_log_record_id", "audit_log", ["record_id"], unique=True)
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("seq", _seq(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_record_id", table_name="audit_log")
    op.drop_table("audit_log")
