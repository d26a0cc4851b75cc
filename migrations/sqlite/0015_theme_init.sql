-- Theme assets (inventory §2.16 and §3.7, issue #13): background images
-- of a tenant's UI, one object each in the object store under
-- `theme-assets/<tenant>/<id>-<sanitised filename>`. `pending` until the
-- upload is completed and checked (`ready`) or refused (`failed`);
-- `deleted` is a soft delete (the object is kept). Timestamps are epoch
-- milliseconds.

CREATE TABLE theme_background_assets (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    created_by TEXT NOT NULL,
    object_key TEXT NOT NULL,
    filename   TEXT NOT NULL,
    mime_type  TEXT NOT NULL CHECK (mime_type IN ('image/jpeg', 'image/png', 'image/webp')),
    size_bytes BIGINT NOT NULL CHECK (size_bytes > 0),
    width      BIGINT CHECK (width IS NULL OR width BETWEEN 1 AND 8192),
    height     BIGINT CHECK (height IS NULL OR height BETWEEN 1 AND 8192),
    status     TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed', 'deleted')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX theme_background_assets_object_idx ON theme_background_assets(tenant_id, object_key);
CREATE INDEX theme_background_assets_status_idx ON theme_background_assets(tenant_id, status);
CREATE INDEX theme_background_assets_created_idx ON theme_background_assets(tenant_id, created_at);
