//! The reliability sweeper: requeues commands whose lease ran out (until
//! `max_attempts`, then dead-letters them), expires queued commands nobody
//! picked up, moves silent agents to unreachable/offline, and frees old
//! idempotency keys. Every change is recorded as an event. Safe to run in
//! several server processes at once: each change is a conditional UPDATE.

use std::sync::Arc;
use std::time::Duration;

use super::Bus;
use crate::store::{agents, commands, now_ms, StoreResult};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: usize,
    pub dead_lettered: usize,
    pub expired: usize,
    pub agents_changed: usize,
}

impl Bus {
    pub async fn sweep(&self) -> StoreResult<SweepReport> {
        let now = now_ms();
        let mut report = SweepReport::default();
        for row in commands::requeue_expired_leases(self.db.writer(), now).await? {
            let owner = self.owner_of(&row.tenant_id, &row.agent_id).await;
            self.command_event("requeued", &row, owner.as_deref())
                .await?;
            self.notifier.wake_agent(&row.agent_id).await;
            report.requeued += 1;
        }
        for row in commands::dead_letter_expired_leases(self.db.writer(), now).await? {
            let owner = self.owner_of(&row.tenant_id, &row.agent_id).await;
            self.command_event("failed", &row, owner.as_deref()).await?;
            report.dead_lettered += 1;
        }
        for row in commands::expire_queued(self.db.writer(), now).await? {
            let owner = self.owner_of(&row.tenant_id, &row.agent_id).await;
            self.command_event("expired", &row, owner.as_deref())
                .await?;
            report.expired += 1;
        }
        let hb_ms = self.cfg.heartbeat_interval_s as i64 * 1000;
        for row in agents::sweep_connection_states(
            self.db.writer(),
            now - 2 * hb_ms,
            now - self.cfg.offline_after_s as i64 * 1000,
            now,
        )
        .await?
        {
            self.agent_event(&row.connection_state.clone(), &row)
                .await?;
            report.agents_changed += 1;
        }
        commands::release_idempotency_keys(self.db.writer(), now - 24 * 3600 * 1000).await?;
        if report != SweepReport::default() {
            tracing::info!(?report, "sweeper changed state");
        }
        Ok(report)
    }

    /// Run [`Bus::sweep`] every `sweep_interval_s` until the task is aborted.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let bus = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(bus.cfg.sweep_interval_s));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = bus.sweep().await {
                    tracing::warn!(error = %e, "sweep failed; retrying next tick");
                }
            }
        })
    }
}
