-- Records one rejected value. Binds: ?1 object, ?2 record id, ?3 property, ?4 raw value,
-- ?5 reason.
insert into _hsync_rejects (object, id, property, raw_value, reason, seen_at)
values (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
on conflict (object, id, property, raw_value) do update
set reason = excluded.reason,
    seen_at = excluded.seen_at
