-- hsync's tables in a SQLite destination besides the bookkeeping from migrations/sqlite:
-- rejected values and association edges. Idempotent; run by `prepare`.

-- Values hsync could not store in their typed column (the column holds NULL). One row per
-- distinct raw value of a property of a record: replaying a batch does not double them.
create table if not exists _hsync_rejects (
    object text not null,
    id text not null,
    property text not null,
    raw_value text not null,
    reason text not null,
    seen_at text not null,
    primary key (object, id, property, raw_value)
);

-- Every association edge of every object pair in one table, the pair as columns. A vanished
-- edge keeps its row with `deleted_at` set (a tombstone).
create table if not exists associations (
    from_type text not null,
    from_id integer not null,
    to_type text not null,
    to_id integer not null,
    type_id integer not null,
    category text,
    label text,
    synced_at TIMESTAMP_TEXT,
    deleted_at TIMESTAMP_TEXT,
    primary key (from_type, from_id, to_type, to_id, type_id)
);

create index if not exists associations_by_target on associations (to_type, to_id);
