//! Workspace-wide tests live in this package; see `invariants.rs`.
