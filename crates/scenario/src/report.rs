//! The run's reports: JUnit XML (one testcase per assertion), the JSON journal (schema in
//! docs/scenarios.md), and a Markdown or HTML report with the timeline, probe success over
//! time, the crashes and the leak verdicts.

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use crate::model::Scenario;
use crate::plan::Plan;
use crate::runner::{RunOutcome, Verdict};

/// The JSON journal's format version.
pub const JOURNAL_VERSION: u32 = 1;

/// JUnit XML: a suite named after the scenario, a testcase per assertion (failures carry the
/// evidence; skipped when a run cut short could not judge it), and one for "every revert
/// verified".
pub fn junit(scenario: &Scenario, outcome: &RunOutcome) -> String {
    let mut suite = TestSuite::new(format!("faultline: {}", scenario.name));
    for judged in &outcome.judged {
        let status = if judged.passed {
            TestCaseStatus::success()
        } else if outcome.not_judged(judged) {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!(
                "not judged: the run was cut short ({}); so far: {}",
                outcome.infrastructure_error.as_deref().unwrap_or("unknown"),
                judged.evidence
            ));
            s
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(judged.evidence.clone());
            s.set_type("assertion");
            s.set_description(judged.evidence.clone());
            s
        };
        let mut case = TestCase::new(judged.title.clone(), status);
        case.set_classname(format!("faultline.{}", scenario.name));
        case.set_system_out(judged.evidence.clone());
        suite.add_test_case(case);
    }
    if let Some(error) = &outcome.infrastructure_error {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(error.clone());
        s.set_type("infrastructure");
        let mut case = TestCase::new("run carried out", s);
        case.set_classname(format!("faultline.{}", scenario.name));
        suite.add_test_case(case);
    }
    let mut report = Report::new("faultline run");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- could not write JUnit: {e} -->\n"))
}

/// The JSON journal.
pub fn journal(scenario: &Scenario, plan: &Plan, outcome: &RunOutcome) -> serde_json::Value {
    json!({
        "faultline_run": JOURNAL_VERSION,
        "scenario": scenario.name,
        "seed": plan.seed,
        "started_at": humantime::format_rfc3339_millis(outcome.started_at).to_string(),
        "verdict": outcome.verdict,
        "exit_code": outcome.verdict.exit_code(),
        "infrastructure_error": outcome.infrastructure_error,
        "hosts": plan.hosts.iter().map(|h| json!({
            "name": h.name, "address": h.address.to_string(), "command": h.command,
        })).collect::<Vec<_>>(),
        "events": outcome.events,
        "faults": outcome.evidence.faults,
        "probes": outcome.evidence.probes.iter().map(|(name, samples)| json!({
            "name": name, "samples": samples,
        })).collect::<Vec<_>>(),
        "dumps": outcome.observed.scrapes.iter().map(|(name, scrapes)| json!({
            "name": name, "scrapes": scrapes,
        })).collect::<Vec<_>>(),
        "crashes": outcome.evidence.crashes,
        "races": outcome.evidence.races,
        "leaks": outcome.evidence.leaks,
        "assertions": outcome.judged,
        "swept": outcome.swept,
        "residue": outcome.residue,
        "notes": outcome.notes,
    })
}

fn verdict_line(outcome: &RunOutcome) -> String {
    match outcome.verdict {
        Verdict::Passed => "PASSED: every assertion held and every revert was verified".into(),
        Verdict::Failed => {
            let failed = outcome.judged.iter().filter(|j| !j.passed).count();
            format!(
                "FAILED: {failed} of {} assertions failed",
                outcome.judged.len()
            )
        }
        Verdict::RevertUnverified => "REVERT NOT VERIFIED: something may be left in force".into(),
        Verdict::InfrastructureError => format!(
            "INFRASTRUCTURE ERROR: {}",
            outcome.infrastructure_error.as_deref().unwrap_or("unknown")
        ),
    }
}

