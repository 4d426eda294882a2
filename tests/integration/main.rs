//! End-to-end tests: the real `pinsync` binary against the emulator.

// A test binary has no public surface: its helpers are `pub` for the
// test modules beside them.
#![allow(unreachable_pub)]

mod support;

mod action;
mod apply;
mod completions_and_man;
mod exit_codes;
mod failures;
mod import;
mod include;
mod init;
mod ipfs_cluster;
mod keys_in_answers;
mod kubo;
mod lighthouse;
mod metrics;
mod migration;
mod notify;
mod pinata;
mod pinning_service;
mod pinning_service_traps;
mod plan;
mod postgres;
mod postgres_state;
mod postgres_tls;
mod prune;
mod quicknode;
mod rate_limits;
mod redirects;
mod refresh;
mod reliability;
mod schema;
mod terminal;
mod validate;
mod wait;
mod watch;
