//! Integration tests of faultline-capture: real panics in child processes, checked against
//! `faultline-record` and binutils.

mod panic_hook;
