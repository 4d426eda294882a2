//! pinsync: pins as code for IPFS pinning services.
//!
//! The pipeline is `manifest` (what must be pinned) + `state` (what pinsync
//! has pinned) -> `plan` (a pure diff) -> `apply` (provider calls, recorded as
//! they land). `cli` is the thin shell over it; `watch` runs it in a loop.

pub mod apply;
pub mod cli;
mod file_io;
pub mod import;
mod init;
pub mod manifest;
mod ops;
pub mod plan;
pub mod provider;
pub mod refresh;
pub mod retry;
pub mod state;
pub mod wait;
pub mod watch;
