//! Screenshot checks: the shared dev crate's (`botmox_webdriver::shot`), so
//! the tray test and the web console's browser test judge "blank" alike.

pub use botmox_webdriver::shot::*;
