-- Statistics: events and bytes per day x sender organisation x sender
-- system x recipient system x contact point x message type x post type x
-- recipient type x tag x receipt status, kept up to date by a materialized
-- view on every insert into events.
--
-- Read it with GROUP BY and sum(): rows with the same key are only summed
-- when parts merge, and on 18.16 count() with FINAL on a Summing table is
-- wrong (returns 0).
CREATE TABLE IF NOT EXISTS {{.DB}}.event_stats_daily {{.OnCluster}}
(
    day              Date,
    sender_org       String,
    sender_system    String,
    recipient_system String,
    contact_point    String,
    message_type     String,
    post_type        String,
    recipient_type   String,
    tag              String,
    receipt_status   String,
    events           UInt64,
    size_bytes       UInt64
)
ENGINE = SummingMergeTree((events, size_bytes))
PARTITION BY toYYYYMM(day)
ORDER BY (sender_org, sender_system, day, tag, receipt_status, recipient_system, contact_point, message_type, post_type, recipient_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.event_stats_daily_mv {{.OnCluster}}
TO {{.DB}}.event_stats_daily
AS SELECT
    event_date AS day,
    sender_org,
    sender_system,
    recipient_system,
    contact_point,
    message_type,
    post_type,
    recipient_type,
    tag,
    receipt_status,
    count() AS events,
    sum(size_bytes) AS size_bytes
FROM {{.DB}}.events
GROUP BY day, sender_org, sender_system, recipient_system, contact_point, message_type, post_type, recipient_type, tag, receipt_status;
