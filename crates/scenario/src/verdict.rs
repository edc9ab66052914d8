//! Assertions against what a run observed. Pure: the runner gathers the evidence, this module
//! judges it, and the tests feed it made-up runs.

use serde::Serialize;

use crate::model::{Assertion, AssertionCheck, Phase};
use crate::probe::Sample;

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    /// The step number.
    pub step: String,
    /// The agent's id for it.
    pub id: Option<String>,
    /// `partition`, `kill`, …
    pub kind: String,
    /// The target's name.
    pub target: String,
    /// One line, as the plan says it.
    pub description: String,
    /// When it was applied, seconds since the steps started.
    pub started: f64,
    /// When it ended (its duration ran out or it was reverted).
    pub ended: f64,
    /// What the agent said about applying it (`applied`, or the error).
    pub applied: String,
    /// Whether its lifetime is anchored in the kernel.
    pub kernel_anchored: bool,
    /// Packets its rules matched, for network faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// `verified`, or the residue found (`None` for a kill, which has nothing to revert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert: Option<String>,
    /// The pod it hit (`namespace/name`), for pod targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// A pod kill: the pod that replaced the killed one, once Ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// A pod kill: seconds from the delete to the replacement's Ready, if seen in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_after: Option<f64>,
}

impl FaultRecord {
    /// Whether nothing of it remains: it was reverted and verified, it was a kill, or it was
    /// never applied (no id: refused or skipped; the run reports that as its own failure).
    pub fn revert_ok(&self) -> bool {
        crate::model::is_instant_kind(&self.kind)
            || self.id.is_none()
            || self.revert.as_deref() == Some("verified")
    }
}

/// A crash found in a target's output or crash directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crash {
    /// The target.
    pub target: String,
    /// Where (relative to the run directory).
    pub file: String,
    /// `rust panic`, `go panic`, `crash record`, …
    pub kind: String,
    /// The panic message.
    pub message: String,
    /// The innermost frame of the service's own code, symbolized (`function at file:line`),
    /// or the reason it is unknown.
    pub top_frame: String,
    /// The whole stack, innermost first, one frame per line.
    pub stack: Vec<String>,
    /// When it happened (RFC 3339), where the evidence says: a crash record's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Every frame with what a screen shows about it (the TUI, the HTML report), the ones
    /// `stack` leaves out (the panic machinery, start-up) marked `hidden`; not in the journal.
    #[serde(skip)]
    pub frames: Vec<StackFrame>,
}

/// One frame of a crash's stack, as a screen shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StackFrame {
    /// `function at file:line`, as in [`Crash::stack`].
    pub text: String,
    /// Whether it is the service's own code.
    pub own: bool,
    /// Whether it was inlined into the frame below it.
    pub inlined: bool,
    /// Part of the panic machinery or start-up that a short backtrace hides.
    pub hidden: bool,
    /// Its source file, if known.
    pub file: Option<String>,
    /// Its line, if known.
    pub line: Option<u32>,
}

/// A task group's trend from a dump capture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakGroup {
    /// The dump capture.
    pub dump: String,
    /// `leaking`, `growing`, `stable`, `draining`.
    pub verdict: String,
    /// The group's innermost own frame (or top frame).
    pub frame: String,
    /// First and last count.
    pub first: u64,
    /// Last count.
    pub last: u64,
    /// Theil–Sen slope, tasks per minute.
    pub slope_per_min: f64,
    /// Mann-Kendall p-value.
    pub p_value: f64,
    /// Samples.
    pub samples: usize,
    /// (t, count) series.
    pub series: Vec<(f64, u64)>,
    /// Tasks of the latest dump the runtime proved leaked (Go 1.26 and later).
    pub proven_leaked: u64,
    /// Members of the latest dump also in the one before (`None`: the format has no ids).
    pub survivors: Option<u64>,
    /// Share of each dump's members gone by the next, averaged.
    pub turnover: Option<f64>,
    /// How long the oldest member of the latest dump has been in the group, seconds.
    pub oldest_seen_seconds: Option<f64>,
    /// Members of the latest dump there since the middle of the series.
    pub persisting: Option<u64>,
    /// Why the verdict is not the count trend's alone (the runtime's proof, members that turn
    /// over).
    pub why: Option<String>,
    /// For a group of a process that restarted during the run: the time of the restart
    /// (seconds since the steps started) that ended its series.
    pub before_restart: Option<f64>,
    /// The trend line's count an hour after the last dump (never negative).
    pub projected_1h: u64,
}

