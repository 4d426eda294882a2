//! pinsync: pins as code for IPFS pinning services.
//!
//! The pipeline is `manifest` (what must be pinned) + `state` (what pinsync
//! has pinned) -> `plan` (a pure diff) -> `apply` (provider calls, recorded as
//! they land). `ops` holds the use cases (apply with its refresh and wait,
//! refresh, import, the state's copies) in a workspace of store, lock and
//! stop token; `cli` is the thin shell over them, and `watch` runs the same
//! apply in a loop.

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
