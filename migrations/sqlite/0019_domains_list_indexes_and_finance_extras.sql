-- Finance passthrough fields and the remaining list indexes of the farm
-- domains (issue #16).
--
-- Finance operations keep the keys a client sends beyond the typed fields
-- (the original's passthrough objects), as resources, workspace and bots
-- do: a JSON object, at most 64 KiB, merged shallowly by PATCH.
ALTER TABLE finance_operations ADD COLUMN extras TEXT NOT NULL DEFAULT '{}';

-- One (tenant_id, column) index for every column a list sorts or filters
-- on (the kinds' `Field::list` declarations, finance's OPERATION_LIST) that
-- had none. Not indexed: search-only columns (`q` is a substring match no
-- B-tree serves) and a subscription's `status`, which lists compute from
-- `expires_at` with the database clock.
CREATE INDEX resources_licenses_updated_idx ON resources_licenses(tenant_id, updated_at);
CREATE INDEX resources_licenses_type_idx ON resources_licenses(tenant_id, license_type);
CREATE INDEX resources_proxies_updated_idx ON resources_proxies(tenant_id, updated_at);
CREATE INDEX resources_proxies_port_idx ON resources_proxies(tenant_id, port);
CREATE INDEX resources_proxies_provider_idx ON resources_proxies(tenant_id, provider);
CREATE INDEX resources_proxies_country_idx ON resources_proxies(tenant_id, country);
CREATE INDEX resources_proxies_country_code_idx ON resources_proxies(tenant_id, country_code);
CREATE INDEX resources_proxies_type_idx ON resources_proxies(tenant_id, proxy_type);
CREATE INDEX resources_proxies_last_checked_idx ON resources_proxies(tenant_id, last_checked);
CREATE INDEX resources_proxies_city_idx ON resources_proxies(tenant_id, city);
CREATE INDEX resources_proxies_isp_idx ON resources_proxies(tenant_id, isp);
CREATE INDEX resources_subscriptions_updated_idx ON resources_subscriptions(tenant_id, updated_at);
CREATE INDEX resources_subscriptions_email_idx ON resources_subscriptions(tenant_id, account_email);
CREATE INDEX resources_subscriptions_project_idx ON resources_subscriptions(tenant_id, project_id);
CREATE INDEX workspace_notes_title_idx ON workspace_notes(tenant_id, title);
CREATE INDEX workspace_notes_project_idx ON workspace_notes(tenant_id, project_id);
CREATE INDEX workspace_calendar_updated_idx ON workspace_calendar_events(tenant_id, updated_at);
CREATE INDEX workspace_calendar_title_idx ON workspace_calendar_events(tenant_id, title);
CREATE INDEX workspace_kanban_updated_idx ON workspace_kanban_tasks(tenant_id, updated_at);
CREATE INDEX workspace_kanban_title_idx ON workspace_kanban_tasks(tenant_id, title);
CREATE INDEX finance_operations_updated_idx ON finance_operations(tenant_id, updated_at);
CREATE INDEX finance_operations_currency_idx ON finance_operations(tenant_id, currency);
