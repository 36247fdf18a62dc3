-- Receipts for sender systems: the rows of memo.receipts, served by the
-- receipts API (stages/receipts, see its DESIGN.md). Portable to 18.16 and
-- 24+: Date/DateTime plus a millisecond column, String, UUID.
--
-- ORDER BY (sender_system, receipt_time, receipt_ms, receipt_id): every
-- read is one sender system's receipts in time order, so a page of them is
-- a few adjacent granules and `since` is a key range.
--
-- ReplacingMergeTree(version): deleting a receipt inserts a new version of
-- its row (same sorting key, deleted = 1, version = deletion time in ns,
-- empty body). Reads use FINAL and `deleted = 0`, so the deletion counts at
-- once; background merges then drop the old version for good. The sink
-- writes version 0.
--
-- Monthly partitions by the receipt's date: retention can drop whole
-- months, and a deletion mark, which copies receipt_date, lands in the
-- partition of the row it replaces.
--
-- kafka_partition and kafka_offset say where a row came from in
-- memo.receipts; the sink uses them to write every record exactly once
-- across crashes and retries (as the event log does).
CREATE TABLE IF NOT EXISTS {{.DB}}.receipts {{.OnCluster}}
(
    receipt_date    Date,
    receipt_time    DateTime('UTC'),
    receipt_ms      UInt16,
    sender_system   String,
    sender_org      String,
    receipt_id      UUID,
    transmission_id String,
    message_uuid    String,
    receipt_type    String,
    receipt_status  String,
    error_code      String,
    body            String,
    deleted         UInt8,
    version         UInt64,
    deleted_at      DateTime('UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(receipt_date)
ORDER BY (sender_system, receipt_time, receipt_ms, receipt_id)
SETTINGS index_granularity = 8192;
