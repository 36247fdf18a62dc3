-- Block deduplication by insert_deduplication_token on servers that have it
-- (Features.InsertDeduplicationToken). Plain MergeTree ignores the token
-- unless the table keeps a window of recent block ids. The eventlog sink's
-- row check is what makes writes exactly-once; this is a second guard for
-- a replica that has not seen a part yet.
ALTER TABLE {{.DB}}.events {{.OnCluster}} MODIFY SETTING non_replicated_deduplication_window = 1000;

ALTER TABLE {{.DB}}.event_stats_daily {{.OnCluster}} MODIFY SETTING non_replicated_deduplication_window = 1000;
