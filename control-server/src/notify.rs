//! Wake-ups for long polls and event streams.
//!
//! In-process: one `watch` channel per agent (bumped when a command is queued
//! for it, or when it is revoked) and one for "a new event was recorded".
//! With PostgreSQL, bumps are also sent as `NOTIFY` so pollers connected to
//! another server process sharing the database wake up too; a listener task
//! turns incoming notifications into local bumps.
//!
//! PostgreSQL serialises the commits of transactions that issued NOTIFY
//! behind one global lock, so one NOTIFY per event throttles the whole
//! server. A pump task batches them instead: agent ids collected for a few
//! milliseconds go out as one comma-separated NOTIFY, and "new events" is
//! sent at most every 25 ms. Local wake-ups stay immediate.
//!
//! Revocations are announced to the other processes too (one NOTIFY each,
//! sent before the revoke answers): they drop the agent's cached tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::watch;

use crate::db::{Backend, Db};

const AGENT_CHANNEL: &str = "botmox_agent_wake";
const EVENT_CHANNEL: &str = "botmox_events";
const REVOKE_CHANNEL: &str = "botmox_agent_revoked";

/// A revocation announced by another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Agent(String),
    /// Announcements may have been missed (the LISTEN connection was down).
    Unknown,
}

pub struct Notifier {
    agents: Mutex<AgentWakers>,
    events: watch::Sender<u64>,
    /// Revocations announced by other processes.
    revoked: tokio::sync::broadcast::Sender<Revoked>,
    /// PostgreSQL only: the pump that batches outgoing NOTIFYs.
    pump: Option<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    pg: Option<AnyPool>,
    /// Set once the server shuts down: parked long polls and event
    /// streams end at once instead of holding the drain for its grace.
    draining: watch::Sender<bool>,
}

enum Outgoing {
    Agent(String),
    Events,
}

/// Batch window for agent wake-ups and the minimum gap between event NOTIFYs.
const AGENT_BATCH: Duration = Duration::from_millis(5);
const EVENT_GAP: Duration = Duration::from_millis(25);
/// NOTIFY payloads must stay under 8000 bytes.
const MAX_PAYLOAD: usize = 7000;

/// Per-agent wake channels; entries nobody listens to are pruned when the
/// map has doubled since the last prune (amortised O(1)).
#[derive(Default)]
struct AgentWakers {
    map: HashMap<String, watch::Sender<u64>>,
    prune_at: usize,
}

impl Notifier {
    pub fn new(db: &Db) -> Notifier {
        let pg = (db.backend() == Backend::Postgres).then(|| db.raw_pool().clone());
        let pump = pg.clone().map(|pool| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(pump(pool, rx));
            tx
        });
        Notifier {
            agents: Mutex::new(AgentWakers {
                map: HashMap::new(),
                prune_at: 1024,
            }),
            events: watch::channel(0).0,
            revoked: tokio::sync::broadcast::channel(1024).0,
            pump,
            pg,
            draining: watch::channel(false).0,
        }
    }

    /// The server is shutting down: end every parked wait.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once the server shuts down (at once if it already is).
    pub fn draining(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            // the sender lives as long as the notifier; a closed channel
            // also means the server is going away
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// A receiver that changes whenever the agent should look for work.
    pub fn subscribe_agent(&self, agent_id: &str) -> watch::Receiver<u64> {
        let mut w = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if w.map.len() >= w.prune_at {
            w.map.retain(|_, tx| tx.receiver_count() > 0);
            w.prune_at = (w.map.len() * 2).max(1024);
        }
        w.map
            .entry(agent_id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn subscribe_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    fn bump_agent_local(&self, agent_id: &str) {
        let w = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = w.map.get(agent_id) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn bump_events_local(&self) {
        self.events.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Something changed for this agent (new or requeued command, revoke).
    pub async fn wake_agent(&self, agent_id: &str) {
        self.bump_agent_local(agent_id);
        if let Some(p) = &self.pump {
            let _ = p.send(Outgoing::Agent(agent_id.to_string()));
        }
    }

    /// A new event row exists.
    pub async fn event_recorded(&self) {
        self.bump_events_local();
        if let Some(p) = &self.pump {
            let _ = p.send(Outgoing::Events);
        }
    }

    /// Revocations announced by other server processes (PostgreSQL).
    pub fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<Revoked> {
        self.revoked.subscribe()
    }

    /// Tell the other server processes that this agent was revoked (after
    /// the commit). Sent directly, not batched: revocations are rare and
    /// should be known elsewhere before the revoke answers.
    pub async fn agent_revoked(&self, agent_id: &str) {
        if let Some(pool) = &self.pg {
            pg_notify(pool, REVOKE_CHANNEL, agent_id).await;
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
        listener
            .listen_all([AGENT_CHANNEL, EVENT_CHANNEL, REVOKE_CHANNEL])
            .await?;
        // Anything sent while we were disconnected: wake everyone once,
        // forget every cached token.
        let _ = self.revoked.send(Revoked::Unknown);
        self.bump_events_local();
        for tx in self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .values()
        {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
        loop {
            let n = listener.recv().await?;
            match n.channel() {
                AGENT_CHANNEL => {
                    for id in n.payload().split(',').filter(|s| !s.is_empty()) {
                        self.bump_agent_local(id);
                    }
                }
                EVENT_CHANNEL => self.bump_events_local(),
                REVOKE_CHANNEL => {
                    let _ = self.revoked.send(Revoked::Agent(n.payload().to_string()));
                }
                _ => {}
            }
        }
    }
}

async fn pg_notify(pool: &AnyPool, channel: &str, payload: &str) {
    if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, channel, "NOTIFY failed; pollers elsewhere fall back to their periodic re-check");
    }
}

/// Send queued notifications in batches until the notifier is dropped.
async fn pump(pool: AnyPool, mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
    let mut last_events = tokio::time::Instant::now() - EVENT_GAP;
    let mut events_pending = false;
    loop {
        let first = if events_pending {
            match tokio::time::timeout_at(last_events + EVENT_GAP, rx.recv()).await {
                Ok(Some(m)) => Some(m),
                Ok(None) => return,
                Err(_) => None,
            }
        } else {
            match rx.recv().await {
                Some(m) => Some(m),
                None => return,
            }
        };
        let mut agents: Vec<String> = Vec::new();
        let mut take = |m: Outgoing, agents: &mut Vec<String>| match m {
            Outgoing::Agent(id) => {
                if !agents.contains(&id) {
                    agents.push(id);
                }
            }
            Outgoing::Events => events_pending = true,
        };
        if let Some(m) = first {
            take(m, &mut agents);
            if !agents.is_empty() {
                // Collect more wake-ups for a moment, then send them together.
                let until = tokio::time::Instant::now() + AGENT_BATCH;
                while let Ok(Some(m)) = tokio::time::timeout_at(until, rx.recv()).await {
                    take(m, &mut agents);
                }
            }
        }
        let mut payload = String::new();
        for id in agents {
            if payload.len() + id.len() + 1 > MAX_PAYLOAD {
                pg_notify(&pool, AGENT_CHANNEL, &payload).await;
                payload.clear();
            }
            if !payload.is_empty() {
                payload.push(',');
            }
            payload.push_str(&id);
        }
        if !payload.is_empty() {
            pg_notify(&pool, AGENT_CHANNEL, &payload).await;
        }
        if events_pending && last_events.elapsed() >= EVENT_GAP {
            pg_notify(&pool, EVENT_CHANNEL, "").await;
            last_events = tokio::time::Instant::now();
            events_pending = false;
        }
    }
}
