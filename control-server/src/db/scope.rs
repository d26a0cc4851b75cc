//! The tenant every query of a request is confined to.

use serde::Serialize;

use super::ids::TenantId;

/// Tenant data is only reachable through a `TenantScope`, which only the
/// auth layer (from a verified caller), the agent authenticator and the admin
/// CLI construct — a query cannot forget the tenant filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantScope {
    tenant_id: TenantId,
}

impl TenantScope {
    pub(crate) fn new(tenant_id: impl Into<TenantId>) -> TenantScope {
        TenantScope {
            tenant_id: tenant_id.into(),
        }
    }
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    /// The tenant id as text, for binding.
    pub fn tenant(&self) -> &str {
        self.tenant_id.as_str()
    }
}
