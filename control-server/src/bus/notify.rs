//! Wake-ups for long polls and event streams.
//!
//! In-process: one `watch` channel per agent (bumped when a command is queued
//! for it, or when it is revoked) and one for "a new event was recorded".
//! With PostgreSQL, every bump is also sent as `NOTIFY` so pollers connected
//! to another server process sharing the database wake up too; a listener
//! task turns incoming notifications into local bumps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::watch;

use crate::db::{Backend, Db};

const AGENT_CHANNEL: &str = "botmox_agent_wake";
const EVENT_CHANNEL: &str = "botmox_events";

pub struct Notifier {
    agents: Mutex<HashMap<String, watch::Sender<u64>>>,
    events: watch::Sender<u64>,
    /// Set on PostgreSQL: where to send NOTIFY.
    pg: Option<AnyPool>,
}

impl Notifier {
    pub fn new(db: &Db) -> Notifier {
        Notifier {
            agents: Mutex::new(HashMap::new()),
            events: watch::channel(0).0,
            pg: (db.backend() == Backend::Postgres).then(|| db.pool().clone()),
        }
    }

    /// A receiver that changes whenever the agent should look for work.
    pub fn subscribe_agent(&self, agent_id: &str) -> watch::Receiver<u64> {
        let mut map = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 1024 {
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        map.entry(agent_id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn subscribe_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    fn bump_agent_local(&self, agent_id: &str) {
        let map = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(agent_id) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn bump_events_local(&self) {
        self.events.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Something changed for this agent (new or requeued command, revoke).
    pub async fn wake_agent(&self, agent_id: &str) {
        self.bump_agent_local(agent_id);
        self.pg_notify(AGENT_CHANNEL, agent_id).await;
    }

    /// A new event row exists.
    pub async fn event_recorded(&self) {
        self.bump_events_local();
        self.pg_notify(EVENT_CHANNEL, "").await;
    }

    async fn pg_notify(&self, channel: &str, payload: &str) {
        if let Some(pool) = &self.pg {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, channel, "NOTIFY failed; pollers elsewhere fall back to their periodic re-check");
            }
        }
    }

    /// PostgreSQL only: listen for other processes' notifications, forever,
    /// reconnecting with backoff.
    pub fn spawn_pg_listener(
        self: &Arc<Self>,
        database_url: String,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.pg.as_ref()?;
        let me = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match me.listen_once(&database_url).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }))
    }

    async fn listen_once(&self, url: &str) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen_all([AGENT_CHANNEL, EVENT_CHANNEL]).await?;
        // Anything sent while we were disconnected: wake everyone once.
        self.bump_events_local();
        for tx in self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
        loop {
            let n = listener.recv().await?;
            match n.channel() {
                AGENT_CHANNEL => self.bump_agent_local(n.payload()),
                EVENT_CHANNEL => self.bump_events_local(),
                _ => {}
            }
        }
    }
}
