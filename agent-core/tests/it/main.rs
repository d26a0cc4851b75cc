//! Integration tests: real HTTPS against pve-sim, a real OpenSSH sshd on
//! loopback, the real CLI binary, and the kernel keyring inside
//! `keyctl session -`. External programs (xorriso, isoinfo, sshd,
//! ssh-keygen, keyctl) are required: a missing one fails the test.

mod cli;
mod common;
mod concurrent;
mod console_flow;
mod e2e_actions;
mod fuzz_entry;
mod http;
mod provisioning;
mod proxmox;
mod recovery;
mod runtime;
mod ssh;
mod vault;
mod vm_jobs;
mod wine;
