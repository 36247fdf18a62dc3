-- The event log: one row per event, metadata only (never message content).
-- Portable to ClickHouse 18.16 and 24+: Date/DateTime plus a millisecond
-- column instead of DateTime64, String instead of LowCardinality, no TTL
-- (a gated later migration adds it where the server has it).
--
-- ORDER BY follows the main queries: a sender organisation (and system)
-- looks at a period, then by tag, then at one message. Monthly partitions:
-- 60 for 5 years, and retention drops whole months.
--
-- kafka_partition, kafka_offset and event_index say where a row came from
-- in memo.events; the eventlog sink uses them to write every event exactly
-- once across crashes and retries.
CREATE TABLE IF NOT EXISTS {{.DB}}.events {{.OnCluster}}
(
    event_date       Date,
    event_time       DateTime('UTC'),
    event_ms         UInt16,
    sender_org       String,
    sender_system    String,
    tag              String,
    message_uuid     String,
    transmission_id  String,
    recipient_type   String,
    recipient_id     String,
    recipient_key_id String,
    contact_point    String,
    recipient_system String,
    message_type     String,
    post_type        String,
    size_bytes       UInt64,
    attachments      UInt16,
    value_date       Date,
    receipt_status   String,
    error_code       String,
    actor            String,
    kafka_partition  UInt32,
    kafka_offset     UInt64,
    event_index      UInt16
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (sender_org, sender_system, event_date, tag, message_uuid)
SETTINGS index_granularity = 8192;