/// One dump capture as its first and last dumps showed it (the report draws the last as a
/// flame graph and lists what changed between the two).
#[derive(Debug, Clone, Default)]
pub struct CaptureView {
    /// The dump capture.
    pub name: String,
    /// Its first dump, and where it was saved.
    pub first: Option<(String, faultline_dump::Dump)>,
    /// Its last dump, and where it was saved.
    pub last: Option<(String, faultline_dump::Dump)>,
}

/// Everything a verdict is made from.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Probe samples by name.
    pub probes: Vec<(String, Vec<Sample>)>,
    /// Faults in the order applied.
    pub faults: Vec<FaultRecord>,
    /// When observation ended (seconds).
    pub end: f64,
    /// Crashes found.
    pub crashes: Vec<Crash>,
    /// Data races Go's race detector reported (kind `go data race`), identical ones once
    /// with their count in the message.
    pub races: Vec<Crash>,
    /// Trends of every group of every dump capture (leaking first).
    pub leaks: Vec<LeakGroup>,
    /// Each dump capture's first and last dumps.
    pub captures: Vec<CaptureView>,
}

/// One assertion's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    /// A short name.
    pub title: String,
    /// Its line in the scenario (0 for the implicit revert check).
    pub line: u64,
    /// Whether it held.
    pub passed: bool,
    /// Why, with numbers.
    pub evidence: String,
}

impl Evidence {
    fn samples(&self, probe: &str) -> &[Sample] {
        self.probes
            .iter()
            .find(|(n, _)| n == probe)
            .map_or(&[], |(_, s)| s.as_slice())
    }

    /// Whether time `t` is inside a fault (kills count from when they hit to when the
    /// target's replacement could be up: one second).
    fn in_fault(&self, t: f64) -> bool {
        self.faults.iter().any(|f| {
            let end = if crate::model::is_instant_kind(&f.kind) {
                f.started + 1.0
            } else {
                f.ended
            };
            t >= f.started && t < end
        })
    }

    fn phase_of(&self, t: f64) -> Phase {
        let first = self.faults.first().map_or(f64::INFINITY, |f| f.started);
        let last = self
            .faults
            .iter()
            .map(|f| {
                if crate::model::is_instant_kind(&f.kind) {
                    f.started
                } else {
                    f.ended
                }
            })
            .fold(f64::NEG_INFINITY, f64::max);
        if t < first {
            Phase::Before
        } else if self.in_fault(t) {
            Phase::During
        } else if t >= last {
            Phase::After
        } else {
            // Between faults: neither before nor after all of them; counts only for `all`.
            Phase::All
        }
    }
}

/// Judges every assertion, then the implicit one: every revert verified.
pub fn judge(assertions: &[Assertion], evidence: &Evidence) -> Vec<Judged> {
    let mut out: Vec<Judged> = assertions
        .iter()
        .map(|a| {
            let (passed, text) = judge_one(&a.check, evidence);
            Judged {
                title: a.check.title(),
                line: a.pos.line,
                passed,
                evidence: text,
            }
        })
        .collect();
    let failed: Vec<String> = evidence
        .faults
        .iter()
        .filter(|f| !f.revert_ok())
        .map(|f| {
            format!(
                "step {} {} {}: {}",
                f.step,
                f.kind,
                f.target,
                f.revert.as_deref().unwrap_or("no revert recorded")
            )
        })
        .collect();
    let reverts = evidence
        .faults
        .iter()
        .filter(|f| !crate::model::is_instant_kind(&f.kind))
        .count();
    out.push(Judged {
        title: "every revert verified".into(),
        line: 0,
        passed: failed.is_empty(),
        evidence: if failed.is_empty() {
            format!(
                "{reverts} fault{} reverted, each read back from the kernel",
                if reverts == 1 { "" } else { "s" }
            )
        } else {
            failed.join("; ")
        },
    });
    out
}

