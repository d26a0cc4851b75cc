//! Typed ids: a `UserId` cannot be passed where an `AgentId` is expected.
//! They are text in the database and in JSON (transparent for sqlx, serde
//! and OpenAPI).

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = String)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(super::new_id())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

id_type!(
    /// A tenant: a slug (`default`, `acme-2`).
    TenantId
);
id_type!(
    /// A user (UUIDv7).
    UserId
);
id_type!(
    /// An agent (UUIDv7).
    AgentId
);
id_type!(
    /// A command of the command bus (UUIDv7).
    CommandId
);
id_type!(
    /// A stored bearer token (session, API or agent token; UUIDv7).
    TokenId
);
id_type!(
    /// A bot (UUIDv7, or the client's own `[A-Za-z0-9_-]{1,100}`; unique per tenant).
    BotId
);
id_type!(
    /// A finance operation (UUIDv7, or the client's own `[A-Za-z0-9_-]{1,100}`; unique per tenant).
    FinanceOperationId
);
id_type!(
    /// A playbook (UUIDv7).
    PlaybookId
);
id_type!(
    /// A provisioning token of a VM (UUIDv7; the secret itself is stored hashed).
    ProvisioningTokenId
);
id_type!(
    /// A license, proxy or subscription (UUIDv7 or the client's id).
    ResourceId
);
id_type!(
    /// A note, calendar event or kanban task (UUIDv7 or the client's id).
    WorkspaceItemId
);
id_type!(
    /// An unattend profile (UUIDv7).
    UnattendProfileId
);
id_type!(
    /// A tenant license (UUIDv7).
    LicenseId
);
id_type!(
    /// An execution lease (UUIDv7; the lease token's `jti`).
    LeaseId
);
id_type!(
    /// An artifact release (UUIDv7).
    ArtifactReleaseId
);
id_type!(
    /// An artifact assignment: the release a user (or the tenant default)
    /// gets for a module/platform/channel (UUIDv7).
    ArtifactAssignmentId
);
id_type!(
    /// One row of the artifact download audit (UUIDv7).
    ArtifactAuditId
);
id_type!(
    /// A theme (background) asset (UUIDv7).
    ThemeAssetId
);
id_type!(
    /// A VM creation job (UUIDv7).
    VmJobId
);
id_type!(
    /// A secret of the vault (UUIDv7, or the client's own `[A-Za-z0-9_-]{1,100}`;
    /// unique per tenant).
    SecretId
);
id_type!(
    /// A secret binding (UUIDv7).
    SecretBindingId
);