/// Success ratio of `samples` in one-second buckets from `start` to `end`.
fn buckets(samples: &[crate::probe::Sample], end: f64) -> Vec<(i64, f64)> {
    let last = end.ceil().max(1.0) as i64;
    (0..last)
        .filter_map(|b| {
            let inside: Vec<_> = samples
                .iter()
                .filter(|s| s.t >= b as f64 && s.t < (b + 1) as f64)
                .collect();
            (!inside.is_empty()).then(|| {
                (
                    b,
                    inside.iter().filter(|s| s.ok).count() as f64 / inside.len() as f64,
                )
            })
        })
        .collect()
}

fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| BARS[((v.clamp(0.0, 1.0)) * 7.0).round() as usize])
        .collect()
}

/// The Markdown report: verdict, assertions, timeline, probe chart (a Mermaid chart and a
/// text sparkline), faults, crashes, leaks.
pub fn markdown(scenario: &Scenario, plan: &Plan, outcome: &RunOutcome) -> String {
    let mut md = String::new();
    let ev = &outcome.evidence;
    let _ = writeln!(md, "# faultline run: {}\n", scenario.name);
    if let Some(d) = &scenario.description {
        let _ = writeln!(md, "{d}\n");
    }
    let _ = writeln!(
        md,
        "**{}** (exit code {}). Started {}, seed {}.\n",
        verdict_line(outcome),
        outcome.verdict.exit_code(),
        humantime::format_rfc3339_seconds(outcome.started_at),
        plan.seed
    );
    let _ = writeln!(
        md,
        "## Assertions\n\n| | assertion | line | evidence |\n|---|---|---|---|"
    );
    for j in &outcome.judged {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            match (j.passed, outcome.not_judged(j)) {
                (true, _) => "✅",
                (false, true) => "➖ not judged",
                (false, false) => "❌",
            },
            j.title,
            if j.line == 0 {
                "-".into()
            } else {
                j.line.to_string()
            },
            j.evidence.replace('|', "\\|")
        );
    }
    let _ = writeln!(md, "\n## Probes\n");
    for (name, samples) in &ev.probes {
        let ok = samples.iter().filter(|s| s.ok).count();
        let series = buckets(samples, ev.end);
        let _ = writeln!(
            md,
            "**{name}**: {ok}/{} passed. Success per second: `{}`\n",
            samples.len(),
            sparkline(&series.iter().map(|(_, v)| *v).collect::<Vec<_>>())
        );
        let _ = writeln!(
            md,
            "```mermaid\nxychart-beta\n  title \"{name}: success ratio per second\"\n  x-axis \"seconds\" [{}]\n  y-axis \"success\" 0 --> 1\n  line [{}]\n```\n",
            series
                .iter()
                .map(|(b, _)| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            series
                .iter()
                .map(|(_, v)| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (name, samples) in &ev.probes {
        let samples: Vec<&crate::probe::Sample> = samples.iter().collect();
        for (f, back) in crate::report_html::recoveries(&ev.faults, &samples) {
            let end = if crate::model::is_instant_kind(&f.kind) {
                f.started
            } else {
                f.ended
            };
            let _ = writeln!(
                md,
                "- {name} recovered {:.1}s after the {} of {} ended (at {back:+.1}s)",
                back - end,
                f.kind,
                f.target
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## Faults\n\n| step | fault | from | to | kernel-anchored | revert |\n|---|---|---|---|---|---|"
    );
    for f in &ev.faults {
        let _ = writeln!(
            md,
            "| {} | {} | {:+.1}s | {:+.1}s | {} | {}{} |",
            f.step,
            f.description,
            f.started,
            f.ended,
            if f.kernel_anchored { "yes" } else { "no" },
            f.revert
                .as_deref()
                .unwrap_or(if crate::model::is_instant_kind(&f.kind) {
                    "(nothing to revert)"
                } else {
                    &f.applied
                }),
            f.packets
                .map(|p| format!(", {p} packets dropped"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(md, "\n## Crashes\n");
    if ev.crashes.is_empty() {
        let _ = writeln!(md, "None found.\n");
    }
    // Grouped by kind, message and top frame, across targets.
    let zero = crate::report_html::zero(outcome);
    let mut groups: Vec<Vec<&crate::verdict::Crash>> = Vec::new();
    for c in &ev.crashes {
        match groups.iter_mut().find(|g| {
            g[0].kind == c.kind && g[0].message == c.message && g[0].top_frame == c.top_frame
        }) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    for g in groups {
        let c = g[0];
        let mut targets: Vec<&str> = g.iter().map(|c| c.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let times: Vec<f64> = g
            .iter()
            .filter_map(|c| crate::report_html::crash_t(c, zero))
            .collect();
        let when = match (
            times.iter().copied().reduce(f64::min),
            times.iter().copied().reduce(f64::max),
        ) {
            (Some(a), Some(b)) if g.len() > 1 => format!("first at {a:+.1}s, last at {b:+.1}s; "),
            (Some(a), _) => format!("at {a:+.1}s; "),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "### {} × {} in {}: {}\n\n{when}{}, first in `{}`. Top frame of own code: **{}**\n\n```",
            g.len(),
            c.kind,
            targets.join(", "),
            c.message,
            c.kind,
            c.file,
            c.top_frame
        );
        for frame in c.stack.iter().take(16) {
            let _ = writeln!(md, "{frame}");
        }
        let _ = writeln!(md, "```\n");
    }
    if !ev.races.is_empty() {
        let _ = writeln!(md, "## Data races\n");
        for r in &ev.races {
            let _ = writeln!(
                md,
                "### {} in {}\n\n{}, in `{}`. Top frame of own code: **{}**\n\n```",
                r.kind, r.target, r.message, r.file, r.top_frame
            );
            for frame in r.stack.iter().take(16) {
                let _ = writeln!(md, "{frame}");
            }
            let _ = writeln!(md, "```\n");
        }
    }
    let _ = writeln!(md, "## Task groups\n");
    if ev.leaks.is_empty() {
        let _ = writeln!(md, "No dumps were captured.\n");
    } else {
        let _ = writeln!(
            md,
            "| dump | verdict | group (own frame) | first → last | slope/min | p | trend | evidence |\n|---|---|---|---|---|---|---|---|"
        );
        for g in ev.leaks.iter().take(20) {
            let max = g.series.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} → {} | {:+.1} | {:.1e} | `{}` | {} |",
                g.dump,
                if g.verdict == "leaking" {
                    "**leaking**"
                } else {
                    crate::html::shown_verdict(&g.verdict, g.first, g.last)
                },
                g.frame,
                g.first,
                g.last,
                g.slope_per_min,
                g.p_value,
                sparkline(
                    &g.series
                        .iter()
                        .map(|(_, c)| *c as f64 / max)
                        .collect::<Vec<_>>()
                ),
                leak_evidence(g).replace('|', "\\|")
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Timeline\n\n```");
    for e in &outcome.events {
        let _ = writeln!(md, "{:+8.1}s  {:<7} {}", e.t, e.kind, e.message);
    }
    let _ = writeln!(md, "```");
    if !outcome.notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in &outcome.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// What beside the count speaks for or against a leak: the runtime's proof, who stays, a
/// restart, and why the verdict is not the count's alone.
pub(crate) fn leak_evidence(g: &crate::verdict::LeakGroup) -> String {
    let mut parts = Vec::new();
    if g.proven_leaked > 0 {
        parts.push(format!("{} proven leaked by the runtime", g.proven_leaked));
    }
    if let Some(turnover) = g.turnover {
        parts.push(format!("{:.0}% turnover", turnover * 100.0));
    }
    if let Some(oldest) = g.oldest_seen_seconds {
        parts.push(format!("oldest seen {oldest:.1}s"));
    }
    if let Some(at) = g.before_restart {
        parts.push(format!("before the restart at {at:.1}s"));
    }
    if let Some(why) = &g.why {
        parts.push(why.clone());
    }
    parts.join("; ")
}

/// The HTML report: one self-contained page an incident review can be held on
/// (`crate::report_html`).
pub fn html(scenario: &Scenario, plan: &Plan, outcome: &RunOutcome) -> String {
    crate::report_html::page(scenario, plan, outcome, &verdict_line(outcome))
}
