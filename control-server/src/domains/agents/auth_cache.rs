//! Verified agent tokens, cached by token hash for a short time so that the
//! claim path (poll → running → output → succeeded → poll) does not ask the
//! database on every request.
//!
//! Only live tokens of active agents that were not rotated out are cached.
//! Revoking an agent or rotating its token removes its entries at once in
//! this process; other processes on the same PostgreSQL database drop them
//! when the revoke's `NOTIFY` arrives (and drop everything when their LISTEN
//! connection was lost). What is not announced — a tenant disabled, a token
//! row changed by hand — takes effect within the TTL. The token's expiry is
//! checked on every hit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::AgentIdentity;
use crate::db::ids::AgentId;

struct Entry {
    agent: AgentIdentity,
    at: Instant,
}

pub struct AuthCache {
    ttl: Duration,
    map: Mutex<Cache>,
}

struct Cache {
    entries: HashMap<String, Entry>,
    prune_at: usize,
    /// Bumped by every invalidation: a lookup that started before one must
    /// not cache what it read (it may predate the revoke).
    generation: u64,
}

impl AuthCache {
    /// `ttl` zero: nothing is cached.
    pub fn new(ttl: Duration) -> AuthCache {
        AuthCache {
            ttl,
            map: Mutex::new(Cache {
                entries: HashMap::new(),
                prune_at: 1024,
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent behind this token hash, if cached, fresh and unexpired.
    pub fn get(&self, token_hash: &str, now_ms: i64) -> Option<AgentIdentity> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut c = self.lock();
        match c.entries.get(token_hash) {
            Some(e) if e.at.elapsed() < self.ttl && e.agent.token_expires_at > now_ms => {
                Some(e.agent.clone())
            }
            Some(_) => {
                c.entries.remove(token_hash);
                None
            }
            None => None,
        }
    }

    /// Read before looking a token up in the database; pass to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remember a verified token (ignored for rotated-out tokens, and when
    /// an invalidation happened since `generation` was read).
    pub fn insert(&self, token_hash: String, agent: &AgentIdentity, generation: u64) {
        if self.ttl.is_zero() || agent.token_rotated {
            return;
        }
        let mut c = self.lock();
        if c.generation != generation {
            return;
        }
        if c.entries.len() >= c.prune_at {
            let ttl = self.ttl;
            c.entries.retain(|_, e| e.at.elapsed() < ttl);
            c.prune_at = (c.entries.len() * 2).max(1024);
        }
        c.entries.insert(
            token_hash,
            Entry {
                agent: agent.clone(),
                at: Instant::now(),
            },
        );
    }

    /// Forget every token of this agent (revoked, rotated).
    pub fn invalidate_agent(&self, agent: &AgentId) {
        let mut c = self.lock();
        c.generation += 1;
        c.entries.retain(|_, e| &e.agent.agent_id != agent);
    }

    /// Forget everything (announcements may have been missed).
    pub fn clear(&self) {
        let mut c = self.lock();
        c.generation += 1;
        c.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ids::{TenantId, TokenId};

    fn agent(id: &str, expires: i64, rotated: bool) -> AgentIdentity {
        AgentIdentity {
            agent_id: AgentId::from(id),
            tenant_id: TenantId::from("t"),
            owner_user_id: None,
            token_id: TokenId::from(format!("tok-{id}")),
            token_created_at: 0,
            token_expires_at: expires,
            token_rotated: rotated,
        }
    }

    #[test]
    fn hits_until_invalidated_or_expired() {
        let c = AuthCache::new(Duration::from_secs(60));
        let g = c.generation();
        c.insert("h1".into(), &agent("a", 1_000, false), g);
        c.insert("h2".into(), &agent("a", 1_000, false), g);
        c.insert("h3".into(), &agent("b", 1_000, false), g);
        assert!(c.get("h1", 999).is_some());
        // The token's own expiry wins over the cache.
        assert!(c.get("h1", 1_000).is_none());
        c.invalidate_agent(&AgentId::from("a"));
        assert!(c.get("h2", 0).is_none());
        assert!(c.get("h3", 0).is_some());
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn a_lookup_that_raced_a_revoke_is_not_cached() {
        let c = AuthCache::new(Duration::from_secs(60));
        let before = c.generation();
        c.invalidate_agent(&AgentId::from("a"));
        c.insert("h".into(), &agent("a", 1_000, false), before);
        assert!(c.get("h", 0).is_none());
    }

    #[test]
    fn rotated_tokens_and_zero_ttl_are_not_cached() {
        let c = AuthCache::new(Duration::from_secs(60));
        c.insert("h".into(), &agent("a", 1_000, true), c.generation());
        assert!(c.get("h", 0).is_none());
        let off = AuthCache::new(Duration::ZERO);
        off.insert("h".into(), &agent("a", 1_000, false), off.generation());
        assert!(off.get("h", 0).is_none());
    }
}
