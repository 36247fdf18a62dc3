-- Cluster schema only (Options.Cluster): Distributed tables over the local
-- replicated ones, for reads across every shard of the cluster. memoflow's
-- own writers insert into the local tables (the exactly-once sinks read back
-- from the server they wrote to); with one shard, as deployed, the local
-- tables hold everything and the query APIs read them. Ad-hoc SQL of data
-- teams, and the query APIs once the cluster has several shards, read the
-- *_all tables. The sharding key spreads a message's rows to one shard.
CREATE TABLE IF NOT EXISTS {{.DB}}.events_all {{.OnCluster}} AS {{.DB}}.events
ENGINE = Distributed({{.Cluster}}, {{.DB}}, events, cityHash64(message_uuid));

CREATE TABLE IF NOT EXISTS {{.DB}}.event_stats_daily_all {{.OnCluster}} AS {{.DB}}.event_stats_daily
ENGINE = Distributed({{.Cluster}}, {{.DB}}, event_stats_daily);

CREATE TABLE IF NOT EXISTS {{.DB}}.events_by_message_all {{.OnCluster}} AS {{.DB}}.events_by_message
ENGINE = Distributed({{.Cluster}}, {{.DB}}, events_by_message);

CREATE TABLE IF NOT EXISTS {{.DB}}.receipts_all {{.OnCluster}} AS {{.DB}}.receipts
ENGINE = Distributed({{.Cluster}}, {{.DB}}, receipts);
