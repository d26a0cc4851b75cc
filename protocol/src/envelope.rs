//! The secret envelope: a value encrypted to one agent's X25519 public key,
//! so that only that agent can read it — not the server that stores and
//! delivers it, not another agent. The console/CLI seals, the agent opens;
//! both use this module, so the format exists once.
//!
//! ```text
//! envelope = base64url_nopad( version ‖ ephemeral_public ‖ nonce ‖ ciphertext ‖ tag )
//!            1 byte (0x01)  32 bytes            12 bytes  n bytes      16 bytes
//!
//! shared   = X25519(ephemeral_secret, recipient_public)      (refused if all-zero)
//! key      = HKDF-SHA256(salt = ephemeral_public ‖ recipient_public,
//!                        ikm  = shared, info = "botmox/secret-envelope/v1") → 32 bytes
//! aad      = "botmox/secret-envelope/v1/aad" ‖ version
//!            ‖ u32be(len secret_id) ‖ secret_id ‖ u32be(len agent_id) ‖ agent_id
//! sealed   = AES-256-GCM(key, nonce, plaintext, aad)
//! ```
//!
//! A fresh ephemeral key pair per envelope gives a fresh AES key per value;
//! the random nonce is kept so the format does not depend on that. The
//! associated data binds the envelope to one secret id and one agent id: an
//! envelope copied to another secret or presented for another agent does not
//! open, even under the right key. The key id (`x25519:` + 16 hex digits of
//! the SHA-256 of the public key) names a public key without revealing
//! anything else.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;

pub use zeroize::Zeroizing;

/// `alg` of a secret sealed in this envelope.
pub const ALG: &str = "X25519-HKDF-SHA256-AES-256-GCM";
/// `alg` of an agent public key.
pub const KEY_ALG: &str = "X25519";
/// The format version (first byte).
pub const VERSION: u8 = 1;
/// Largest value an envelope carries.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

const INFO: &[u8] = b"botmox/secret-envelope/v1";
const AAD_LABEL: &[u8] = b"botmox/secret-envelope/v1/aad";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_LEN + NONCE_LEN;

/// Largest envelope text ([`MAX_PLAINTEXT`] sealed, base64url).
pub const MAX_ENVELOPE_CHARS: usize = (HEADER_LEN + MAX_PLAINTEXT + TAG_LEN).div_ceil(3) * 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is not base64url or is too short")]
    Malformed,
    #[error("unsupported envelope version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("the public key is not 32 bytes of base64url, or is a low-order point")]
    BadPublicKey,
    #[error("the private key is not 32 bytes of base64url")]
    BadPrivateKey,
    #[error("the value is larger than {MAX_PLAINTEXT} bytes")]
    TooLarge,
    #[error("the envelope does not open: wrong key, another secret or agent, or tampered")]
    Open,
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// What an envelope is bound to (its associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub secret_id: &'a str,
    pub agent_id: &'a str,
}

impl Binding<'_> {
    /// The associated data: length-prefixed, so no two bindings encode alike.
    pub fn aad(&self) -> Vec<u8> {
        let mut out = AAD_LABEL.to_vec();
        out.push(VERSION);
        for part in [self.secret_id, self.agent_id] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

fn decode_b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

fn random<const N: usize>() -> Result<[u8; N], EnvelopeError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| EnvelopeError::Random(e.to_string()))?;
    Ok(b)
}

/// An agent's X25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// From 32 bytes; low-order points (which would make every shared
    /// secret zero) are refused.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<PublicKey, EnvelopeError> {
        // A clamped scalar is a multiple of the cofactor, so the product
        // with a low-order point is the identity whatever the scalar.
        let probe = StaticSecret::from([0x5a; KEY_LEN]);
        if !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(bytes))
            .was_contributory()
        {
            return Err(EnvelopeError::BadPublicKey);
        }
        Ok(PublicKey(bytes))
    }

    /// From base64url (padding optional).
    pub fn from_base64(text: &str) -> Result<PublicKey, EnvelopeError> {
        let bytes: [u8; KEY_LEN] = decode_b64(text)
            .and_then(|b| b.try_into().ok())
            .ok_or(EnvelopeError::BadPublicKey)?;
        PublicKey::from_bytes(bytes)
    }

    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// `x25519:` + the first 8 bytes of SHA-256(public key), hex.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.0);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("x25519:{hex}")
    }
}