fn judge_one(check: &AssertionCheck, ev: &Evidence) -> (bool, String) {
    match check {
        AssertionCheck::ProbeSuccess { probe, phase, min } => {
            let samples: Vec<&Sample> = ev
                .samples(probe)
                .iter()
                .filter(|s| *phase == Phase::All || ev.phase_of(s.t) == *phase)
                .collect();
            if samples.is_empty() {
                return (
                    false,
                    match phase {
                        Phase::All => format!("no samples of {probe}"),
                        Phase::Before => format!("no samples of {probe} before the faults"),
                        Phase::During => format!("no samples of {probe} during the faults"),
                        Phase::After => format!("no samples of {probe} after the faults"),
                    },
                );
            }
            let ok = samples.iter().filter(|s| s.ok).count();
            let ratio = ok as f64 / samples.len() as f64;
            let mut text = format!(
                "{ok}/{} samples passed ({}%, at least {}% required)",
                samples.len(),
                crate::model::percent(ratio),
                crate::model::percent(*min)
            );
            if let Some(worst) = first_error(&samples) {
                text.push_str(&format!("; first failure: {worst}"));
            }
            (ratio + 1e-12 >= *min, text)
        }
        AssertionCheck::Recovers { probe, within } => {
            let within = within.as_secs_f64();
            let samples = ev.samples(probe);
            let mut lines = Vec::new();
            let mut passed = true;
            for f in &ev.faults {
                let end = if crate::model::is_instant_kind(&f.kind) {
                    f.started
                } else {
                    f.ended
                };
                // Recovered: the first passing sample after the end and after the first
                // failure the fault caused (a kill bites a moment after it is sent, so a
                // sample taken just after it may still pass). Failures once a later fault
                // has begun are that fault's, not this one's.
                let next_start = ev
                    .faults
                    .iter()
                    .map(|g| g.started)
                    .filter(|&s| s > f.started)
                    .fold(f64::INFINITY, f64::min)
                    .max(end);
                let first_failure = samples
                    .iter()
                    .find(|s| s.t >= f.started && s.t < next_start && !s.ok)
                    .map_or(end, |s| s.t.max(end));
                let first_ok = samples.iter().find(|s| s.t >= first_failure && s.ok);
                match first_ok {
                    Some(s) if s.t - end <= within => lines.push(format!(
                        "step {} {}: recovered {:.1}s after it ended",
                        f.step,
                        f.kind,
                        s.t - end
                    )),
                    Some(s) => {
                        passed = false;
                        lines.push(format!(
                            "step {} {}: recovered only {:.1}s after it ended (bound {within}s)",
                            f.step,
                            f.kind,
                            s.t - end
                        ));
                    }
                    None => {
                        passed = false;
                        let last_error = samples
                            .iter()
                            .rev()
                            .find(|s| s.t >= end && !s.ok)
                            .and_then(|s| s.error.clone())
                            .unwrap_or_else(|| "no samples".into());
                        lines.push(format!(
                            "step {} {}: never recovered in the {:.1}s observed after it ended (last error: {last_error})",
                            f.step,
                            f.kind,
                            (ev.end - end).max(0.0)
                        ));
                    }
                }
            }
            if lines.is_empty() {
                lines.push("no fault was applied".into());
            }
            (passed, lines.join("; "))
        }
        AssertionCheck::NoPanics { targets } => {
            let found: Vec<&crate::verdict::Crash> = ev
                .crashes
                .iter()
                .filter(|c| targets.is_empty() || targets.contains(&c.target))
                .collect();
            if found.is_empty() {
                return (true, "no panic or crash record found".into());
            }
            let mut text = format!("{} crash(es):", found.len());
            for c in found.iter().take(5) {
                text.push_str(&format!(
                    " [{}] {} \"{}\" at {} ({})",
                    c.target, c.kind, c.message, c.top_frame, c.file
                ));
            }
            (false, text)
        }
        AssertionCheck::NoRaces { targets } => {
            let found: Vec<&crate::verdict::Crash> = ev
                .races
                .iter()
                .filter(|c| targets.is_empty() || targets.contains(&c.target))
                .collect();
            if found.is_empty() {
                return (true, "no data race reported".into());
            }
            let mut text = format!("{} data race(s):", found.len());
            for c in found.iter().take(5) {
                text.push_str(&format!(
                    " [{}] {} at {} ({})",
                    c.target, c.message, c.top_frame, c.file
                ));
            }
            (false, text)
        }
        AssertionCheck::NoLeaks { dumps } => {
            let groups: Vec<&LeakGroup> = ev
                .leaks
                .iter()
                .filter(|g| dumps.is_empty() || dumps.contains(&g.dump))
                .collect();
            let leaking: Vec<&&LeakGroup> =
                groups.iter().filter(|g| g.verdict == "leaking").collect();
            if leaking.is_empty() {
                let samples = groups.iter().map(|g| g.samples).max().unwrap_or(0);
                return (
                    true,
                    format!("{} groups, none leaking ({samples} samples)", groups.len()),
                );
            }
            let text = leaking
                .iter()
                .map(|g| {
                    let mut text = format!(
                        "{}: group at {} leaking: {} -> {} tasks, +{:.1}/min, p = {:.2e} over {} samples",
                        g.dump, g.frame, g.first, g.last, g.slope_per_min, g.p_value, g.samples
                    );
                    if g.proven_leaked > 0 {
                        text.push_str(&format!(
                            ", {} proven leaked by the runtime",
                            g.proven_leaked
                        ));
                    }
                    if let Some(at) = g.before_restart {
                        text.push_str(&format!(" (before the restart at {at:.1}s)"));
                    }
                    text
                })
                .collect::<Vec<_>>()
                .join("; ");
            (false, text)
        }
        AssertionCheck::Replaced { target, within } => {
            let kills: Vec<&FaultRecord> = ev
                .faults
                .iter()
                .filter(|f| f.kind == "pod-kill")
                .filter(|f| target.as_ref().is_none_or(|t| &f.target == t))
                .collect();
            if kills.is_empty() {
                return (false, "no pod was killed".into());
            }
            let bound = within.as_secs_f64();
            let mut passed = true;
            let lines: Vec<String> = kills
                .iter()
                .map(|f| {
                    let pod = f.pod.as_deref().unwrap_or("?");
                    match (&f.replacement, f.ready_after) {
                        (Some(by), Some(after)) if after <= bound => {
                            format!("{pod} replaced by {by}, Ready after {after:.1}s")
                        }
                        (Some(by), Some(after)) => {
                            passed = false;
                            format!("{pod} replaced by {by}, but Ready only after {after:.1}s")
                        }
                        _ => {
                            passed = false;
                            format!("{pod}: no replacement Ready ({})", f.applied)
                        }
                    }
                })
                .collect();
            (passed, lines.join("; "))
        }
    }
}

