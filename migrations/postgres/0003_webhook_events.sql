-- HubSpot webhook events accepted by `hsync run` and not yet applied (src/webhooks): each is
-- stored before the receiver answers 2xx, so an accepted event survives a crash, and deleted
-- once the records it names were read back and merged. Events carry ids and property names,
-- never property values.
create table webhook_events (
    seq bigint generated always as identity primary key,
    -- HubSpot may send an event more than once (retries, duplicates): one row per key.
    dedupe_key text not null unique,
    object_id bigint not null,
    -- Epoch milliseconds.
    occurred_at bigint not null,
    received_at bigint not null,
    -- The event as hsync keeps it (src/webhooks/event.rs), JSON text.
    event text not null
);

-- The signatures of deliveries accepted recently: the same signed request sent again is a
-- replay. Rows older than the signature's validity (five minutes) are pruned.
create table webhook_deliveries (
    signature text primary key,
    received_at bigint not null
);
