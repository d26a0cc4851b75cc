//! isotools (work in progress)
