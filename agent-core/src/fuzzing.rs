//! Entry points shared by the cargo-fuzz targets (`agent-core/fuzz`) and the
//! regular test suite (`tests/it/fuzz_entry.rs`, which runs every seed of
//! `agent-core/fuzz/seeds/<target>/` plus a short bounded mutation run), so
//! CI exercises them on stable. Each panics only when an invariant breaks;
//! any input may be refused with a typed error.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::pairing;
use crate::ssh::allowlist;

/// `pairing::parse` on arbitrary (lossy UTF-8) text — every accepted form:
/// bundle, JSON, http(s) links with bundle/code/path, `botmox://`, raw
/// code. An accepted input has a well-formed code, a normalized server URL
/// and fingerprint; the transport check agrees with the URL's scheme.
pub fn pairing_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(p) = pairing::parse(&text) else {
        return;
    };
    let code = &p.pairing_code;
    assert!(
        (4..=128).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "accepted a malformed code {code:?}"
    );
    if let Some(url) = &p.server_url {
        let u = url::Url::parse(url).expect("an accepted server URL parses");
        assert!(matches!(u.scheme(), "http" | "https"), "{url}");
        assert!(u.host_str().is_some(), "{url}");
        assert!(!url.ends_with('/'), "not normalized: {url}");
        let secure = p.clone().require_secure_transport(false);
        if u.scheme() == "https" || pairing::is_loopback_url(url) {
            assert!(secure.is_ok(), "{url} refused");
        } else {
            assert_eq!(
                secure.unwrap_err(),
                pairing::PairingError::InsecureHttp(url.clone())
            );
        }
        assert!(p.clone().require_secure_transport(true).is_ok());
    }
    if let Some(fp) = &p.server_cert_sha256 {
        assert!(
            fp.len() == 64
                && fp
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "fingerprint {fp:?}"
        );
    }
    assert!(!p.allow_insecure_http, "consent never comes from the input");
    let _ = p.require_server(Some("https://fallback.example"));
}

/// Decodes `data` as `T`; an accepted value re-encodes to JSON that decodes
/// to the same JSON again (no value the agent accepts is lost or changed).
fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_value(&v).expect("an accepted value encodes");
    let back: T = serde_json::from_value(json.clone()).expect("its encoding decodes");
    assert_eq!(
        serde_json::to_value(&back).expect("encodes"),
        json,
        "{} does not round-trip",
        std::any::type_name::<T>()
    );
}

/// The protocol's JSON types the agent reads or writes, decoded from
/// arbitrary bytes (byte 0 chooses the type, the rest is the document),
/// plus the pairing bundle decoder (`PairingBundle::decode`).
pub fn protocol_json(data: &[u8]) {
    use botmox_protocol as p;
    let Some((&which, doc)) = data.split_first() else {
        return;
    };
    match which % 16 {
        0 => round_trip::<p::Envelope<Value>>(doc),
        1 => round_trip::<p::ErrorEnvelope>(doc),
        2 => round_trip::<p::RegisterRequest>(doc),
        3 => round_trip::<p::RegisterResponse>(doc),
        4 => round_trip::<p::HeartbeatRequest>(doc),
        5 => round_trip::<p::HeartbeatResponse>(doc),
        6 => round_trip::<p::RotateTokenResponse>(doc),
        7 => round_trip::<p::Command>(doc),
        8 => round_trip::<p::CommandReport>(doc),
        9 => round_trip::<p::OutputChunk>(doc),
        10 => round_trip::<p::OutputAppend>(doc),
        11 => round_trip::<p::Intervals>(doc),
        12 => round_trip::<p::CommandStatus>(doc),
        13 => round_trip::<p::ReportedStatus>(doc),
        14 => round_trip::<p::pairing::PairingBundle>(doc),
        _ => {
            let text = String::from_utf8_lossy(doc);
            if let Ok(b) = p::pairing::PairingBundle::decode(&text) {
                let again = p::pairing::PairingBundle::decode(&b.encode())
                    .expect("an encoded bundle decodes");
                assert_eq!(again, b);
            }
        }
    }
}

/// `ssh::allowlist::parse` on arbitrary (lossy UTF-8) text. An accepted
/// command came from a short input of safe characters only, its argv is a
/// known program with words of `[A-Za-z0-9._:/+-]` none starting with `-`,
/// parsing the argv again gives the same argv, and the remote command line
/// is exactly the single-quoted words.
pub fn ssh_allowlist(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(cmd) = allowlist::parse(&text) else {
        return;
    };
    assert!(text.len() <= allowlist::MAX_COMMAND_LEN);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ._:/+-".contains(&b)),
        "accepted unsafe input {text:?}"
    );
    let argv = cmd.argv();
    assert!(
        matches!(argv[0].as_str(), "qm" | "cat" | "pvesh"),
        "{argv:?}"
    );
    for w in argv {
        assert!(!w.is_empty() && !w.starts_with('-'), "{argv:?}");
        assert!(
            w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:/+-".contains(&b)),
            "{argv:?}"
        );
    }
    let again = allowlist::parse(&argv.join(" ")).expect("a canonical argv parses");
    assert_eq!(again.argv(), argv);
    let quoted: Vec<String> = argv.iter().map(|w| format!("'{w}'")).collect();
    assert_eq!(cmd.to_remote_command(), quoted.join(" "));
}
