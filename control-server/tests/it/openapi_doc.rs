//! `docs/openapi.json` is generated from the code; this keeps it current.
//! Regenerate with: `cargo run -p control-server -- openapi > docs/openapi.json`
//! (or run this test with BOTMOX_UPDATE_OPENAPI=1).

#[test]
fn committed_openapi_matches_the_code() {
    let generated = format!("{}\n", control_server::http::openapi_json());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    if std::env::var_os("BOTMOX_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `cargo run -p control-server -- openapi > docs/openapi.json`"
    );
}