/// An agent's key pair. The private half never leaves the agent (its OS
/// keyring); it is wiped from memory when dropped.
pub struct AgentKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for AgentKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeyPair")
            .field("public", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl AgentKeyPair {
    /// A new random key pair.
    pub fn generate() -> Result<AgentKeyPair, EnvelopeError> {
        let bytes = Zeroizing::new(random::<KEY_LEN>()?);
        Ok(Self::from_secret(StaticSecret::from(*bytes)))
    }

    fn from_secret(secret: StaticSecret) -> AgentKeyPair {
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        AgentKeyPair { secret, public }
    }

    /// The private key as stored by [`AgentKeyPair::private_base64`].
    pub fn from_private_base64(text: &str) -> Result<AgentKeyPair, EnvelopeError> {
        let raw = Zeroizing::new(decode_b64(text.trim()).ok_or(EnvelopeError::BadPrivateKey)?);
        let bytes: [u8; KEY_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::BadPrivateKey)?;
        let bytes = Zeroizing::new(bytes);
        Ok(Self::from_secret(StaticSecret::from(*bytes)))
    }

    /// The private key, base64url, for the agent's secret store.
    pub fn private_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(self.secret.as_bytes()))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Open an envelope sealed to this key for `binding`.
    pub fn open(
        &self,
        envelope: &str,
        binding: Binding<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let parts = Parts::parse(envelope)?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(parts.ephemeral));
        if !shared.was_contributory() {
            return Err(EnvelopeError::Open);
        }
        let cipher = derive(shared.as_bytes(), &parts.ephemeral, self.public.as_bytes());
        let aad = binding.aad();
        cipher
            .decrypt(
                &Nonce::from(parts.nonce),
                Payload {
                    msg: &parts.sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| EnvelopeError::Open)
    }
}

fn derive(
    shared: &[u8; KEY_LEN],
    ephemeral: &[u8; KEY_LEN],
    recipient: &[u8; KEY_LEN],
) -> Aes256Gcm {
    let mut salt = [0u8; 2 * KEY_LEN];
    salt[..KEY_LEN].copy_from_slice(ephemeral);
    salt[KEY_LEN..].copy_from_slice(recipient);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(INFO, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*okm))
}

/// Seal `plaintext` to `recipient` for `binding`.
pub fn seal(
    recipient: &PublicKey,
    binding: Binding<'_>,
    plaintext: &[u8],
) -> Result<String, EnvelopeError> {
    let ephemeral = Zeroizing::new(random::<KEY_LEN>()?);
    seal_with(
        recipient,
        binding,
        plaintext,
        &ephemeral,
        random::<NONCE_LEN>()?,
    )
}

/// [`seal`] with the ephemeral secret and nonce given (known-answer tests).
fn seal_with(
    recipient: &PublicKey,
    binding: Binding<'_>,
    plaintext: &[u8],
    ephemeral: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
) -> Result<String, EnvelopeError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EnvelopeError::TooLarge);
    }
    let eph = StaticSecret::from(*ephemeral);
    let eph_public = x25519_dalek::PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(EnvelopeError::BadPublicKey);
    }
    let cipher = derive(shared.as_bytes(), &eph_public, &recipient.0);
    let aad = binding.aad();
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::TooLarge)?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&eph_public);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// An envelope taken apart (no key needed): what the server checks and
/// records before storing one it cannot open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub version: u8,
    pub ephemeral: [u8; KEY_LEN],
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub sealed: Vec<u8>,
}

