//! faultline-scenario against real files: every scenario in scenarios/ loads and plans, and
//! mistakes are all reported with their places.

mod examples;
mod mistakes;
