//! `faultline tui`: one screen for a game day. What can be hit (targets), what is being hit
//! and for how long (faults, with their packet counters and lifetimes), what crashed (stacks
//! symbolized from the debug store), and which task groups are growing (leak verdicts).
//!
//! The shape is the one of STYLE.md: [`app`] holds the state and turns each [`app::Event`]
//! into [`app::Action`]s without any I/O; [`view`] draws the state; [`run`] is the one loop
//! that reads the terminal and the [`sources`], and carries the actions out.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod form;
pub mod model;
pub mod run;
pub mod sources;
pub mod view;

pub use run::{Options, Summary, run};
