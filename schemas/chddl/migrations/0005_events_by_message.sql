-- Where a message's events are: messageUUID -> (sender organisation, sender
-- system, day). events is ordered by (sender_org, sender_system, event_date,
-- tag, message_uuid), so `WHERE message_uuid = ?` alone cannot use its
-- primary key and reads the message_uuid column of every month (seconds at
-- 100M rows, minutes at the 5 billion rows of 5 years). This table is
-- ordered by message_uuid: one index look-up gives the few (org, system,
-- day) prefixes, and the query on events then reads only those granules.
-- 18.16 has neither skip indexes nor projections; on 24+ a projection of
-- events ordered by message_uuid would do the same job (docs/statistics.md).
--
-- ReplacingMergeTree: the view writes one row per insert block and key, so
-- a message whose events arrive in several batches has repeated rows until
-- merges fold them; readers use DISTINCT or GROUP BY and never rely on it.
-- Monthly partitions like events, so retention drops the same months.
CREATE TABLE IF NOT EXISTS {{.DB}}.events_by_message {{.OnCluster}}
(
    message_uuid  String,
    sender_org    String,
    sender_system String,
    event_date    Date
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (message_uuid, sender_org, sender_system, event_date);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.events_by_message_mv {{.OnCluster}}
TO {{.DB}}.events_by_message
AS SELECT message_uuid, sender_org, sender_system, event_date
FROM {{.DB}}.events
WHERE message_uuid != ''
GROUP BY message_uuid, sender_org, sender_system, event_date;

-- Rows written before the view existed. The view is created first, so a row
-- inserted meanwhile is in the table twice at worst, which readers ignore.
-- No GROUP BY: it streams, whatever the size of the log (merges fold the
-- repeats). Re-running it after a crash only adds more repeats.
INSERT INTO {{.DB}}.events_by_message (message_uuid, sender_org, sender_system, event_date)
SELECT message_uuid, sender_org, sender_system, event_date
FROM {{.DB}}.events
WHERE message_uuid != '';
