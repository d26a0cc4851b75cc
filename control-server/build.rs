//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the
//! migration files at compile time but cannot track them on stable Rust.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