impl Parts {
    /// Parse the text form; refuses other versions and short input.
    pub fn parse(envelope: &str) -> Result<Parts, EnvelopeError> {
        if envelope.len() > MAX_ENVELOPE_CHARS {
            return Err(EnvelopeError::TooLarge);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(envelope)
            .map_err(|_| EnvelopeError::Malformed)?;
        let version = *raw.first().ok_or(EnvelopeError::Malformed)?;
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        if raw.len() < HEADER_LEN + TAG_LEN {
            return Err(EnvelopeError::Malformed);
        }
        let mut ephemeral = [0u8; KEY_LEN];
        ephemeral.copy_from_slice(&raw[1..1 + KEY_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[1 + KEY_LEN..HEADER_LEN]);
        Ok(Parts {
            version,
            ephemeral,
            nonce,
            sealed: raw[HEADER_LEN..].to_vec(),
        })
    }

    /// The nonce, base64url.
    pub fn nonce_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Binding<'static> = Binding {
        secret_id: "0190a1b2-c3d4-7e5f-8000-000000000001",
        agent_id: "0190a1b2-c3d4-7e5f-8000-0000000000aa",
    };

    fn flip(envelope: &str, index: usize) -> String {
        let mut raw = URL_SAFE_NO_PAD.decode(envelope).unwrap();
        raw[index] ^= 0x01;
        URL_SAFE_NO_PAD.encode(raw)
    }

    #[test]
    fn seals_and_opens_for_the_bound_secret_and_agent_only() {
        let agent = AgentKeyPair::generate().unwrap();
        let env = seal(agent.public(), B, b"hunter2").unwrap();
        assert_eq!(agent.open(&env, B).unwrap().as_slice(), b"hunter2");
        assert!(!env.contains("hunter2"));
        // Fresh ephemeral key and nonce every time.
        let again = seal(agent.public(), B, b"hunter2").unwrap();
        assert_ne!(again, env);
        assert_ne!(
            Parts::parse(&again).unwrap().ephemeral,
            Parts::parse(&env).unwrap().ephemeral
        );
        // Another secret id or agent id: the associated data differs.
        for other in [
            Binding {
                secret_id: "0190a1b2-c3d4-7e5f-8000-000000000002",
                ..B
            },
            Binding {
                agent_id: "0190a1b2-c3d4-7e5f-8000-0000000000ab",
                ..B
            },
            // Length prefixes: moving a character between the ids changes it.
            Binding {
                secret_id: "0190a1b2-c3d4-7e5f-8000-00000000000",
                agent_id: "10190a1b2-c3d4-7e5f-8000-0000000000aa",
            },
        ] {
            assert_eq!(agent.open(&env, other), Err(EnvelopeError::Open));
        }
        // Empty values work too.
        let empty = seal(agent.public(), B, b"").unwrap();
        assert!(agent.open(&empty, B).unwrap().is_empty());
    }

    #[test]
    fn the_wrong_key_does_not_open() {
        let agent = AgentKeyPair::generate().unwrap();
        let other = AgentKeyPair::generate().unwrap();
        let env = seal(agent.public(), B, b"for agent only").unwrap();
        assert_eq!(other.open(&env, B), Err(EnvelopeError::Open));
        assert_ne!(agent.public().key_id(), other.public().key_id());
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let agent = AgentKeyPair::generate().unwrap();
        let env = seal(agent.public(), B, b"0123456789").unwrap();
        let len = URL_SAFE_NO_PAD.decode(&env).unwrap().len();
        assert_eq!(len, HEADER_LEN + 10 + TAG_LEN);
        for i in 0..len {
            let bad = flip(&env, i);
            let err = agent.open(&bad, B).unwrap_err();
            if i == 0 {
                assert_eq!(err, EnvelopeError::UnsupportedVersion(0), "byte {i}");
            } else {
                assert_eq!(err, EnvelopeError::Open, "byte {i}");
            }
        }
        // Truncated (tag cut off) and garbage.
        let raw = URL_SAFE_NO_PAD.decode(&env).unwrap();
        let cut = URL_SAFE_NO_PAD.encode(&raw[..HEADER_LEN + TAG_LEN - 1]);
        assert_eq!(agent.open(&cut, B), Err(EnvelopeError::Malformed));
        let short_tag = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]);
        assert_eq!(agent.open(&short_tag, B), Err(EnvelopeError::Open));
        assert_eq!(agent.open("", B), Err(EnvelopeError::Malformed));
        assert_eq!(agent.open("not base64!", B), Err(EnvelopeError::Malformed));
        let mut v2 = raw.clone();
        v2[0] = 2;
        assert_eq!(
            agent.open(&URL_SAFE_NO_PAD.encode(v2), B),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
        // A substituted ephemeral key that is a low-order point.
        let mut low = raw;
        low[1..1 + KEY_LEN].copy_from_slice(&[0u8; KEY_LEN]);
        assert_eq!(
            agent.open(&URL_SAFE_NO_PAD.encode(low), B),
            Err(EnvelopeError::Open)
        );
    }

