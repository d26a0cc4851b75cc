//! Heartbeat write-behind: what this server process knows of its agents'
//! presence (last heartbeat, version, metadata), kept in memory so that a
//! heartbeat answers without a database write.
//!
//! A heartbeat is **buffered** (only this record changes) when nothing but
//! the time moved: same version, same metadata, and the database's last-seen
//! time recent enough that the agent stays `online` until the next flush.
//! Otherwise it is **written through** at once (first heartbeat this process
//! sees, coming back after a silence, a new version or changed metadata).
//! A flusher writes every buffered last-seen time in one statement per
//! interval (`AgentsService::flush_heartbeats`), and once more on graceful
//! shutdown. A crash loses at most the last interval of buffered last-seen
//! times and nothing else: nothing but `last_seen_at` is write-behind.
//!
//! Several processes on one PostgreSQL database each buffer and flush the
//! heartbeats they received; the flush never moves `last_seen_at` backwards,
//! and connection states are computed from the database's `last_seen_at` with
//! the flush interval added to the online window
//! ([`crate::config::BusConfig::online_window_ms`]), so every process shows
//! the same state.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::db::ids::AgentId;

/// One agent's presence as this process knows it.
#[derive(Debug, Clone)]
struct Record {
    /// Latest heartbeat this process received (epoch ms).
    seen: i64,
    /// The `last_seen_at` this process knows is stored.
    stored: i64,
    /// Fingerprints of the last version and metadata written (`None`:
    /// not known to this process; the next one sent is written).
    version: Option<u64>,
    metadata: Option<u64>,
    /// This process has received a heartbeat from the agent (a record
    /// loaded from the database at start has not).
    heard: bool,
}

/// What to do with a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatPlan {
    /// Answer at once; the flusher writes the time later.
    Buffer,
    /// Write it now (state, version or metadata may change).
    WriteThrough,
}

/// A heartbeat's plan, and whether it is the agent's first to this process
/// (after a server start: one of a reconnecting crowd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub plan: HeartbeatPlan,
    pub first: bool,
}

/// What the database holds of an agent's presence, loaded at start.
pub struct StoredPresence {
    pub agent: AgentId,
    pub last_seen: i64,
    pub version: Option<u64>,
    pub metadata: Option<u64>,
}

/// A fingerprint of an optional value (`None` never matches a stored one).
pub fn fingerprint(v: Option<&str>) -> Option<u64> {
    v.map(|s| {
        let mut h = DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    })
}

/// The in-memory presence records of one process.
pub struct Presence {
    records: Mutex<HashMap<AgentId, Record>>,
    /// Buffer a heartbeat only while the stored time is at most this old.
    max_buffered_age_ms: i64,
    /// Bumped after every completed flush (tests wait on it).
    flushes: watch::Sender<u64>,
}

