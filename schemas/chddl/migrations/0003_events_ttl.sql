-- Retention by TTL, on servers that have it (Features.TTL): rows older than
-- the retention go in background merges, and with ttl_only_drop_parts
-- (set first) whole parts are dropped instead of rewritten. Re-applied when
-- the retention changes. DropExpiredPartitions does the same job on every
-- server, 18.16 included.
ALTER TABLE {{.DB}}.events {{.OnCluster}} MODIFY SETTING ttl_only_drop_parts = 1;

ALTER TABLE {{.DB}}.events {{.OnCluster}} MODIFY TTL event_date + toIntervalDay({{.RetentionDays}});
