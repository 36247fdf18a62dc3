-- Retention of the messageUUID lookup by TTL, on servers that have it
-- (Features.TTL), with the same period as events (migration 0003); re-applied
-- when the retention changes. On 18.16 the eventquery stage's retention loop
-- drops its expired months together with those of events.
ALTER TABLE {{.DB}}.events_by_message {{.OnCluster}} MODIFY SETTING ttl_only_drop_parts = 1;

ALTER TABLE {{.DB}}.events_by_message {{.OnCluster}} MODIFY TTL event_date + toIntervalDay({{.RetentionDays}});
