//! pinsync: pins as code for IPFS pinning services.
//!
//! The pipeline is `manifest` (what must be pinned) + `state` (what pinsync
//! has pinned) -> `plan` (a pure diff) -> `apply` (provider calls, recorded as
//! they land). `ops` holds the use cases (apply with its refresh and wait,
//! refresh, import, the state's copies) in a workspace of store, lock and
//! stop token; `cli` is the thin shell over them, and `watch` runs the same
//! apply in a loop.
//!
//! The public surface is what the binary (`cli::main`) and the fuzz
//! targets (`fuzz/`) use; everything else is `pub(crate)`, and the
//! `unreachable_pub` lint keeps it so.

pub mod apply;
pub mod cli;
mod file_io;
mod import;
mod init;
pub mod manifest;
mod metrics;
mod notify;
mod ops;
pub mod plan;
pub mod provider;
mod refresh;
mod retry;
pub mod state;
mod wait;
mod watch;
