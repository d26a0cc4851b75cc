//! The agent's X25519 key pair and the secrets the server delivers to it
//! (docs/protocol.md §9, "Secrets for agents").
//!
//! The key pair is made on the agent. Its private half is kept in the
//! secret store under `agent-key` — the OS keyring by default, exactly like
//! the agent token — and never leaves the machine; the public half is sent
//! to the server (`PUT /api/v1/agents/me/public-key`) at pairing and at
//! every start of the runtime. A secret bound to this agent arrives as an
//! envelope (`botmox_protocol::envelope`) sealed to that key and bound to
//! the secret id and this agent's id: the server, which stores and forwards
//! it, cannot read it, and an envelope meant for another secret or agent
//! does not open here.

use botmox_protocol::envelope::{self, AgentKeyPair, Binding, EnvelopeError, Zeroizing};
use botmox_protocol::{AgentPublicKey, AgentPublicKeyRequest};
use tokio_util::sync::CancellationToken;

use crate::config::secret_names;
use crate::runtime::api::{AgentApi, CallError};
use crate::secrets::{SecretError, SecretStore};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] SecretError),
    #[error("the agent key in the secret store is unreadable ({0}); delete the `agent-key` secret to make a new one (secrets sealed to the old key must then be put again)")]
    BadKey(EnvelopeError),
    #[error("cannot create the agent key: {0}")]
    Generate(EnvelopeError),
    #[error("`{0}` is not a secret id (1-100 characters of A-Z a-z 0-9 _ -)")]
    BadId(String),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("the server answered secret {got} for agent {agent} instead of {want}")]
    WrongAnswer {
        want: String,
        got: String,
        agent: String,
    },
    #[error("SECRET_UNREADABLE: the envelope does not open with this agent's key ({0}); it was sealed to another key or for another agent: put the secret again for this agent")]
    Open(EnvelopeError),
}

/// The agent's key pair from the secret store, created (and stored) when
/// there is none. `true` when it was created now.
pub fn load_or_create(store: &dyn SecretStore) -> Result<(AgentKeyPair, bool), VaultError> {
    if let Some(text) = store.get(secret_names::AGENT_KEY)? {
        let key = AgentKeyPair::from_private_base64(&text).map_err(VaultError::BadKey)?;
        return Ok((key, false));
    }
    let key = AgentKeyPair::generate().map_err(VaultError::Generate)?;
    store.set(secret_names::AGENT_KEY, &key.private_base64())?;
    tracing::info!(
        event_name = "agent.key.created",
        key_id = %key.public().key_id(),
        store = store.backend().as_str(),
        "created the agent key pair; the private key is in the secret store"
    );
    Ok((key, true))
}

/// Send the public half to the server (idempotent).
pub async fn register(
    api: &AgentApi,
    key: &AgentKeyPair,
    cancel: &CancellationToken,
) -> Result<AgentPublicKey, CallError> {
    api.register_public_key(
        &AgentPublicKeyRequest {
            alg: envelope::KEY_ALG.to_string(),
            public_key: key.public().to_base64(),
        },
        cancel,
    )
    .await
}

/// The runtime's registration (after its first heartbeat): load or make
/// the key, then register it, retrying transient failures with `backoff`
/// until it is done or `stop` fires. A refusal (e.g. 404 from a server
/// without agent keys) is logged and not retried; the agent keeps running
/// either way (it only cannot receive secrets).
pub async fn register_in_background(
    api: std::sync::Arc<AgentApi>,
    store: std::sync::Arc<dyn SecretStore>,
    stop: CancellationToken,
    backoff: crate::retry::Backoff,
) {
    let key = match load_or_create(store.as_ref()) {
        Ok((key, _)) => key,
        Err(e) => {
            tracing::warn!(event_name = "agent.key.unavailable", error = %e,
                "no agent key: secrets cannot be delivered to this agent");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        match register(&api, &key, &stop).await {
            Ok(r) => {
                tracing::info!(event_name = "agent.key.registered", key_id = %r.key_id,
                    changed = r.changed, "agent public key registered with the server");
                return;
            }
            Err(CallError::Cancelled) => return,
            Err(e @ CallError::Transient(_)) => {
                failures += 1;
                let d = backoff.delay(failures);
                tracing::warn!(event_name = "agent.key.retry", error = %e, failures,
                    retry_in_ms = d.as_millis() as u64, "cannot register the agent key yet; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
            Err(e) => {
                tracing::warn!(event_name = "agent.key.refused", error = %e,
                    "the server did not take the agent key: secrets cannot be delivered to this agent");
                return;
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Fetch the secret `secret_id` bound to this agent and open it. The
/// envelope must open for exactly this secret id and `agent_id` (the
/// server's answer cannot substitute another secret). The value is also
/// registered with [`crate::redact`], so it never reaches a log.
pub async fn fetch(
    api: &AgentApi,
    key: &AgentKeyPair,
    agent_id: &str,
    secret_id: &str,
    cancel: &CancellationToken,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if !valid_id(secret_id) {
        return Err(VaultError::BadId(secret_id.to_string()));
    }
    let answer = api.agent_secret(secret_id, cancel).await?;
    if answer.secret_id != secret_id || answer.agent_id != agent_id {
        return Err(VaultError::WrongAnswer {
            want: secret_id.to_string(),
            got: answer.secret_id,
            agent: answer.agent_id,
        });
    }
    let value = key
        .open(
            &answer.envelope,
            Binding {
                secret_id,
                agent_id,
            },
        )
        .map_err(VaultError::Open)?;
    if let Ok(text) = std::str::from_utf8(&value) {
        crate::redact::register_secret(text);
    }
    tracing::info!(
        event_name = "agent.secret.received",
        secret_id,
        key_id = %answer.key_id,
        material_version = answer.material_version,
        "received a secret"
    );
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemoryStore;

    #[test]
    fn the_key_is_made_once_and_kept_in_the_store() {
        let store = MemoryStore::default();
        let (first, created) = load_or_create(&store).unwrap();
        assert!(created);
        let stored = store.get(secret_names::AGENT_KEY).unwrap().unwrap();
        assert_eq!(stored.as_str(), first.private_base64().as_str());
        let (again, created) = load_or_create(&store).unwrap();
        assert!(!created);
        assert_eq!(again.public(), first.public());
        // A value sealed to the public key opens with the stored key.
        let b = Binding {
            secret_id: "s",
            agent_id: "a",
        };
        let env = envelope::seal(first.public(), b, b"v").unwrap();
        assert_eq!(again.open(&env, b).unwrap().as_slice(), b"v");
        // A corrupt stored key is an error, not silently replaced.
        store.set(secret_names::AGENT_KEY, "garbage").unwrap();
        assert!(matches!(load_or_create(&store), Err(VaultError::BadKey(_))));
    }

    #[test]
    fn secret_ids_are_checked_before_they_reach_a_url() {
        for bad in ["", "../x", "a b", "a/b", "x?y", &"a".repeat(101)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        for good in ["a", "sec-1_A", &"a".repeat(100)] {
            assert!(valid_id(good), "{good:?}");
        }
    }
}
