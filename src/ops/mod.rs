//! The use cases, one function each, as cargo's `ops` are: each works in a
//! [`Workspace`] (the store, its lock, and one stop token), reports through
//! an interface where it runs long, and returns an outcome value that the
//! command line renders. `cli` parses flags, calls one of these, renders
//! and picks the exit code; `watch` calls the same functions.

mod apply;
mod import;
mod refresh;
pub(crate) mod state;
mod workspace;

pub(crate) use apply::{Next, PlanFrom, apply, next, prepare};
pub(crate) use import::{ImportOutcome, import};
pub(crate) use refresh::{Refreshed, refresh};
pub(crate) use workspace::{Standby, Workspace};

#[cfg(test)]
mod tests;
