"""The database schema: DDL for each version, applied in order and tracked by user_version.

Append a migration to `MIGRATIONS` to change the schema; never edit one that has shipped.
Timestamps are REAL Unix seconds (UTC). Task runs are keyed by (flow_run_id, task_slug,
map_index), with map_index -1 for a task that is not a mapped child.
"""

from __future__ import annotations

APPLICATION_ID = 0x44555241  # "DURA": marks the file as a durable database
"""Stored in `PRAGMA application_id` so that a foreign SQLite file is recognised."""

V1 = """
CREATE TABLE flows (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,
    source_path  TEXT,
    created_at   REAL NOT NULL,
    UNIQUE (name, version)
);

CREATE TABLE flow_runs (
    id                    TEXT PRIMARY KEY,
    flow_id               INTEGER NOT NULL REFERENCES flows (id),
    flow_name             TEXT NOT NULL,
    fingerprint           TEXT NOT NULL,
    source_path           TEXT,
    state                 TEXT NOT NULL,
    state_message         TEXT,
    parameters            BLOB,
    parameters_serializer TEXT NOT NULL,
    created_at            REAL NOT NULL,
    started_at            REAL,
    ended_at              REAL,
    updated_at            REAL NOT NULL
);
CREATE INDEX flow_runs_by_created ON flow_runs (created_at);
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_name, created_at);
CREATE INDEX flow_runs_by_state ON flow_runs (state, created_at);

CREATE TABLE task_runs (
    id            TEXT PRIMARY KEY,
    flow_run_id   TEXT NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    task_slug     TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    map_index     INTEGER NOT NULL DEFAULT -1,
    state         TEXT NOT NULL,
    state_message TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    has_result    INTEGER NOT NULL DEFAULT 0,
    started_at    REAL,
    ended_at      REAL,
    updated_at    REAL NOT NULL,
    UNIQUE (flow_run_id, task_slug, map_index)
);

-- Append-only: one row per transition of a flow run (task_run_id NULL) or task run.
CREATE TABLE states (
    id           INTEGER PRIMARY KEY,
    flow_run_id  TEXT NOT NULL REFERENCES flow_runs (id) ON DELETE CASCADE,
    task_run_id  TEXT REFERENCES task_runs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    message      TEXT,
    timestamp    REAL NOT NULL,
    details      TEXT
);
CREATE INDEX states_by_flow_run ON states (flow_run_id, id);
CREATE INDEX states_by_task_run ON states (task_run_id, id);

-- The value of a task run's terminal state: a Success's return value, a Failed's exception.
CREATE TABLE results (
    task_run_id  TEXT PRIMARY KEY REFERENCES task_runs (id) ON DELETE CASCADE,
    serializer   TEXT NOT NULL,
    value        BLOB NOT NULL,
    created_at   REAL NOT NULL
);

CREATE TABLE logs (
    id           INTEGER PRIMARY KEY,
    flow_run_id  TEXT,
    task_run_id  TEXT,
    timestamp    REAL NOT NULL,
    level        INTEGER NOT NULL,
    logger       TEXT NOT NULL,
    message      TEXT NOT NULL
);
CREATE INDEX logs_by_flow_run ON logs (flow_run_id, id);
"""

V2 = """
-- Cached task results (cache_for): found by cache_key (shared across tasks and flows)
-- and map index, newest first. An entry holds its own copy of the value, so it outlives
-- the run that wrote it and a restarted task run cannot change it.
CREATE TABLE cache (
    id                INTEGER PRIMARY KEY,
    cache_key         TEXT NOT NULL,
    map_index         INTEGER NOT NULL DEFAULT -1,
    flow_run_id       TEXT NOT NULL,
    task_run_id       TEXT NOT NULL,
    serializer        TEXT NOT NULL,
    value             BLOB NOT NULL,
    hashed_inputs     TEXT NOT NULL,
    hashed_parameters TEXT NOT NULL,
    created_at        REAL NOT NULL,
    expires_at        REAL NOT NULL
);
CREATE INDEX cache_by_key ON cache (cache_key, map_index, created_at);
"""

V3 = """
-- A task run's own name, from the task's task_run_name template (NULL: use the task's).
ALTER TABLE task_runs ADD COLUMN run_name TEXT;
-- A run's task runs in creation order without a sort (a resume reads all of them).
CREATE INDEX task_runs_by_flow_run ON task_runs (flow_run_id);
"""

V4 = """
-- Registration (durable register). A registered version holds a copy of the flow for a
-- worker to load: the Flow cloudpickled, a hash telling a changed flow from an unchanged
-- one, and its schedule, cloudpickled and described in one line. Rows that flow runs
-- create leave these columns NULL: registered_at tells the two kinds apart.
ALTER TABLE flows ADD COLUMN registered_at REAL;
ALTER TABLE flows ADD COLUMN flow_blob BLOB;
ALTER TABLE flows ADD COLUMN flow_hash TEXT;
ALTER TABLE flows ADD COLUMN schedule BLOB;
ALTER TABLE flows ADD COLUMN schedule_text TEXT;
"""

