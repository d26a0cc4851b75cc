//! Recording timeline events and reading them back for the SSE stream.
//!
//! Events are written in the same transaction as the change they describe
//! ([`EventsService::record`] takes the caller's writer or `Tx`); the
//! wake-up for open streams ([`EventsService::notify`]) is sent after the
//! commit, so a stream never sees an event that was rolled back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::Stream;

use super::store::{self, EventFilter, EventRow, NewEvent};
use super::EventError;
use crate::auth::Role;
use crate::db::{Db, StoreResult, TenantScope, Write};
use crate::domains::agents::Caller;
use crate::notify::Notifier;

/// Open event streams one caller (user or agent) may hold at once.
pub const MAX_STREAMS_PER_CALLER: usize = 8;
/// How often an open stream re-checks its caller's credentials.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(2);

/// Re-checks the stream's caller: `false` ends the stream (logout, token
/// revoked, user disabled or demoted, agent revoked).
pub type StillAllowed = Box<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Clone)]
pub struct EventsService {
    db: Db,
    notifier: Arc<Notifier>,
    open_streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream of a caller; dropping it (the client went away, the
/// stream ended) frees the slot.
pub struct StreamSlot {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl EventsService {
    pub fn new(db: Db, notifier: Arc<Notifier>) -> EventsService {
        EventsService {
            db,
            notifier,
            open_streams: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Take one of the caller's stream slots, or `TooManyStreams`.
    pub fn open_stream(&self, caller: &Caller) -> Result<StreamSlot, EventError> {
        let key = match caller {
            Caller::User(u) => format!("user:{}:{}", u.tenant_id, u.user_id),
            Caller::Agent(a) => format!("agent:{}", a.agent_id),
        };
        let mut open = self.open_streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= MAX_STREAMS_PER_CALLER {
            return Err(EventError::TooManyStreams);
        }
        *n += 1;
        Ok(StreamSlot {
            key,
            open: self.open_streams.clone(),
        })
    }

    /// Write an event (inside the caller's transaction when given a `Tx`).
    /// Call [`EventsService::notify`] once the change is committed.
    pub async fn record(&self, w: impl Write, event: NewEvent<'_>) -> StoreResult<i64> {
        store::insert(w, event).await
    }

    /// Wake open event streams (here and, on PostgreSQL, in other processes).
    pub async fn notify(&self) {
        self.notifier.event_recorded().await;
    }

    /// Write an event of a VM creation job (filterable by `job_id`).
    pub async fn record_for_job(
        &self,
        w: impl Write,
        event: NewEvent<'_>,
        job_id: &str,
    ) -> StoreResult<i64> {
        store::insert_for_job(w, event, Some(job_id)).await
    }

    /// Events after `after_id` the filter lets through, oldest first.
    pub async fn after(
        &self,
        scope: &TenantScope,
        filter: &EventFilter,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRow>> {
        store::after(self.db.reader(), scope, filter, after_id, limit).await
    }

    /// Every visible event after `last`, woken by new events (and
    /// re-checked every 15 s), until `still_allowed` says the caller's
    /// credentials no longer hold (checked every [`REVALIDATE_EVERY`]).
    pub fn follow(
        &self,
        scope: TenantScope,
        filter: EventFilter,
        last: i64,
        slot: StreamSlot,
        still_allowed: StillAllowed,
    ) -> impl Stream<Item = EventRow> {
        let mut revalidate = tokio::time::interval(REVALIDATE_EVERY);
        revalidate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let init = StreamState {
            events: self.clone(),
            wake: self.notifier.subscribe_events(),
            draining: Box::pin(self.notifier.draining()),
            scope,
            filter,
            last,
            buf: VecDeque::new(),
            _slot: slot,
            still_allowed,
            revalidate,
        };
        futures_util::stream::unfold(init, |mut s| async move {
            loop {
                if let Some(ev) = s.buf.pop_front() {
                    return Some((ev, s));
                }
                s.wake.borrow_and_update();
                match s.events.after(&s.scope, &s.filter, s.last, 200).await {
                    Ok(rows) if !rows.is_empty() => {
                        for r in rows {
                            s.last = r.id;
                            s.buf.push_back(r);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream query failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
                tokio::select! {
                    changed = s.wake.changed() => {
                        if changed.is_err() {
                            s.wake = s.events.notifier.subscribe_events();
                        }
                    }
                    _ = s.revalidate.tick() => {
                        if !(s.still_allowed)().await {
                            return None;
                        }
                    }
                    // shutting down: end the stream (the browser reconnects
                    // with Last-Event-ID) instead of holding the drain
                    _ = &mut s.draining => return None,
                    _ = tokio::time::sleep(Duration::from_secs(15)) => {}
                }
            }
        })
    }
}

struct StreamState {
    events: EventsService,
    wake: tokio::sync::watch::Receiver<u64>,
    /// Resolves when the server shuts down.
    draining: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    scope: TenantScope,
    filter: EventFilter,
    last: i64,
    buf: VecDeque<EventRow>,
    _slot: StreamSlot,
    still_allowed: StillAllowed,
    revalidate: tokio::time::Interval,
}

/// What a caller may follow: agents their own events; users the events of
/// agents they own or commands they created (admins: the whole tenant).
pub fn filter_for(
    caller: &Caller,
    agent_id: Option<String>,
    command_id: Option<String>,
    job_id: Option<String>,
) -> Result<EventFilter, EventError> {
    Ok(match caller {
        Caller::Agent(a) => {
            if agent_id
                .as_deref()
                .is_some_and(|x| x != a.agent_id.as_str())
            {
                return Err(EventError::ForeignAgent);
            }
            EventFilter {
                agent_id: Some(a.agent_id.to_string()),
                command_id,
                job_id,
                visible_to_user: None,
            }
        }
        Caller::User(u) => EventFilter {
            agent_id,
            command_id,
            job_id,
            visible_to_user: (!u.has(Role::Admin)).then(|| u.user_id.to_string()),
        },
    })
}
