//! End-to-end tests of the `faultline` binary against real components.

mod differential;
