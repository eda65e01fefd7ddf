-- hsync's bookkeeping tables. hsync runs this with search_path set to its state schema
-- (`hsync` by default, configurable), so no name here is schema-qualified.

-- One row per stream; `position` only moves forward (see sql/postgres/commit_checkpoint.sql).
create table checkpoints (
    stream text primary key,
    position bigint not null,
    state jsonb not null,
    updated_at timestamptz not null default now()
);

-- Run history for `hsync status`.
create table runs (
    id bigint generated always as identity primary key,
    stream text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null,
    row_count bigint not null default 0,
    error text
);

create index runs_started_at on runs (started_at desc, id desc);

-- The property definitions seen last time per object, and the columns whose properties
-- disappeared and were already reported.
create table property_snapshots (
    object text primary key,
    properties jsonb not null,
    acknowledged_removed jsonb not null default '[]'::jsonb,
    updated_at timestamptz not null default now()
);

-- The daily API budget ledger: one row (the portal's day and the calls reserved on it).
create table budget (
    singleton boolean primary key default true check (singleton),
    day date not null,
    reserved bigint not null check (reserved >= 0),
    updated_at timestamptz not null default now()
);
