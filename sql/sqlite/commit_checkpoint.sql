-- Stores a stream checkpoint unless the stored one has a higher position, so a replayed batch
-- can never move a stream backwards. Used by the state store and, inside the merge's
-- transaction, by the SQLite destination. Binds: ?1 stream, ?2 position, ?3 state (JSON text).
-- One row changed means the checkpoint was stored.
insert into _hsync_checkpoints (stream, position, state, updated_at)
values (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
on conflict (stream) do update
set position = excluded.position,
    state = excluded.state,
    updated_at = excluded.updated_at
where _hsync_checkpoints.position <= excluded.position
