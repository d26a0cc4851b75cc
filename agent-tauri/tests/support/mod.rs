//! Shared support for the GUI tests (tests/gui*.rs).
#![allow(dead_code)]

pub mod display;
pub mod server;
pub mod shot;
pub mod webdriver;
