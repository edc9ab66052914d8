//! `report.html`: the page an incident review is held on. One time axis for everything — the
//! faults as labelled spans, each probe's results and latency (p50 and p99 per second) under
//! them, crashes and restarts as marks, recoveries measured from each span's end — then the
//! assertions, the crashes grouped (identical ones once, with how many, when and where), the
//! leak trends drawn, and each dump capture's last dump as a flame graph with what changed
//! since its first. Built from the run's outcome alone, with the parts of `crate::html`.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::html::{self, LeakChart, escape};
use crate::model::Scenario;
use crate::plan::Plan;
use crate::probe::Sample;
use crate::runner::{RunOutcome, Verdict};
use crate::verdict::{Crash, FaultRecord};

/// The page.
pub fn page(scenario: &Scenario, plan: &Plan, outcome: &RunOutcome, verdict: &str) -> String {
    let ev = &outcome.evidence;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>faultline run: {}</h1>{}<p class={}><b>{}</b> (exit code {}), seed {}, started {}</p>",
        escape(&scenario.name),
        scenario
            .description
            .as_deref()
            .map(|d| format!("<p>{}</p>", escape(d)))
            .unwrap_or_default(),
        if outcome.verdict == Verdict::Passed {
            "pass"
        } else {
            "fail"
        },
        escape(verdict),
        outcome.verdict.exit_code(),
        plan.seed,
        humantime::format_rfc3339_seconds(outcome.started_at)
    );

    b.push_str("<h2>Assertions</h2><table class=assertions><tr><th><th>assertion<th>evidence");
    for j in &outcome.judged {
        let _ = write!(
            b,
            "<tr><td class={}>{}<td>{}<td>{}",
            if j.passed { "pass" } else { "fail" },
            match (j.passed, outcome.not_judged(j)) {
                (true, _) => "✔",
                (false, true) => "– not judged",
                (false, false) => "✘",
            },
            escape(&j.title),
            escape(&j.evidence)
        );
    }
    b.push_str("</table>");

    b.push_str("<h2>Timeline</h2>");
    b.push_str(&timeline(outcome));

    b.push_str("<h2>Crashes</h2>");
    b.push_str(&crash_groups(&ev.crashes, zero(outcome)));
    if !ev.races.is_empty() {
        b.push_str("<h2>Data races</h2>");
        b.push_str(&crash_groups(&ev.races, zero(outcome)));
    }

    b.push_str("<h2>Task groups</h2>");
    b.push_str(&leaks(outcome));

    for capture in &ev.captures {
        let _ = write!(b, "<h2>Dump capture {}</h2>", escape(&capture.name));
        if let Some((file, last)) = &capture.last {
            let title = format!("{}: the last dump ({file})", capture.name);
            match html::flame_graph(&title, last) {
                Ok(Some(svg)) => b.push_str(&html::flame_image(&svg, &title)),
                Ok(None) => b.push_str("<p class=muted>The last dump has no frames to draw.</p>"),
                Err(e) => {
                    let _ = write!(b, "<p class=muted>No flame graph: {}</p>", escape(&e));
                }
            }
        }
        if let (Some((first_file, first)), Some((last_file, last))) =
            (&capture.first, &capture.last)
        {
            let level = faultline_dump::Level::Functions;
            let changes = faultline_dump::diff(
                &faultline_dump::group(first, level, None),
                &faultline_dump::group(last, level, None),
            );
            let _ = write!(
                b,
                "<h3>From the first dump to the last</h3><p class=muted>{} → {}: {} → {} tasks</p>",
                escape(first_file),
                escape(last_file),
                first.task_count(),
                last.task_count()
            );
            b.push_str(&html::scroll(&html::diff_table(&changes)));
        }
    }

    b.push_str("<h2>Faults</h2>");
    let mut faults =
        String::from("<table><tr><th>step<th>fault<th>from<th>to<th>kernel-anchored<th>revert");
    for f in &ev.faults {
        let _ = write!(
            faults,
            "<tr><td>{}<td>{}<td>{:+.1}s<td>{:+.1}s<td>{}<td>{}",
            escape(&f.step),
            escape(&f.description),
            f.started,
            f.ended,
            if f.kernel_anchored { "yes" } else { "no" },
            escape(f.revert.as_deref().unwrap_or(&f.applied))
        );
    }
    faults.push_str("</table>");
    b.push_str(&html::scroll(&faults));

    b.push_str("<h2>Journal</h2>");
    let mut journal = String::from("<pre>");
    for e in &outcome.events {
        let _ = writeln!(
            journal,
            "{:+8.1}s  {:<7} {}",
            e.t,
            e.kind,
            escape(&e.message)
        );
    }
    journal.push_str("</pre>");
    b.push_str(&html::scroll(&journal));
    if !outcome.notes.is_empty() {
        b.push_str("<h2>Notes</h2><ul>");
        for n in &outcome.notes {
            let _ = write!(b, "<li>{}", escape(n));
        }
        b.push_str("</ul>");
    }
    html::page(&format!("faultline run: {}", scenario.name), &b)
}

