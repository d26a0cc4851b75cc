-- Indexes for the farm domains' typical lists, and the stored day of the
-- finance statistics (issue #16), found with the benchmark
-- `cargo bench -p control-server --bench domains_lists` and EXPLAIN
-- (docs/benchmarks.md). The same number in migrations/sqlite/ holds
-- the indexes both backends need; the ones below marked PostgreSQL-only
-- have a counterpart there already (same columns, plain order).

-- Lists sort text byte-wise (`COLLATE "C"`, SQLite's order): only an index
-- built with that collation serves such a sort. The default-collation
-- indexes on the same columns stay: equality filters use them and cannot
-- use a "C" one. PostgreSQL-only (SQLite: bots_name_idx,
-- workspace_calendar_date_idx).
CREATE INDEX bots_name_c_idx ON bots(tenant_id, name COLLATE "C");
CREATE INDEX workspace_calendar_date_c_idx ON workspace_calendar_events(tenant_id, event_date COLLATE "C");

-- Empty values sort last in both orders (`NULLS LAST`). A plain index
-- serves the ascending order on PostgreSQL and the descending one on
-- SQLite; fraud scores are listed riskiest first, so PostgreSQL's index is
-- built in that order. PostgreSQL-only (SQLite: resources_proxies_fraud_idx).
DROP INDEX resources_proxies_fraud_idx;
CREATE INDEX resources_proxies_fraud_idx ON resources_proxies(tenant_id, fraud_score DESC NULLS LAST);

-- Kanban boards sort by `order` (the status index serves it only with a
-- status filter).
CREATE INDEX workspace_kanban_order_idx ON workspace_kanban_tasks(tenant_id, sort_order);

-- Finance statistics group operations by UTC day. Grouping on an
-- expression of `date_ms` made PostgreSQL sort every operation of the range
-- (spilling to disk at the default work_mem) and again per day for the
-- distinct bots; the day number is now stored beside `date_ms` (written by
-- the store on every insert and update) and this index hands the rows over
-- in (day, bot) order with what the statistics read, without the table.
ALTER TABLE finance_operations ADD COLUMN day BIGINT;
UPDATE finance_operations SET day = (date_ms - ((date_ms % 86400000) + 86400000) % 86400000) / 86400000;
CREATE INDEX finance_operations_day_idx ON finance_operations(tenant_id, day, bot_id, date_ms, type, amount, project_id, gold_amount);
