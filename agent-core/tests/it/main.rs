//! Integration tests: real HTTPS against pve-sim, a real OpenSSH sshd on
//! loopback, the real CLI binary, and the kernel keyring inside
//! `keyctl session -`. External programs (xorriso, isoinfo, sshd,
//! ssh-keygen, keyctl) are required: a missing one fails the test.

mod cli;
mod common;
mod http;
mod proxmox;
mod runtime;
mod ssh;
