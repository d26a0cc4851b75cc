//! Route handlers, one module per resource. Handlers stay thin: extract,
//! call the domain, wrap the answer.

pub mod agents;
pub mod auth;
pub mod health;
pub mod tenants;
pub mod users;
pub mod vm_ops;
