-- Stores a stream's checkpoint unless the stored one is further along: a replayed or
-- out-of-order commit never moves a stream backwards. Returns a row only when it stored.
-- Runs with search_path set to the state schema (the state store's pool sets it on connect;
-- the merge transaction sets it locally), so the table name is not qualified here.
-- $1 stream, $2 position, $3 state (jsonb).
insert into checkpoints (stream, position, state, updated_at)
values ($1, $2, $3, now())
on conflict (stream) do update
set position = excluded.position,
    state = excluded.state,
    updated_at = excluded.updated_at
where checkpoints.position <= excluded.position
returning true
