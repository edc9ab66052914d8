//! faultline-leak against its references and real dumps.
//!
//! - `golden`: the statistics against pymannkendall and scipy, on the values
//!   `tests/golden/generate.py` computed with them (`tests/golden/golden.json`).
//! - `tracker`: the tracker fed Go dumps parsed by faultline-dump, among them the real
//!   goroutine dump of faultline-dump's fixtures with a leak added.
//! - `identity`: members followed by id (turnover against leaks), the runtime's proof, restarts.
//! - `props`: properties of the statistics, the verdicts and the tracker's bounds.

mod golden;
mod identity;
mod props;
mod tracker;

use faultline_dump::{Dump, Limits, parse};

/// One group of identical goroutines in a made-up Go dump.
#[derive(Debug, Clone, Copy)]
pub struct Goroutines {
    /// The innermost function of the service's own code (`main.worker`).
    pub function: &'static str,
    /// The state in brackets (`chan receive`).
    pub state: &'static str,
    /// How many goroutines.
    pub count: u64,
    /// Wait in minutes of the oldest one; the others wait a minute less each, down to none.
    pub oldest_minutes: Option<u64>,
}

/// Go traceback text of `groups` (ids from 10 on), as `/debug/pprof/goroutine?debug=2`
/// prints it.
pub fn go_text(groups: &[Goroutines]) -> String {
    let mut text = String::from("goroutine 1 [running]:\nmain.main()\n\t/app/main.go:10 +0x1d\n\n");
    let mut id = 10u64;
    for g in groups {
        for i in 0..g.count {
            let wait = match g.oldest_minutes {
                Some(m) if m > i => format!(", {} minutes", m - i),
                _ => String::new(),
            };
            text.push_str(&format!(
                "goroutine {id} [{}{wait}]:\nruntime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n\
                 \t/usr/lib/go/src/runtime/proc.go:424 +0xce\n{}(0xc000010000)\n\
                 \t/app/main.go:42 +0x2a\ncreated by main.main in goroutine 1\n\
                 \t/app/main.go:12 +0x3b\n\n",
                g.state, g.function
            ));
            id += 1;
        }
    }
    text
}

/// [`go_text`], parsed.
pub fn go_dump(groups: &[Goroutines]) -> Dump {
    let dump = parse(go_text(groups).as_bytes(), &Limits::default()).unwrap();
    assert!(dump.diagnostics.is_empty(), "{:?}", dump.diagnostics);
    dump
}