V5 = """
-- Scheduled runs (durable worker): one row per schedule tick, created once. The UNIQUE key
-- and INSERT ... ON CONFLICT DO NOTHING keep several workers from creating a tick twice;
-- id is the flow run id the tick's run gets (derived from the key). status: Scheduled
-- (due or waiting to be claimed), Skipped (a missed tick the catchup policy does not
-- run: recorded, never dropped), Running (claimed by a worker), Finished, Crashed.
-- A claim carries a lease (token, expiry) and its owner process (pid, start token) so
-- that any worker can tell a dead owner from a live one.
CREATE TABLE scheduled_runs (
    id               TEXT PRIMARY KEY,
    flow_name        TEXT NOT NULL,
    flow_version     INTEGER NOT NULL,
    scheduled_for    REAL NOT NULL,
    parameters_hash  TEXT NOT NULL,
    parameters       BLOB NOT NULL,
    status           TEXT NOT NULL,
    message          TEXT,
    created_at       REAL NOT NULL,
    claimed_by       TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    pid              INTEGER,
    pid_started      TEXT,
    launches         INTEGER NOT NULL DEFAULT 0,
    crashes          INTEGER NOT NULL DEFAULT 0,
    ended_at         REAL,
    UNIQUE (flow_name, flow_version, scheduled_for, parameters_hash)
);
CREATE INDEX scheduled_runs_by_status ON scheduled_runs (status, scheduled_for);
CREATE INDEX scheduled_runs_by_flow ON scheduled_runs (flow_name, scheduled_for);
"""

V6 = """
-- Operations (durable trigger, backfill, schedule pause, cancel, workers).
-- kind: how a scheduled run came to be: a schedule tick ('schedule'), `durable trigger`
-- ('manual') or `durable backfill` ('backfill'). Only schedule ticks move a flow's tick
-- cursor, so a trigger or a backfill never hides the ticks a stopped worker missed.
-- status gains Late (due, unclaimed past the grace period, still runs) and Cancelled.
ALTER TABLE scheduled_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'schedule';
ALTER TABLE scheduled_runs ADD COLUMN claimed_at REAL;
-- A cancel asked for while a claimed run's process has not created its flow run yet.
ALTER TABLE scheduled_runs ADD COLUMN cancel_requested_at REAL;
CREATE INDEX scheduled_runs_by_kind ON scheduled_runs (flow_name, kind, scheduled_for);
-- A registered version's catchup policy (Flow(catchup=...)), NULL meaning the worker's default.
ALTER TABLE flows ADD COLUMN catchup TEXT;
-- Settings of a flow by name, across versions: a paused schedule records its ticks as
-- Skipped instead of running them.
CREATE TABLE flow_settings (
    name      TEXT PRIMARY KEY,
    paused_at REAL
);
-- The process running a flow run (set with each Running state), so `durable cancel`
-- can tell a live run (asked to stop: cancel_requested_at) from an abandoned one
-- (cancelled on the spot).
ALTER TABLE flow_runs ADD COLUMN pid INTEGER;
ALTER TABLE flow_runs ADD COLUMN pid_started TEXT;
ALTER TABLE flow_runs ADD COLUMN cancel_requested_at REAL;
-- Workers that have run on this database (durable workers).
CREATE TABLE workers (
    name         TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    pid_started  TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at   REAL
);
-- Each flow version's graph (durable.core.identity.shape) as JSON: its tasks in
-- dependency order and its edges, so that a reader (the TUI) draws the flow and orders
-- its task runs without unpickling anything. Written when a run or a registration
-- creates the version. NULL for a version stored before, until its next run.
ALTER TABLE flows ADD COLUMN graph TEXT;
-- The TUI lists the latest scheduled runs of every status, newest first: without this,
-- that is a scan and sort of the whole table (120 ms at 60,000 rows, bench/tui_db.py).
-- A tick's time never changes, so status updates leave this index alone.
CREATE INDEX scheduled_runs_by_time ON scheduled_runs (scheduled_for);
"""

V7 = """
-- Re-runs a worker carries out (the terminal UI's retry from failure and approve): a
-- scheduled run is queued again with rerun = 'resume' (continue it, e.g. after an
-- approval) or 'restart' (run its failed task runs and their downstream again), or
-- 'restart:' and a JSON list of task slugs (restart from those tasks). requested_at is
-- when it was queued (a queued re-run is never Late: its tick time is long past).
ALTER TABLE scheduled_runs ADD COLUMN rerun TEXT;
ALTER TABLE scheduled_runs ADD COLUMN requested_at REAL;
-- A registered version's parameters as JSON, for readers that must not unpickle the
-- flow (the TUI's trigger form): a list of {"name", "default" (JSON text or NULL),
-- "required"}.
ALTER TABLE flows ADD COLUMN parameters TEXT;
-- The audit log: every action taken through durable.control (trigger, cancel, restart,
-- approve, pause), by whom (the OS user), on what, and how it ended.
CREATE TABLE actions (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    actor   TEXT NOT NULL,
    verb    TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ok      INTEGER NOT NULL
);
-- Task concurrency limits by tag (Prefect 1's task concurrency limits): at most `slots`
-- task runs with the tag run at once, across every flow run on this database. A slot
-- names its holder process, so a slot of a process that died is taken back.
CREATE TABLE concurrency_limits (
    tag   TEXT PRIMARY KEY,
    slots INTEGER NOT NULL
);
CREATE TABLE concurrency_slots (
    tag         TEXT NOT NULL,
    task_run_id TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    pid_started TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    PRIMARY KEY (tag, task_run_id)
);
"""

MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4, V5, V6, V7)
"""Migration i (0-based) takes the schema from version i to version i + 1."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this durable writes."""
