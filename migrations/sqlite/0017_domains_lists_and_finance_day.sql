-- Indexes for the farm domains' typical lists, and the stored day of the
-- finance statistics (issue #16), found with the benchmark
-- `cargo bench -p control-server --bench domains_lists` and EXPLAIN
-- (docs/benchmarks.md). migrations/postgres/0017 also adds "C"
-- collation and `DESC NULLS LAST` variants of indexes that exist here
-- already (SQLite sorts text byte-wise and serves `DESC NULLS LAST` with a
-- plain index).

-- Kanban boards sort by `order` (the status index serves it only with a
-- status filter).
CREATE INDEX workspace_kanban_order_idx ON workspace_kanban_tasks(tenant_id, sort_order);

-- Finance statistics group operations by UTC day: the day number is stored
-- beside `date_ms` (written by the store on every insert and update) and
-- this index hands the rows over in (day, bot) order with what the
-- statistics read, without the table (see the PostgreSQL file).
ALTER TABLE finance_operations ADD COLUMN day BIGINT;
UPDATE finance_operations SET day = (date_ms - ((date_ms % 86400000) + 86400000) % 86400000) / 86400000;
CREATE INDEX finance_operations_day_idx ON finance_operations(tenant_id, day, bot_id, date_ms, type, amount, project_id, gold_amount);
