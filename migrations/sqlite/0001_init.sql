-- hsync's bookkeeping in SQLite (the destination file, or a standalone state file beside the
-- config): stream checkpoints, run history, property snapshots and the daily budget ledger.
-- Instants are fixed-width ISO-8601 UTC text, so they sort and compare correctly as text.

-- One row per stream. `position` only moves forward (see sql/sqlite/commit_checkpoint.sql).
create table _hsync_checkpoints (
    stream text primary key,
    position integer not null,
    -- The stream's own state, as JSON text.
    state text not null,
    updated_at text not null
);

-- One row per run of a stream, for `hsync status`.
create table _hsync_runs (
    id integer primary key autoincrement,
    stream text not null,
    started_at text not null,
    finished_at text,
    -- running, ok, failed
    status text not null,
    rows_written integer not null default 0,
    -- The error's message (never row values).
    error text
);

create index _hsync_runs_by_stream on _hsync_runs (stream, id);

-- The property definitions seen last time for an object, and the orphaned columns already
-- reported, both as JSON text.
create table _hsync_property_snapshots (
    object text primary key,
    properties text not null,
    acknowledged_removed text not null,
    updated_at text not null
);

-- The daily API budget: calls reserved on `day` (the portal's calendar day). One ledger row.
create table _hsync_budget (
    ledger text primary key,
    day text not null,
    reserved integer not null,
    updated_at text not null
);
