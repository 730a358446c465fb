"""The read model's tables: written only by the projector, read by the API, created by Alembic."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from agent_history.contract.statuses import STATUSES

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


def _named_reference(name: str) -> Table:
    """agents / users: one row per id seen in events, named by the latest event that names it."""
    return Table(
        name,
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("name", Text, nullable=True),
        # The time of the event the name came from: the latest named event wins, in any order.
        Column("name_time", DateTime(timezone=True), nullable=True),
        *_timestamps(),
    )


agents = _named_reference("agents")
users = _named_reference("users")

# Whole milliseconds from Started to the terminal event, truncated and never negative; NULL
# until both are known. Mirrors Execution.execution_time_ms in the projector's fold.
EXECUTION_TIME_MS_SQL = (
    "CASE WHEN input_rank = 0 AND execution_end IS NOT NULL THEN "
    "GREATEST(0, TRUNC(EXTRACT(EPOCH FROM (execution_end - execution_start)) * 1000))::bigint "
    "END"
)

agent_executions = Table(
    "agent_executions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("agent_id", UUID(as_uuid=True), ForeignKey("agents.id"), nullable=False),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("execution_start", DateTime(timezone=True), nullable=False),
    Column("execution_end", DateTime(timezone=True), nullable=True),
    Column("execution_time_ms", BigInteger, Computed(EXECUTION_TIME_MS_SQL, persisted=True)),
    Column("input_data", JSONB(none_as_null=True), nullable=True),
    Column("output_data", JSONB(none_as_null=True), nullable=True),
    Column("error_message", Text, nullable=True),
    # The maximum run time the run asked for (from Started), and the newest time of its events
    # but a watchdog's verdicts: what a watchdog judges a running or pending run by.
    Column("timeout_ms", BigInteger, nullable=True),
    Column("last_seen_at", DateTime(timezone=True), nullable=True),
    # What the run carries (migration 0005): from its input winner ...
    Column("model", Text, nullable=True),
    Column("tags", ARRAY(Text), nullable=True),
    Column("metadata", JSONB(none_as_null=True), nullable=True),
    Column("parent_execution_id", UUID(as_uuid=True), nullable=True),
    # The trace id (32 lowercase hex digits) of the run's span (migration 0008).
    Column("trace_id", Text, nullable=True),
    # ... and from its terminal winner's usage.
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cost", Numeric, nullable=True),
    Column("cost_currency", Text, nullable=True),
    # Fold bookkeeping: which events won the input and the terminal parts (see fold.py).
    Column("input_rank", SmallInteger, nullable=True),
    Column("input_time", DateTime(timezone=True), nullable=True),
    Column("input_event_id", UUID(as_uuid=True), nullable=True),
    Column("terminal_event_id", UUID(as_uuid=True), nullable=True),
    *_timestamps(),
    CheckConstraint(f"status IN {STATUSES!r}", name="status"),
    Index("ix_agent_executions_execution_start", "execution_start"),
    Index("ix_agent_executions_status", "status"),
    # Serve the per-agent and per-user histories: newest first, id as the tie-break. They also
    # serve lookups by agent_id or user_id alone (their leading column; migrations 0002, 0015).
    Index(
        "ix_agent_executions_agent_history",
        "agent_id",
        text("execution_start DESC"),
        text("id DESC"),
    ),
    Index(
        "ix_agent_executions_user_history",
        "user_id",
        text("execution_start DESC"),
        text("id DESC"),
    ),
    # The watchdog's questions, over the few open runs only: running runs not seen lately,
    # running runs with a deadline, runs pending since long ago.
    Index(
        "ix_agent_executions_running_last_seen_at",
        "last_seen_at",
        postgresql_where=text("status = 'running'"),
    ),
    Index(
        "ix_agent_executions_running_with_timeout",
        "execution_start",
        postgresql_where=text("status = 'running' AND timeout_ms IS NOT NULL"),
    ),
    Index(
        "ix_agent_executions_pending_since",
        "execution_start",
        postgresql_where=text("status = 'pending'"),
    ),
    # The list filters on what a run carries, and the children of a run (its tree).
    Index("ix_agent_executions_tags", "tags", postgresql_using="gin"),
    Index(
        "ix_agent_executions_metadata",
        "metadata",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    ),
    Index(
        "ix_agent_executions_children",
        "parent_execution_id",
        text("execution_start DESC"),
        text("id DESC"),
        postgresql_where=text("parent_execution_id IS NOT NULL"),
    ),
)

# Where the projector is in each partition, written in the same transaction as the rows.
projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("consumer_group", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    # Records of this partition sent to the dead-letter topic, counted exactly once.
    Column("dead_lettered", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer_group", "topic", "partition"),
)


def _status_counts(name: str, key: str) -> Table:
    """How many executions each agent (or user) has in each status.

    Kept by statement-level triggers on agent_executions (migration 0003), in the same
    transaction as the rows, so exact totals cost a lookup instead of a count.
    """
    return Table(
        name,
        metadata,
        Column(key, UUID(as_uuid=True), nullable=False),
        Column("status", Text, nullable=False),
        Column("n", BigInteger, nullable=False),
        PrimaryKeyConstraint(key, "status"),
    )


execution_counts_by_agent = _status_counts("execution_counts_by_agent", "agent_id")
execution_counts_by_user = _status_counts("execution_counts_by_user", "user_id")


# Users erased from the read model (`agent-history erase`): their late events are dropped, by
# the live projector and by replay alike. Not part of what replay rebuilds, so it outlives it.
erased_users = Table(
    "erased_users",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Executions the erasures of this user deleted (every run of the command adds its own).
    Column("executions_removed", BigInteger, nullable=False, server_default=text("0")),
    # Events of this user the live projector dropped after the erasure (replay counts its own).
    Column("dropped_events", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _rollup_key() -> list[Column[object]]:
    return [
        Column("agent_id", UUID(as_uuid=True), nullable=False),
        Column("period", Text, nullable=False),  # 'hour', 'day' or 'month', in UTC
        Column("bucket_start", DateTime(timezone=True), nullable=False),
    ]


def _model() -> Column[object]:
    return Column("model", Text, nullable=False)  # '' for runs without a model


# Pages of the rollups (here and below) filled to 70 %: every batch rewrites an agent's current
# rows, and with room on their page the new versions stay there (heap-only updates, pruned as
# the page is read) instead of moving and leaving dead ones behind (migration 0013).
ROLLUP_STORAGE = {"fillfactor": 70}


# An agent's runs summed per period (migration 0006), kept by statement-level triggers on
# agent_executions in the same transaction as the rows; replay fills them with
# fill_execution_rollups(). Sums are exact (numeric); cost per currency ('' for no cost).
execution_rollups = Table(
    "execution_rollups",
    metadata,
    *_rollup_key(),
    _model(),
    Column("status", Text, nullable=False),
    Column("cost_currency", Text, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("timed", BigInteger, nullable=False),  # runs with a known execution_time_ms
    Column("input_tokens", Numeric, nullable=False),
    Column("input_tokens_n", BigInteger, nullable=False),
    Column("output_tokens", Numeric, nullable=False),
    Column("output_tokens_n", BigInteger, nullable=False),
    Column("cost", Numeric, nullable=False),
    PrimaryKeyConstraint("agent_id", "period", "bucket_start", "model", "status", "cost_currency"),
    postgresql_with=ROLLUP_STORAGE,
)


# The durations of the same runs as log-bucket histograms (migration 0010), per model, per
# status (0016) and over both: bucket i >= 0 counts durations in (GAMMA^(i-1), GAMMA^i]
# ms, bucket -1 those of 0 ms (execution_duration_bucket() in SQL). Dense: counts[k] (1-based)
# is bucket lo + k - 1, the first and last counts are not zero, and a row whose runs are all
# gone holds '{}'.
# Rows up to ~8 kB (arrays of ~1,000 buckets) stay whole and uncompressed: the trigger rewrites
# a row on every write, and compressing it each time made that 15x slower (migration 0010).
SKETCH_STORAGE = {"toast_tuple_target": 8160, **ROLLUP_STORAGE}


def _sketch(name: str, *key: Column[object]) -> Table:
    return Table(
        name,
        metadata,
        *_rollup_key(),
        *key,
        Column("lo", SmallInteger, nullable=False),
        Column("counts", ARRAY(BigInteger), nullable=False),
        PrimaryKeyConstraint("agent_id", "period", "bucket_start", *(c.name for c in key)),
        postgresql_with=SKETCH_STORAGE,
    )


execution_duration_sketches = _sketch("execution_duration_sketches", _model())
# Every status but SKETCHED_BY_DIFFERENCE, whose sketch is the all-models one less the others'.
execution_duration_sketches_by_status = _sketch(
    "execution_duration_sketches_by_status", Column("status", Text, nullable=False)
)
SKETCHED_BY_DIFFERENCE = "completed"
execution_duration_sketches_all_models = _sketch("execution_duration_sketches_all_models")
# Every table the rollup trigger keeps (replay fills its own, the benchmark twins them).
ROLLUPS = (
    execution_rollups,
    execution_duration_sketches,
    execution_duration_sketches_by_status,
    execution_duration_sketches_all_models,
)

# The sketch's relative error and bucket growth factor.
SKETCH_ERROR = 0.01
GAMMA = (1 + SKETCH_ERROR) / (1 - SKETCH_ERROR)


def bucket_value(bucket: int) -> float:
    """The value a sketch reports for a bucket: within SKETCH_ERROR of every duration in it."""
    if bucket < 0:
        return 0.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


# Dead letters that `agent-history dlq redrive` put back on the event topic, by their place in
# the dead-letter topic: each is redriven once. Not part of what replay rebuilds.
dlq_redriven = Table(
    "dlq_redriven",
    metadata,
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("redriven_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("topic", "partition", "offset"),
)


# Login codes traded for a token (api/login.py), until they expire: each code once, whichever
# API process gets it. Not part of what replay rebuilds.
redeemed_login_codes = Table(
    "redeemed_login_codes",
    metadata,
    Column("jti", Text, primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
