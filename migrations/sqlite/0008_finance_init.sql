-- Finance operations (issue #16). Daily statistics and the gold price
-- history are computed from this table in SQL (UTC day buckets of `date_ms`).

CREATE TABLE finance_operations (
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    id                 TEXT NOT NULL,
    type               TEXT NOT NULL CHECK (type IN ('income', 'expense')),
    category           TEXT NOT NULL,
    description        TEXT,
    amount             REAL NOT NULL,
    currency           TEXT NOT NULL CHECK (currency IN ('USD', 'gold')),
    date_ms            BIGINT NOT NULL,
    bot_id             TEXT,
    project_id         TEXT CHECK (project_id IN ('wow_tbc', 'wow_midnight')),
    gold_amount        REAL,
    gold_price_at_time REAL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX finance_operations_date_idx ON finance_operations(tenant_id, date_ms);
CREATE INDEX finance_operations_created_idx ON finance_operations(tenant_id, created_at);
CREATE INDEX finance_operations_type_idx ON finance_operations(tenant_id, type);
CREATE INDEX finance_operations_category_idx ON finance_operations(tenant_id, category);
CREATE INDEX finance_operations_project_idx ON finance_operations(tenant_id, project_id);
CREATE INDEX finance_operations_bot_idx ON finance_operations(tenant_id, bot_id);
