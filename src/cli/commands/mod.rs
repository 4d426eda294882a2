//! One file per command: parse its flags (in `args`), call the use case
//! in `ops`, render the outcome, and pick the exit code.

pub(super) mod apply;
pub(super) mod import;
pub(super) mod init;
pub(super) mod plan;
pub(super) mod refresh;
pub(super) mod state;
pub(super) mod validate;
pub(super) mod watch;