    #[test]
    fn keys_round_trip_and_low_order_points_are_refused() {
        let agent = AgentKeyPair::generate().unwrap();
        let stored = agent.private_base64();
        let back = AgentKeyPair::from_private_base64(&stored).unwrap();
        assert_eq!(back.public(), agent.public());
        let public = PublicKey::from_base64(&agent.public().to_base64()).unwrap();
        assert_eq!(&public, agent.public());
        let id = public.key_id();
        assert!(id.starts_with("x25519:") && id.len() == 7 + 16, "{id}");
        // Zero, one and a point of order 8 (RFC 7748 §7 / libsodium's blocklist).
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8 = hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        for bad in [[0u8; 32], one, order8] {
            assert_eq!(PublicKey::from_bytes(bad), Err(EnvelopeError::BadPublicKey));
        }
        for bad in [
            "",
            "AAAA",
            "not base64!",
            &URL_SAFE_NO_PAD.encode([7u8; 31]),
        ] {
            assert_eq!(
                PublicKey::from_base64(bad),
                Err(EnvelopeError::BadPublicKey)
            );
            assert!(AgentKeyPair::from_private_base64(bad).is_err());
        }
        assert!(format!("{agent:?}").contains(&id));
        assert!(!format!("{agent:?}").contains(stored.as_str()));
    }

    #[test]
    fn too_large_values_are_refused() {
        let agent = AgentKeyPair::generate().unwrap();
        let max = vec![b'x'; MAX_PLAINTEXT];
        let env = seal(agent.public(), B, &max).unwrap();
        assert!(env.len() <= MAX_ENVELOPE_CHARS);
        assert_eq!(agent.open(&env, B).unwrap().len(), MAX_PLAINTEXT);
        assert_eq!(
            seal(agent.public(), B, &vec![b'x'; MAX_PLAINTEXT + 1]),
            Err(EnvelopeError::TooLarge)
        );
        assert_eq!(
            Parts::parse(&"A".repeat(MAX_ENVELOPE_CHARS + 1)),
            Err(EnvelopeError::TooLarge)
        );
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// The format is shared by agents and servers of different versions:
    /// a fixed key, ephemeral secret and nonce must give exactly these bytes.
    /// The expected values were computed independently with Python's
    /// `cryptography` (OpenSSL's X25519, HKDF and AES-GCM) from the
    /// description at the top of this module.
    #[test]
    fn known_answer() {
        let agent =
            AgentKeyPair::from_private_base64(&URL_SAFE_NO_PAD.encode([0x11u8; 32])).unwrap();
        let env = seal_with(
            agent.public(),
            B,
            b"known answer",
            &[0x22u8; 32],
            [0x33u8; 12],
        )
        .unwrap();
        assert_eq!(env, KNOWN_ANSWER);
        assert_eq!(
            agent.open(KNOWN_ANSWER, B).unwrap().as_slice(),
            b"known answer"
        );
        assert_eq!(agent.public().key_id(), KNOWN_KEY_ID);
    }

    const KNOWN_ANSWER: &str = "AQ-qaE7SiGe5f0pqLe5d-M6XTna3AY4_IqHEzyZ4Vw8gMzMzMzMzMzMzMzMzfaBuTrLKha6T_R089A87kuuEu9t7yKZeGgQFLA";
    const KNOWN_KEY_ID: &str = "x25519:d19bf3f082782c87";
}