fn first_error(samples: &[&Sample]) -> Option<String> {
    samples.iter().find(|s| !s.ok).map(|s| {
        format!(
            "at {:+.1}s: {}",
            s.t,
            s.error.as_deref().unwrap_or("failed")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Pos;
    use std::time::Duration;

    #[test]
    fn replaced_holds_when_every_killed_pod_was_replaced_in_time() {
        let kill = |pod: &str, by: Option<&str>, after: Option<f64>| FaultRecord {
            pod: Some(format!("shop/{pod}")),
            replacement: by.map(str::to_owned),
            ready_after: after,
            ..fault("pod-kill", 1.0, 1.0, None)
        };
        let check = |within: u64| AssertionCheck::Replaced {
            target: Some("api".into()),
            within: Duration::from_secs(within),
        };
        let mut ev = Evidence::default();
        assert_eq!(
            judge_one(&check(30), &ev),
            (false, "no pod was killed".into())
        );
        ev.faults.push(kill("api-a", Some("api-z"), Some(12.5)));
        let (ok, text) = judge_one(&check(30), &ev);
        assert!(ok, "{text}");
        assert_eq!(text, "shop/api-a replaced by api-z, Ready after 12.5s");
        assert!(!judge_one(&check(10), &ev).0);
        ev.faults.push(kill("api-b", None, None));
        let (ok, text) = judge_one(&check(30), &ev);
        assert!(!ok);
        assert!(text.contains("shop/api-b: no replacement Ready"), "{text}");
    }

    fn sample(t: f64, ok: bool) -> Sample {
        Sample {
            t,
            ok,
            latency_ms: 1.0,
            error: (!ok).then(|| "connection refused".into()),
        }
    }

    fn fault(kind: &str, started: f64, ended: f64, revert: Option<&str>) -> FaultRecord {
        FaultRecord {
            step: "2".into(),
            id: Some("x".into()),
            kind: kind.into(),
            target: "api".into(),
            description: String::new(),
            started,
            ended,
            applied: "applied".into(),
            kernel_anchored: true,
            pod: None,
            replacement: None,
            ready_after: None,
            packets: None,
            revert: revert.map(str::to_owned),
        }
    }

    fn assertion(check: AssertionCheck) -> Assertion {
        Assertion {
            pos: Pos {
                line: 7,
                ..Pos::default()
            },
            check,
        }
    }

    /// A probe that fails from 2 s to 6 s of a run with a partition from 2 s to 4 s.
    fn run() -> Evidence {
        Evidence {
            probes: vec![(
                "health".into(),
                (0..20)
                    .map(|i| {
                        let t = f64::from(i) * 0.5;
                        sample(t, !(2.0..6.0).contains(&t))
                    })
                    .collect(),
            )],
            faults: vec![fault("partition", 2.0, 4.0, Some("verified"))],
            end: 10.0,
            ..Evidence::default()
        }
    }

    #[test]
    fn success_ratios_count_only_their_phase() {
        let ev = run();
        let check = |phase, min| {
            judge_one(
                &AssertionCheck::ProbeSuccess {
                    probe: "health".into(),
                    phase,
                    min,
                },
                &ev,
            )
        };
        let (ok, text) = check(Phase::Before, 1.0);
        assert!(ok, "{text}");
        assert_eq!(text, "4/4 samples passed (100%, at least 100% required)");
        let (ok, text) = check(Phase::During, 0.5);
        assert!(!ok);
        assert!(text.starts_with("0/4 samples passed (0%"), "{text}");
        assert!(
            text.contains("first failure: at +2.0s: connection refused"),
            "{text}"
        );
        // After 4 s: 12 samples, the 4 before 6 s failed.
        let (ok, text) = check(Phase::After, 0.75);
        assert!(!ok);
        assert!(
            text.starts_with("8/12 samples passed (66.7%, at least 75% required)"),
            "{text}"
        );
        assert!(check(Phase::After, 0.6).0);
        assert_eq!(check(Phase::All, 0.8).1.split(' ').next(), Some("12/20"));
    }

    #[test]
    fn recovery_is_measured_from_the_end_of_each_fault() {
        let ev = run();
        let recovers = |secs| AssertionCheck::Recovers {
            probe: "health".into(),
            within: Duration::from_secs(secs),
        };
        let (ok, text) = judge_one(&recovers(1), &ev);
        assert!(!ok);
        assert_eq!(
            text,
            "step 2 partition: recovered only 2.0s after it ended (bound 1s)"
        );
        let (ok, text) = judge_one(&recovers(3), &ev);
        assert!(ok, "{text}");
        let mut never = ev.clone();
        never.probes[0].1.iter_mut().for_each(|s| {
            if s.t >= 2.0 {
                s.ok = false;
                s.error = Some("timed out".into());
            }
        });
        let (ok, text) = judge_one(&recovers(3), &never);
        assert!(!ok);
        assert!(
            text.contains(
                "never recovered in the 6.0s observed after it ended (last error: timed out)"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_later_faults_failures_are_not_blamed_on_an_earlier_one() {
        // A kill at 1 s that the probe never noticed, then a partition from 5 s to 7 s
        // that it did, recovering at 7.5 s.
        let ev = Evidence {
            probes: vec![(
                "health".into(),
                (0..20)
                    .map(|i| {
                        let t = f64::from(i) * 0.5;
                        sample(t, !(5.0..7.5).contains(&t))
                    })
                    .collect(),
            )],
            faults: vec![
                fault("kill", 1.0, 1.0, None),
                fault("partition", 5.0, 7.0, Some("verified")),
            ],
            end: 10.0,
            ..Evidence::default()
        };
        let (ok, text) = judge_one(
            &AssertionCheck::Recovers {
                probe: "health".into(),
                within: Duration::from_secs(1),
            },
            &ev,
        );
        assert!(ok, "{text}");
        assert_eq!(
            text,
            "step 2 kill: recovered 0.0s after it ended; \
             step 2 partition: recovered 0.5s after it ended"
        );
    }

    #[test]
    fn an_unverified_revert_fails_the_implicit_assertion() {
        let mut ev = run();
        let judged = judge(&[], &ev);
        assert_eq!(judged.len(), 1);
        assert!(judged[0].passed, "{:?}", judged[0]);
        ev.faults.push(fault(
            "loss",
            5.0,
            6.0,
            Some("table faultline_x still present"),
        ));
        ev.faults.push(fault("kill", 7.0, 7.0, None));
        let judged = judge(&[], &ev);
        assert!(!judged[0].passed);
        assert_eq!(
            judged[0].evidence,
            "step 2 loss api: table faultline_x still present"
        );
    }

    #[test]
    fn panics_and_leaks_name_what_was_found() {
        let mut ev = run();
        ev.crashes.push(Crash {
            target: "api".into(),
            file: "hosts/api/crashes/1.json".into(),
            kind: "crash record".into(),
            message: "boom".into(),
            top_frame: "api::price at src/main.rs:9".into(),
            stack: vec![],
            time: None,
            frames: vec![],
        });
        ev.leaks.push(LeakGroup {
            dump: "goroutines".into(),
            verdict: "leaking".into(),
            frame: "main.audit at main.go:40".into(),
            first: 3,
            last: 90,
            slope_per_min: 300.0,
            p_value: 1e-6,
            samples: 20,
            series: vec![],
            proven_leaked: 0,
            survivors: None,
            turnover: None,
            oldest_seen_seconds: None,
            persisting: None,
            why: None,
            before_restart: None,
            projected_1h: 0,
        });
        let checks = [
            assertion(AssertionCheck::NoPanics { targets: vec![] }),
            assertion(AssertionCheck::NoPanics {
                targets: vec!["db".into()],
            }),
            assertion(AssertionCheck::NoLeaks { dumps: vec![] }),
        ];
        let judged = judge(&checks, &ev);
        assert!(!judged[0].passed);
        assert!(judged[0].evidence.contains("api::price at src/main.rs:9"));
        assert!(judged[1].passed);
        assert!(!judged[2].passed);
        assert!(
            judged[2]
                .evidence
                .contains("main.audit at main.go:40 leaking: 3 -> 90"),
            "{}",
            judged[2].evidence
        );
    }
}
