-- Resources: licenses, proxies, subscriptions (issue #16). One table per
-- kind: the typed fields are columns (indexed where lists filter or sort),
-- anything else the client sends is kept in `extras` (a JSON object).
-- Timestamps are epoch milliseconds; booleans 0/1. A proxy's password is
-- stored sealed (AES-256-GCM under the server data key), never in clear.

CREATE TABLE resources_licenses (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    license_key  TEXT,
    license_type TEXT,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'revoked')),
    bot_ids      TEXT,
    bot_names    TEXT,
    expires_at   BIGINT,
    extras       TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX resources_licenses_created_idx ON resources_licenses(tenant_id, created_at);
CREATE INDEX resources_licenses_status_idx ON resources_licenses(tenant_id, status);
CREATE INDEX resources_licenses_expires_idx ON resources_licenses(tenant_id, expires_at);
CREATE INDEX resources_licenses_key_idx ON resources_licenses(tenant_id, license_key);

CREATE TABLE resources_proxies (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    id            TEXT NOT NULL,
    ip            TEXT,
    port          BIGINT,
    login         TEXT,
    secret_sealed TEXT,
    provider      TEXT,
    country       TEXT,
    country_code  TEXT,
    proxy_type    TEXT CHECK (proxy_type IN ('http', 'socks5')),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'banned')),
    bot_id        TEXT,
    fraud_score   BIGINT,
    vpn           BIGINT,
    proxy         BIGINT,
    tor           BIGINT,
    bot_status    TEXT,
    isp           TEXT,
    organization  TEXT,
    city          TEXT,
    region        TEXT,
    zip_code      TEXT,
    timezone      TEXT,
    latitude      DOUBLE PRECISION,
    longitude     DOUBLE PRECISION,
    expires_at    BIGINT,
    last_checked  BIGINT,
    extras        TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX resources_proxies_created_idx ON resources_proxies(tenant_id, created_at);
CREATE INDEX resources_proxies_status_idx ON resources_proxies(tenant_id, status);
CREATE INDEX resources_proxies_bot_idx ON resources_proxies(tenant_id, bot_id);
CREATE INDEX resources_proxies_expires_idx ON resources_proxies(tenant_id, expires_at);
CREATE INDEX resources_proxies_fraud_idx ON resources_proxies(tenant_id, fraud_score);
CREATE INDEX resources_proxies_ip_idx ON resources_proxies(tenant_id, ip);

CREATE TABLE resources_subscriptions (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    id                TEXT NOT NULL,
    subscription_type TEXT CHECK (subscription_type IN ('wow', 'bot', 'proxy', 'vpn', 'other')),
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled', 'expired', 'expiring_soon')),
    expires_at        BIGINT,
    bot_id            TEXT,
    account_email     TEXT,
    auto_renew        BIGINT,
    project_id        TEXT CHECK (project_id IN ('wow_tbc', 'wow_midnight')),
    notes             TEXT,
    extras            TEXT NOT NULL DEFAULT '{}',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX resources_subscriptions_created_idx ON resources_subscriptions(tenant_id, created_at);
CREATE INDEX resources_subscriptions_type_idx ON resources_subscriptions(tenant_id, subscription_type);
CREATE INDEX resources_subscriptions_status_idx ON resources_subscriptions(tenant_id, status);
CREATE INDEX resources_subscriptions_expires_idx ON resources_subscriptions(tenant_id, expires_at);
CREATE INDEX resources_subscriptions_bot_idx ON resources_subscriptions(tenant_id, bot_id);
