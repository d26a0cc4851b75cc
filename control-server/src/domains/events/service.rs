//! Recording timeline events and reading them back for the SSE stream.
//!
//! Events are written in the same transaction as the change they describe
//! ([`EventsService::record`] takes the caller's writer or `Tx`); the
//! wake-up for open streams ([`EventsService::notify`]) is sent after the
//! commit, so a stream never sees an event that was rolled back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;

use super::store::{self, EventFilter, EventRow, NewEvent};
use super::EventError;
use crate::auth::Role;
use crate::db::{Db, StoreResult, TenantScope, Write};
use crate::domains::agents::Caller;
use crate::notify::Notifier;

#[derive(Clone)]
pub struct EventsService {
    db: Db,
    notifier: Arc<Notifier>,
}

impl EventsService {
    pub fn new(db: Db, notifier: Arc<Notifier>) -> EventsService {
        EventsService { db, notifier }
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

    /// Every visible event after `last`, forever: woken by new events (and
    /// re-checked every 15 s).
    pub fn follow(
        &self,
        scope: TenantScope,
        filter: EventFilter,
        last: i64,
    ) -> impl Stream<Item = EventRow> {
        let init = StreamState {
            events: self.clone(),
            wake: self.notifier.subscribe_events(),
            scope,
            filter,
            last,
            buf: VecDeque::new(),
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
                    _ = tokio::time::sleep(Duration::from_secs(15)) => {}
                }
            }
        })
    }
}

struct StreamState {
    events: EventsService,
    wake: tokio::sync::watch::Receiver<u64>,
    scope: TenantScope,
    filter: EventFilter,
    last: i64,
    buf: VecDeque<EventRow>,
}

/// What a caller may follow: agents their own events; users the events of
/// agents they own or commands they created (admins: the whole tenant).
pub fn filter_for(
    caller: &Caller,
    agent_id: Option<String>,
    command_id: Option<String>,
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
                visible_to_user: None,
            }
        }
        Caller::User(u) => EventFilter {
            agent_id,
            command_id,
            visible_to_user: (!u.has(Role::Admin)).then(|| u.user_id.to_string()),
        },
    })
}
