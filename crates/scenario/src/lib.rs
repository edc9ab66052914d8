//! Scenarios: YAML files with spans, plans, the local lab, the runner, probes, assertions and
//! reports.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cluster;
pub mod http;
pub mod load;
pub mod model;
pub mod node;
pub mod peer_watch;
pub mod plan;
pub mod pod_logs;

pub use load::{Invalid, LoadError, load, load_file};
pub use model::Scenario;
pub use plan::Plan;
pub mod analysis;
pub mod html;
pub mod lab;
pub mod probe;
pub mod report;
mod report_html;
pub mod runner;
pub mod selector;
pub mod verdict;