/// The wall-clock time of `t = 0` (the start of the steps), from the journal's events.
pub(crate) fn zero(outcome: &RunOutcome) -> Option<SystemTime> {
    outcome.events.iter().find_map(|e| {
        let at = humantime::parse_rfc3339_weak(&e.at).ok()?;
        let t = std::time::Duration::try_from_secs_f64(e.t.abs()).ok()?;
        if e.t >= 0.0 {
            at.checked_sub(t)
        } else {
            at.checked_add(t)
        }
    })
}

/// A crash's time on the run's axis, when the evidence has one.
pub(crate) fn crash_t(crash: &Crash, zero: Option<SystemTime>) -> Option<f64> {
    let at = humantime::parse_rfc3339_weak(crash.time.as_deref()?).ok()?;
    let zero = zero?;
    Some(match at.duration_since(zero) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    })
}

/// The p50 and p99 of each second's latencies.
fn latency_per_second(samples: &[&Sample]) -> Vec<(f64, f64, f64)> {
    let mut by_second: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for s in samples {
        by_second
            .entry(s.t.floor() as i64)
            .or_default()
            .push(s.latency_ms);
    }
    by_second
        .into_iter()
        .map(|(second, mut l)| {
            l.sort_by(f64::total_cmp);
            let q = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
            (second as f64 + 0.5, q(0.5), q(0.99))
        })
        .collect()
}

/// When each probe came back after each fault: the first passing sample after the span's end
/// that follows the probe's last failure before the next fault began.
pub(crate) fn recoveries<'a>(
    faults: &'a [FaultRecord],
    probe: &[&Sample],
) -> Vec<(&'a FaultRecord, f64)> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        if crate::model::is_instant_kind(&f.kind) && f.kind != "kill" && f.kind != "pod-kill" {
            continue;
        }
        let end = if crate::model::is_instant_kind(&f.kind) {
            f.started
        } else {
            f.ended
        };
        let next = faults
            .get(i + 1)
            .map_or(f64::INFINITY, |n| n.started.max(end));
        let Some(last_failure) = probe
            .iter()
            .filter(|s| !s.ok && s.t >= f.started && s.t < next)
            .map(|s| s.t)
            .reduce(f64::max)
        else {
            continue;
        };
        if let Some(back) = probe.iter().find(|s| s.ok && s.t > last_failure.max(end)) {
            out.push((f, back.t));
        }
    }
    out
}

