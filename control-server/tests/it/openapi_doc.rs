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

/// utoipa names a schema after its Rust type: two `ToSchema` types with
/// the same name in different modules silently share one schema in the
/// document, and one route then documents the other's shape (found by
/// schemathesis: the artifacts audit list answered with the licensing
/// audit's schema). Every `ToSchema` type's schema name must be unique;
/// `#[schema(as = Name)]` renames one.
#[test]
fn schema_names_are_unique() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    let mut clashes = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for name in schema_type_names(&text) {
                let at = path.display().to_string();
                if let Some(first) = seen.insert(name.clone(), at.clone()) {
                    clashes.push(format!("{name}: {first} and {at}"));
                }
            }
        }
    }
    assert!(seen.len() > 50, "found only {} ToSchema types", seen.len());
    assert!(
        clashes.is_empty(),
        "ToSchema types sharing a schema name (rename one with #[schema(as = …)]):\n{}",
        clashes.join("\n")
    );
}

/// The schema names of the `#[derive(… ToSchema …)]` types in one file:
/// the `#[schema(as = X)]` name if given, else the type's name.
fn schema_type_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut deriving = false;
    let mut renamed: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[derive(") && line.contains("ToSchema") {
            deriving = true;
        } else if deriving && line.starts_with("#[schema(as") {
            renamed = line
                .split('=')
                .nth(1)
                .map(|r| r.trim_end_matches([')', ']']).trim().to_string());
        } else if deriving && !line.starts_with("#[") && !line.starts_with("///") {
            let ty = line
                .split_whitespace()
                .skip_while(|w| !matches!(*w, "struct" | "enum"))
                .nth(1)
                .map(|w| {
                    w.split(['<', '{', '(', ';'])
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
            if let Some(ty) = ty.filter(|t| !t.is_empty()) {
                names.push(renamed.take().unwrap_or(ty));
            }
            deriving = false;
            renamed = None;
        }
    }
    names
}
