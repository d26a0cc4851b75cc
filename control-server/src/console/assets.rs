//! The console's static files, embedded in the binary (debug builds too:
//! rust-embed's `debug-embed`), served under `/console/assets/<build-hash>/…`.
//!
//! The build hash is derived from the files' contents, so a new build with
//! other files gets new URLs and the files can be cached forever
//! (`immutable`). An unknown file or an old hash is a plain-text 404.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "assets/console/"]
struct Files;

/// `Cache-Control` of an asset: its URL changes whenever its content does.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// 16 hex characters of SHA-256 over every file's name and content hash.
pub fn build_hash() -> &'static str {
    static HASH: LazyLock<String> = LazyLock::new(|| {
        let mut names: Vec<_> = Files::iter().collect();
        names.sort();
        let mut h = Sha256::new();
        for name in names {
            if let Some(f) = Files::get(&name) {
                h.update(name.as_bytes());
                h.update([0]);
                h.update(f.metadata.sha256_hash());
            }
        }
        hex::encode(&h.finalize()[..8])
    });
    &HASH
}

/// `/console/assets/<build-hash>`: where pages link the assets.
pub fn base_url() -> String {
    format!("{}/assets/{}", super::BASE, build_hash())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}

/// `GET /console/assets/{hash}/{*file}`.
pub async fn serve(Path((hash, file)): Path<(String, String)>) -> Response {
    if hash != build_hash() {
        return not_found();
    }
    let Some(f) = Files::get(&file) else {
        return not_found();
    };
    let mut resp = f.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if let Ok(etag) = HeaderValue::from_str(&format!(
        "\"{}\"",
        hex::encode(&f.metadata.sha256_hash()[..16])
    )) {
        h.insert(header::ETAG, etag);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_files_are_embedded() {
        for name in ["htmx.min.js", "console.js", "console.css"] {
            assert!(Files::get(name).is_some(), "{name} is not embedded");
        }
        assert_eq!(build_hash().len(), 16);
        assert_eq!(content_type("console.js"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn htmx_is_the_pinned_release() {
        // docs/dependencies.md records this version and checksum.
        let f = Files::get("htmx.min.js").unwrap();
        assert_eq!(
            hex::encode(f.metadata.sha256_hash()),
            "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
        );
    }
}