/// The time axis: faults, probes, marks.
fn timeline(outcome: &RunOutcome) -> String {
    let ev = &outcome.evidence;
    let zero = zero(outcome);
    let samples: Vec<(&str, Vec<&Sample>)> = ev
        .probes
        .iter()
        .map(|(name, s)| (name.as_str(), s.iter().collect()))
        .collect();
    let t_min = samples
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.t))
        .chain(ev.faults.iter().map(|f| f.started))
        .fold(0.0f64, f64::min);
    let t_max = samples
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.t))
        .chain(ev.faults.iter().map(|f| f.ended))
        .fold(ev.end.max(1.0), f64::max);
    let (left, width) = (120.0, 860.0);
    let x = |t: f64| left + (t - t_min) / (t_max - t_min).max(1e-9) * (width - left - 10.0);
    let lane = 20.0;
    let probe_h = 74.0;
    let faults_h = lane * ev.faults.len().max(1) as f64 + 8.0;
    let height = 24.0 + faults_h + probe_h * samples.len() as f64 + 20.0;
    let mut s = format!(
        "<svg class=timeline width={width} height={height:.0} viewBox='0 0 {width} {height:.0}' \
         data-t-min='{t_min:.3}' data-t-max='{t_max:.3}'>"
    );
    // Seconds along the top.
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|step| (t_max - t_min) / step <= 16.0)
        .unwrap_or(1200.0);
    let mut t = (t_min / step).ceil() * step;
    while t <= t_max {
        let _ = write!(
            s,
            "<line class=axis x1={0:.1} y1=14 x2={0:.1} y2={height:.0} /><text x={0:.1} y=11 text-anchor=middle>{t:.0}s</text>",
            x(t)
        );
        t += step;
    }
    // The faults, each on its lane, labelled.
    for (i, f) in ev.faults.iter().enumerate() {
        let y = 20.0 + lane * i as f64;
        let instant = crate::model::is_instant_kind(&f.kind);
        let (x0, x1) = (x(f.started), x(if instant { f.started } else { f.ended }));
        let seconds = f.ended - f.started;
        let label = if instant {
            format!("{} {}", f.kind, f.target)
        } else {
            format!("{} {} {:.1}s", f.kind, f.target, seconds)
        };
        let _ = write!(
            s,
            "<g class=fault-span data-kind='{}' data-target='{}'><rect class=span x={x0:.1} y={y:.1} width={:.1} height={:.1} rx=2 />\
             <text x={:.1} y={:.1}>{}</text><title>step {}: {} (from {:+.1}s to {:+.1}s; {})</title></g>",
            escape(&f.kind),
            escape(&f.target),
            (x1 - x0).max(3.0),
            lane - 4.0,
            x0 + 4.0,
            y + lane - 8.0,
            escape(&label),
            escape(&f.step),
            escape(&f.description),
            f.started,
            f.ended,
            escape(f.revert.as_deref().unwrap_or(&f.applied))
        );
    }
    let _ = write!(s, "<text x=4 y=34>faults</text>");
    // Each probe: its results, its latency, its recoveries.
    for (k, (name, probe)) in samples.iter().enumerate() {
        let top = 24.0 + faults_h + probe_h * k as f64;
        let (ok_y, bad_y) = (top + 10.0, top + 22.0);
        let _ = write!(
            s,
            "<line class=axis x1={left} y1={top:.1} x2={width} y2={top:.1} />\
             <text x=4 y={:.1}>{}</text><text x=4 y={:.1} class=muted>ok / failed</text>",
            top + 14.0,
            escape(name),
            top + 28.0
        );
        for p in probe {
            let (cy, class, what) = if p.ok {
                (ok_y, "ok", "ok".to_owned())
            } else {
                (
                    bad_y,
                    "bad",
                    format!("failed: {}", p.error.as_deref().unwrap_or("?")),
                )
            };
            let _ = write!(
                s,
                "<circle class='probe-point {class}' data-probe='{}' cx={:.1} cy={cy:.1} r=2.2><title>{} at {:.2}s: {}, {:.1} ms</title></circle>",
                escape(name),
                x(p.t),
                escape(name),
                p.t,
                escape(&what),
                p.latency_ms
            );
        }
        let latency = latency_per_second(probe);
        let max = latency.iter().map(|l| l.2).fold(1.0, f64::max);
        let (lat_top, lat_h) = (top + 30.0, probe_h - 36.0);
        let ly = |ms: f64| lat_top + lat_h - ms / max * lat_h;
        for (class, pick) in [("p50", 1usize), ("p99", 2)] {
            let points: Vec<String> = latency
                .iter()
                .map(|l| {
                    let v = if pick == 1 { l.1 } else { l.2 };
                    format!("{:.1},{:.1}", x(l.0), ly(v))
                })
                .collect();
            let _ = write!(
                s,
                "<polyline class='{class} latency' data-probe='{}' points='{}'><title>{} {class} latency per second, at most {max:.0} ms</title></polyline>",
                escape(name),
                points.join(" "),
                escape(name)
            );
        }
        let _ = write!(
            s,
            "<text x=4 y={:.1} class=muted>latency p50/p99 (max {max:.0} ms)</text>",
            lat_top + 14.0
        );
        for (f, back) in recoveries(&ev.faults, probe) {
            let end = if crate::model::is_instant_kind(&f.kind) {
                f.started
            } else {
                f.ended
            };
            let cx = x(back);
            let _ = write!(
                s,
                "<path class=recovery d='M{:.1},{:.1} l5,8 l-10,0 z'><title>{} recovered {:.1}s after the {} of {} ended</title></path>",
                cx,
                top + 1.0,
                escape(name),
                back - end,
                escape(&f.kind),
                escape(&f.target)
            );
        }
    }
    // Crashes and restarts, across everything.
    for c in ev.crashes.iter().chain(&ev.races) {
        let Some(t) = crash_t(c, zero) else { continue };
        let _ = write!(
            s,
            "<g class=crash-mark><line x1={0:.1} y1=14 x2={0:.1} y2={height:.0} /><title>{1} {2} at {t:.2}s: {3} ({4})</title></g>",
            x(t),
            escape(&c.target),
            escape(&c.kind),
            escape(&c.message),
            escape(&c.top_frame)
        );
    }
    for e in outcome
        .events
        .iter()
        .filter(|e| e.kind == "host" && e.t >= t_min && e.t <= t_max)
    {
        let _ = write!(
            s,
            "<g class=restart-mark><line x1={0:.1} y1=14 x2={0:.1} y2={height:.0} /><title>{1} at {2:.2}s</title></g>",
            x(e.t),
            escape(&e.message),
            e.t
        );
    }
    s.push_str("</svg>");
    format!(
        "{s}<p class=muted>Hover a point, a span or a mark for what it is. Red lines: crashes; \
         dashed: a host exiting or starting; green triangles: a probe passing again after a \
         fault.</p>"
    )
}

