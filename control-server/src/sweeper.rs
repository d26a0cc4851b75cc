//! The reliability sweeper: every `sweep_interval_s` it lets the commands
//! domain requeue, dead-letter and expire commands and the agents domain
//! move silent agents to unreachable/offline, and the provisioning domain
//! expire VM tokens past their TTL. Safe to run in several server
//! processes at once: each change is a conditional UPDATE.

use std::sync::Arc;
use std::time::Duration;

use crate::db::{now_ms, StoreResult};
use crate::domains::agents::AgentsService;
use crate::domains::commands::CommandsService;
use crate::domains::provisioning::ProvisioningService;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: usize,
    pub dead_lettered: usize,
    pub expired: usize,
    pub agents_changed: usize,
    pub provisioning_tokens_expired: usize,
}

/// One sweep.
pub async fn sweep(
    commands: &CommandsService,
    agents: &AgentsService,
    provisioning: &ProvisioningService,
) -> StoreResult<SweepReport> {
    let now = now_ms();
    let c = commands.sweep(now).await?;
    let agents_changed = agents.sweep_connection_states(now).await?;
    let provisioning_tokens_expired = provisioning.sweep(now).await?;
    let report = SweepReport {
        requeued: c.requeued,
        dead_lettered: c.dead_lettered,
        expired: c.expired,
        agents_changed,
        provisioning_tokens_expired,
    };
    if report != SweepReport::default() {
        tracing::info!(?report, "sweeper changed state");
    }
    Ok(report)
}

/// Run [`sweep`] every `interval` until the task is aborted.
pub fn spawn(
    commands: Arc<CommandsService>,
    agents: Arc<AgentsService>,
    provisioning: Arc<ProvisioningService>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&commands, &agents, &provisioning).await {
                tracing::warn!(error = %e, "sweep failed; retrying next tick");
            }
        }
    })
}
