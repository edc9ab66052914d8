//! faultline-scenario against real files: every scenario in scenarios/ loads and plans, and
//! mistakes are all reported with their places; the runner on a (fake) cluster.

mod cluster;
mod examples;
mod mistakes;