impl Presence {
    /// `heartbeat_ms`: the interval agents heartbeat at.
    ///
    /// A buffered heartbeat reaches the database at the next flush; until
    /// then the stored time must keep the agent inside the online window
    /// (2 heartbeats + 1 flush interval). Buffering only while the stored
    /// time is younger than 1.5 heartbeat intervals leaves half an interval
    /// for the flush itself to run.
    pub fn new(heartbeat_ms: i64) -> Presence {
        Presence {
            records: Mutex::new(HashMap::new()),
            max_buffered_age_ms: heartbeat_ms + heartbeat_ms / 2,
            flushes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start from what the database holds (at server start), so that the
    /// first heartbeats of a reconnecting fleet are buffered like any other
    /// instead of each being written; records already present are kept.
    pub fn load(&self, stored: impl IntoIterator<Item = StoredPresence>) -> usize {
        let mut records = self.lock();
        let before = records.len();
        for p in stored {
            records.entry(p.agent).or_insert(Record {
                seen: p.last_seen,
                stored: p.last_seen,
                version: p.version,
                metadata: p.metadata,
                heard: false,
            });
        }
        records.len() - before
    }

    /// Decide for a heartbeat at `now` with these fingerprints; a buffered
    /// one is recorded at once.
    pub fn plan(
        &self,
        agent: &AgentId,
        now: i64,
        version: Option<u64>,
        metadata: Option<u64>,
    ) -> Planned {
        let mut records = self.lock();
        let Some(r) = records.get_mut(agent) else {
            return Planned {
                plan: HeartbeatPlan::WriteThrough,
                first: true,
            };
        };
        let first = !std::mem::replace(&mut r.heard, true);
        let same_version = version.is_none() || version == r.version;
        let same_metadata = metadata.is_none() || metadata == r.metadata;
        let plan = if same_version && same_metadata && now - r.stored <= self.max_buffered_age_ms {
            r.seen = r.seen.max(now);
            HeartbeatPlan::Buffer
        } else {
            HeartbeatPlan::WriteThrough
        };
        Planned { plan, first }
    }

    /// A heartbeat at `now` was written through with these fingerprints
    /// (`None`: the request had none, the stored value stays).
    pub fn written(&self, agent: &AgentId, now: i64, version: Option<u64>, metadata: Option<u64>) {
        let mut records = self.lock();
        let r = records.entry(agent.clone()).or_insert(Record {
            seen: now,
            stored: now,
            version,
            metadata,
            heard: true,
        });
        r.heard = true;
        r.seen = r.seen.max(now);
        r.stored = r.stored.max(now);
        r.version = version.or(r.version);
        r.metadata = metadata.or(r.metadata);
    }

    /// Buffered last-seen times not yet stored: `(agent, seen)`.
    pub fn pending(&self) -> Vec<(AgentId, i64)> {
        self.lock()
            .iter()
            .filter(|(_, r)| r.seen > r.stored)
            .map(|(id, r)| (id.clone(), r.seen))
            .collect()
    }

    /// These times are stored now.
    pub fn stored(&self, batch: &[(AgentId, i64)]) {
        let mut records = self.lock();
        for (id, seen) in batch {
            if let Some(r) = records.get_mut(id) {
                r.stored = r.stored.max(*seen);
            }
        }
    }

    /// A flush completed (successfully or with nothing to do).
    pub fn flush_done(&self) {
        self.flushes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Counts completed flushes.
    pub fn subscribe_flushes(&self) -> watch::Receiver<u64> {
        self.flushes.subscribe()
    }

    /// Drop what is known of an agent (revoked): nothing of it is flushed.
    pub fn forget(&self, agent: &AgentId) {
        self.lock().remove(agent);
    }

    /// Agents with a record (for metrics and logs).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AgentId {
        AgentId::from(s.to_string())
    }

    #[test]
    fn first_heartbeat_writes_through_then_buffers() {
        let p = Presence::new(30_000);
        let a = id("a");
        let first = p.plan(&a, 1_000, None, None);
        assert_eq!(first.plan, HeartbeatPlan::WriteThrough);
        assert!(first.first);
        p.written(&a, 1_000, Some(7), None);
        assert!(p.pending().is_empty());
        let second = p.plan(&a, 31_000, Some(7), None);
        assert_eq!(second.plan, HeartbeatPlan::Buffer);
        assert!(!second.first);
        // Metadata this process has not written yet is written once.
        assert_eq!(
            p.plan(&a, 31_000, None, Some(9)).plan,
            HeartbeatPlan::WriteThrough
        );
        assert_eq!(p.pending(), vec![(a.clone(), 31_000)]);
        p.stored(&p.pending());
        assert!(p.pending().is_empty());
    }

    #[test]
    fn changes_and_silence_write_through() {
        let p = Presence::new(30_000);
        let a = id("a");
        p.written(&a, 0, Some(1), Some(2));
        let plan = |now, v, m| p.plan(&a, now, v, m).plan;
        assert_eq!(plan(10, Some(1), Some(2)), HeartbeatPlan::Buffer);
        assert_eq!(plan(10, Some(5), None), HeartbeatPlan::WriteThrough);
        assert_eq!(plan(10, None, Some(5)), HeartbeatPlan::WriteThrough);
        assert_eq!(plan(45_000, None, None), HeartbeatPlan::Buffer);
        // Stored time 45.001 s old: the agent might turn unreachable before
        // the next flush, so this one is written.
        assert_eq!(plan(45_001, None, None), HeartbeatPlan::WriteThrough);
        p.forget(&a);
        assert!(p.is_empty());
    }

    #[test]
    fn loaded_records_buffer_a_restarts_first_heartbeats() {
        let p = Presence::new(30_000);
        let (a, b, c) = (id("a"), id("b"), id("c"));
        p.written(&c, 9_000, None, None);
        let loaded = p.load([
            StoredPresence {
                agent: a.clone(),
                last_seen: 1_000,
                version: fingerprint(Some("1.0")),
                metadata: fingerprint(Some("{}")),
            },
            StoredPresence {
                agent: b.clone(),
                last_seen: 1_000,
                version: None,
                metadata: None,
            },
            // already known to this process: kept as it is
            StoredPresence {
                agent: c.clone(),
                last_seen: 1,
                version: None,
                metadata: None,
            },
        ]);
        assert_eq!(loaded, 2);
        assert!(p.pending().is_empty(), "loading stores nothing again");
        // same version and metadata as stored, recent: buffered, and first
        let first = p.plan(&a, 5_000, fingerprint(Some("1.0")), fingerprint(Some("{}")));
        assert_eq!(
            first,
            Planned {
                plan: HeartbeatPlan::Buffer,
                first: true
            }
        );
        assert!(!p.plan(&a, 6_000, None, None).first);
        // unknown metadata: written once
        assert_eq!(
            p.plan(&b, 5_000, None, fingerprint(Some("{}"))).plan,
            HeartbeatPlan::WriteThrough
        );
        // silent for longer than 1.5 intervals: written (it may come online)
        assert_eq!(
            p.plan(&b, 47_000, None, None).plan,
            HeartbeatPlan::WriteThrough
        );
        assert!(!p.plan(&c, 9_500, None, None).first);
    }

    #[test]
    fn a_flush_racing_a_heartbeat_keeps_the_newer_time_pending() {
        let p = Presence::new(30_000);
        let a = id("a");
        p.written(&a, 0, None, None);
        p.plan(&a, 5_000, None, None);
        let batch = p.pending();
        p.plan(&a, 6_000, None, None);
        p.stored(&batch);
        assert_eq!(p.pending(), vec![(a, 6_000)]);
    }
}