/// Identical crashes once: how many, the first and the last time, the targets, and the stack
/// with the panic machinery and start-up folded.
fn crash_groups(crashes: &[Crash], zero: Option<SystemTime>) -> String {
    if crashes.is_empty() {
        return "<p>None found.</p>".into();
    }
    let mut groups: Vec<Vec<&Crash>> = Vec::new();
    for c in crashes {
        match groups.iter_mut().find(|g| {
            g[0].kind == c.kind && g[0].message == c.message && g[0].top_frame == c.top_frame
        }) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    let mut s = String::new();
    for g in groups {
        let first = &g[0];
        let mut targets: Vec<&str> = g.iter().map(|c| c.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let times: Vec<f64> = g.iter().filter_map(|c| crash_t(c, zero)).collect();
        let when = match (
            times.iter().copied().reduce(f64::min),
            times.iter().copied().reduce(f64::max),
        ) {
            (Some(a), Some(b)) if g.len() > 1 => format!("first at {a:+.1}s, last at {b:+.1}s"),
            (Some(a), _) => format!("at {a:+.1}s"),
            _ => "time not recorded".into(),
        };
        let _ = write!(
            s,
            "<section class=crash-group data-count={}><h3><span class=count>{}×</span> {} in {}: {}</h3>\
             <p>{when}; top frame of your code: <b>{}</b>; first in <code>{}</code></p><div class=stack>",
            g.len(),
            g.len(),
            escape(&first.kind),
            escape(&targets.join(", ")),
            escape(&first.message),
            escape(&first.top_frame),
            escape(&first.file)
        );
        // Folded: what std's short backtrace hides, and the panic's own entry frames above
        // your code (`rust_begin_unwind`, `core::panicking::panic_fmt`), which std still shows.
        let own_at = first.frames.iter().position(|f| f.own);
        let folded: Vec<bool> = first
            .frames
            .iter()
            .enumerate()
            .map(|(i, f)| f.hidden || (own_at.is_some_and(|o| i < o) && panic_entry(&f.text)))
            .collect();
        let mut marked = false;
        let mut i = 0;
        while i < first.frames.len() {
            if folded[i] {
                let run_end = folded[i..]
                    .iter()
                    .position(|folded| !folded)
                    .map_or(first.frames.len(), |n| i + n);
                let _ = write!(
                    s,
                    "<details><summary>{} frames of the panic machinery or start-up</summary>",
                    run_end - i
                );
                for f in &first.frames[i..run_end] {
                    s.push_str(&html::frame_line(
                        &function_of(&f.text),
                        f.file.as_deref(),
                        f.line,
                        false,
                        f.inlined,
                    ));
                }
                s.push_str("</details>");
                i = run_end;
                continue;
            }
            let f = &first.frames[i];
            let own = f.own && !marked;
            marked |= own;
            let mut line = html::frame_line(
                &function_of(&f.text),
                f.file.as_deref(),
                f.line,
                own,
                f.inlined,
            );
            if own {
                line = line.replacen(
                    "</div>",
                    " <span class=own>← first frame of your code</span></div>",
                    1,
                );
            }
            s.push_str(&line);
            i += 1;
        }
        if first.frames.is_empty() {
            for text in &first.stack {
                let _ = write!(s, "<div class=frame>{}</div>", escape(text));
            }
        }
        s.push_str("</div></section>");
    }
    s
}

/// The function of a frame's text (`f at file:line`).
fn function_of(text: &str) -> String {
    text.split(" at /").next().unwrap_or(text).to_owned()
}

/// The leaking and growing groups drawn; the others folded under one line.
fn leaks(outcome: &RunOutcome) -> String {
    let ev = &outcome.evidence;
    if ev.leaks.is_empty() {
        return "<p>No dumps were captured.</p>".into();
    }
    let mut s = String::new();
    let mut rest = Vec::new();
    for g in &ev.leaks {
        if g.verdict != "leaking" && g.verdict != "growing" {
            rest.push(g);
            continue;
        }
        let span = match (g.series.first(), g.series.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0.0,
        };
        let label = format!("{}: {}", g.dump, g.frame);
        s.push_str(
            &LeakChart {
                label: &label,
                verdict: &g.verdict,
                series: &g.series,
                slope_per_min: g.slope_per_min,
                p_value: g.p_value,
                ahead: span,
                projected: format!("{} tasks in 1 h", g.projected_1h),
                evidence: crate::report::leak_evidence(g),
            }
            .svg(),
        );
    }
    if !rest.is_empty() {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for g in &rest {
            let v = html::shown_verdict(&g.verdict, g.first, g.last);
            match counts.iter_mut().find(|(k, _)| *k == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v, 1)),
            }
        }
        let summary = counts
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            s,
            "<details class=other-groups><summary>{} other groups: {summary}</summary>",
            rest.len()
        );
        let mut table = String::from(
            "<table><tr><th>dump<th>verdict<th>group<th>first → last<th>slope/min<th>evidence",
        );
        for g in rest {
            let _ = write!(
                table,
                "<tr><td>{}<td>{}<td>{}<td>{} → {}<td>{:+.1}<td>{}",
                escape(&g.dump),
                escape(html::shown_verdict(&g.verdict, g.first, g.last)),
                escape(&g.frame),
                g.first,
                g.last,
                g.slope_per_min,
                escape(&crate::report::leak_evidence(g))
            );
        }
        table.push_str("</table>");
        s.push_str(&html::scroll(&table));
        s.push_str("</details>");
    }
    s
}

/// A frame of the panic's entry into the unwinder, above the code that panicked.
fn panic_entry(text: &str) -> bool {
    let function = function_of(text);
    [
        "__rustc::",
        "rust_begin_unwind",
        "core::panicking::",
        "std::panicking::",
    ]
    .iter()
    .any(|p| function.starts_with(p))
}
