//! `faultline leaks`: which task groups keep growing, from saved dumps or a live endpoint.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use faultline_dump::Dump;
use faultline_leak::{Config, GroupTrend, Report, Tracker, Trend, Verdict};

use crate::dumps::{frame_json, load, runtime_name, write_frames};
use crate::exit::{self, Failure};
use crate::input::{self, fetch_with_timeout};
use crate::output::write_stdout;
use crate::{LeaksArgs, LeaksFormat};

/// Sparkline columns at most.
const SPARK_WIDTH: usize = 40;

pub fn run(args: LeaksArgs) -> Result<(), Failure> {
    let config = Config {
        level: args.level,
        main_module: args.main_module.clone(),
        min_samples: args.min_samples,
        alpha: args.alpha,
        min_growth: args.min_growth,
        min_slope_per_min: args.min_slope,
        min_persisting: args.min_persisting,
        ..Config::default()
    };
    let mut tracker = Tracker::new(config);
    let mut runtime = None;
    let span = match &args.scrape {
        // A pod's endpoint: through a port-forward held for the whole scrape.
        Some(url) if url.starts_with("pod://") => {
            let forwarded = crate::kube::pod_endpoint(&url["pod://".len()..])?;
            eprintln!("faultline leaks: {url} forwarded to {}", forwarded.url);
            scrape(&forwarded.url, &args, &mut tracker, &mut runtime)?
        }
        Some(url) => scrape(url, &args, &mut tracker, &mut runtime)?,
        None => from_files(&args, &mut tracker, &mut runtime)?,
    };
    let report = tracker.report(args.horizon.as_secs_f64());
    let text = match args.format {
        LeaksFormat::Human => human(&report, &args, span, runtime),
        LeaksFormat::Json => {
            let mut s = serde_json::to_string_pretty(&json(&report, &args, span, runtime))
                .map_err(Failure::failed)?;
            s.push('\n');
            s
        }
        LeaksFormat::Html => html(&report, &args, span, runtime),
    };
    write_stdout(&text)?;
    if report
        .groups
        .iter()
        .any(|g| g.trend.verdict == Verdict::Leaking)
    {
        return Err(Failure::quiet(exit::LEAKING));
    }
    Ok(())
}

/// One dump with its time in seconds since the Unix epoch (or since the first, with
/// `--interval`).
struct Sample {
    label: String,
    time: f64,
    dump: Dump,
}

/// Reads every file, finds its time, and pushes them in time order. Returns the seconds
/// between the first and the last.
fn from_files(
    args: &LeaksArgs,
    tracker: &mut Tracker,
    runtime: &mut Option<faultline_dump::Runtime>,
) -> Result<f64, Failure> {
    if args.inputs.len() < 2 {
        return Err(Failure::usage(
            "give at least two dumps (taken some time apart), or --scrape URL",
        ));
    }
    let mut samples = Vec::with_capacity(args.inputs.len());
    for (i, path) in args.inputs.iter().enumerate() {
        let bytes = input::read(path)?;
        let fields = args.log.fields();
        let kind = input::detect(path, &bytes, &fields);
        let dump = load(path, &bytes, kind, &args.lookup, &fields)?.principal();
        if dump.tasks.is_empty() && dump.crash.is_none() {
            return Err(Failure::usage(format!(
                "{}: not a task dump this faultline reads",
                path.display()
            )));
        }
        let time = match args.interval {
            Some(interval) => interval.as_secs_f64() * i as f64,
            None => dump_time(path, &dump)?,
        };
        samples.push(Sample {
            label: path.display().to_string(),
            time,
            dump,
        });
    }
    if args.interval.is_none() {
        samples.sort_by(|a, b| a.time.total_cmp(&b.time));
        for pair in samples.windows(2) {
            if pair[0].time == pair[1].time {
                return Err(Failure::usage(format!(
                    "{} and {} were taken at the same time (by their capture time or \
                     modification time); give --interval to space them",
                    pair[0].label, pair[1].label
                )));
            }
        }
    }
    let first = samples.first().map_or(0.0, |s| s.time);
    for sample in &samples {
        runtime.get_or_insert(sample.dump.runtime);
        tracker
            .push_with_alive(sample.time - first, &sample.dump, sample.dump.alive_tasks)
            .map_err(|e| Failure::usage(format!("{}: {e}", sample.label)))?;
    }
    Ok(samples.last().map_or(0.0, |s| s.time) - first)
}

/// The dump's own capture time if it has one, else the file's modification time.
fn dump_time(path: &Path, dump: &Dump) -> Result<f64, Failure> {
    if let Some(at) = &dump.captured_at
        && let Ok(time) = humantime::parse_rfc3339_weak(at)
    {
        return Ok(unix_seconds(time));
    }
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| {
            Failure::usage(format!(
                "{}: the dump has no capture time and its modification time is unknown ({e}); \
                 give --interval",
                path.display()
            ))
        })?;
    Ok(unix_seconds(modified))
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Samples `url` every `--every` for `--for`, pushing each dump as it comes. Returns the
/// seconds sampled.
fn scrape(
    url: &str,
    args: &LeaksArgs,
    tracker: &mut Tracker,
    runtime: &mut Option<faultline_dump::Runtime>,
) -> Result<f64, Failure> {
    let every = args.every;
    let total = args.duration;
    if every.is_zero() {
        return Err(Failure::usage("--every must be more than 0"));
    }
    let samples = (total.as_secs_f64() / every.as_secs_f64()).floor() as u64 + 1;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::failed(anyhow::anyhow!("--save {}: {e}", dir.display())))?;
    }
    let progress = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut failures = 0u64;
    let mut last_error = None;
    let mut taken = 0u64;
    let mut last_time = 0.0;
    for k in 0..samples {
        let due = start + every.mul_f64(k as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let time = start.elapsed().as_secs_f64();
        // A fetch may take at most the interval (and never less than 5 s), so a slow endpoint
        // delays the schedule by little.
        let timeout = every.max(Duration::from_secs(5));
        let label = format!("{url} (sample {})", k + 1);
        let sample = fetch_with_timeout(url, timeout).and_then(|bytes| {
            let label = Path::new(&label);
            let fields = args.log.fields();
            let kind = input::detect(label, &bytes, &fields);
            let loaded = load(label, &bytes, kind, &args.lookup, &fields)?;
            Ok((bytes, loaded.principal()))
        });
        let (bytes, dump) = match sample {
            Ok(sample) => sample,
            Err(failure) => {
                // A service under chaos may refuse a scrape now and then: note it, go on.
                failures += 1;
                let message = failure.message();
                eprintln!("faultline: sample {} skipped: {message}", k + 1);
                last_error = Some(failure);
                continue;
            }
        };
        if let Some(dir) = &args.save {
            save(dir, taken + 1, &bytes)?;
        }
        runtime.get_or_insert(dump.runtime);
        tracker
            .push_with_alive(time, &dump, dump.alive_tasks)
            .map_err(|e| Failure::failed(anyhow::anyhow!("{label}: {e}")))?;
        taken += 1;
        last_time = time;
        let leaking = if args.until_verdict || progress {
            let report = tracker.report(args.horizon.as_secs_f64());
            count(&report, Verdict::Leaking)
        } else {
            0
        };
        if progress {
            let report = tracker.report(args.horizon.as_secs_f64());
            eprint!(
                "\r\x1b[K[{}/{samples}] {} tasks in {} groups, {leaking} leaking, {} growing",
                k + 1,
                dump.task_count(),
                report.groups.len(),
                count(&report, Verdict::Growing)
            );
            let _ = std::io::stderr().flush();
        }
        if args.until_verdict && leaking > 0 {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    if taken == 0 {
        return Err(last_error.unwrap_or_else(|| Failure::failed(anyhow::anyhow!("no sample"))));
    }
    if failures > 0 {
        eprintln!(
            "faultline: {failures} of {} samples failed",
            failures + taken
        );
    }
    Ok(last_time)
}

/// Writes a scraped dump as `sample-0001.txt` (`.json` for a task-dump record, `.pb.gz` for
/// pprof's protobuf), so `faultline leaks DIR/*` or `analyze` can read it later.
fn save(dir: &Path, n: u64, bytes: &[u8]) -> Result<(), Failure> {
    let extension = if bytes.starts_with(&[0x1f, 0x8b]) {
        "pb.gz"
    } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        "json"
    } else {
        "txt"
    };
    let path: PathBuf = dir.join(format!("sample-{n:04}.{extension}"));
    std::fs::write(&path, bytes)
        .map_err(|e| Failure::failed(anyhow::anyhow!("{}: {e}", path.display())))
}

fn count(report: &Report, verdict: Verdict) -> usize {
    report
        .groups
        .iter()
        .filter(|g| g.trend.verdict == verdict)
        .count()
}

/// `▁▂▃▅▇` of a series, squeezed to [`SPARK_WIDTH`] columns (each the maximum of its
/// samples, so a peak is never averaged away).
fn sparkline(series: &[(f64, u64)]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if series.is_empty() {
        return String::new();
    }
    let columns = series.len().min(SPARK_WIDTH);
    let values: Vec<u64> = (0..columns)
        .map(|c| {
            let from = c * series.len() / columns;
            let to = ((c + 1) * series.len() / columns).max(from + 1);
            series[from..to].iter().map(|&(_, n)| n).max().unwrap_or(0)
        })
        .collect();
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if high == low {
                BARS[0]
            } else {
                BARS[((v - low) * 7 / (high - low)) as usize]
            }
        })
        .collect()
}

fn trend_line(trend: &Trend, horizon: Duration) -> String {
    format!(
        "{:+.1} tasks/min, p={:.2e}, {} → {} over {} samples, {} in {}",
        trend.slope_per_min,
        trend.p_value,
        trend.count_first,
        trend.count_last,
        trend.samples,
        trend.projected,
        humantime::format_duration(horizon)
    )
}

fn human(
    report: &Report,
    args: &LeaksArgs,
    span: f64,
    runtime: Option<faultline_dump::Runtime>,
) -> String {
    let mut s = String::new();
    let runtime = runtime.map_or("", runtime_name);
    let _ = writeln!(
        s,
        "{} {runtime} dumps over {}, grouped by {}",
        report.pushed,
        humantime::format_duration(Duration::from_secs(span.max(0.0).round() as u64)),
        level_name(args.level)
    );
    let _ = writeln!(
        s,
        "total: {} ({})  {}",
        report.total.verdict.name(),
        trend_line(&report.total, args.horizon),
        sparkline(&report.total.series)
    );
    if let Some(alive) = &report.alive {
        let _ = writeln!(
            s,
            "alive tasks (runtime's count): {} ({})",
            alive.verdict.name(),
            trend_line(alive, args.horizon)
        );
    }
    for restart in &report.restarts {
        let _ = writeln!(
            s,
            "restart at {:.1}s: {}; the series before it are judged on their own",
            restart.time_seconds, restart.why
        );
    }
    let flagged: Vec<&GroupTrend> = report
        .groups
        .iter()
        .filter(|g| matches!(g.trend.verdict, Verdict::Leaking | Verdict::Growing))
        .collect();
    for group in &flagged {
        let verdict = group.trend.verdict.name().to_uppercase();
        let _ = writeln!(
            s,
            "\n{verdict:>8}  {}",
            trend_line(&group.trend, args.horizon)
        );
        let _ = writeln!(s, "          {}", sparkline(&group.trend.series));
        let mut facts = Vec::new();
        if let Some(state) = &group.state {
            facts.push(if group.mixed_states {
                format!("{state} (mixed)")
            } else {
                state.clone()
            });
        }
        if let Some(wait) = group.evidence.waits.last()
            && wait.max_seconds > 0
        {
            facts.push(format!(
                "waiting {}–{} min",
                wait.min_seconds / 60,
                wait.max_seconds / 60
            ));
        }
        if group.evidence.oldest_aging == Some(true) {
            facts.push("oldest keep aging".into());
        }
        if group.evidence.proven_leaked > 0 {
            facts.push(format!(
                "{} proven leaked by the runtime",
                group.evidence.proven_leaked
            ));
        }
        if let Some(turnover) = group.evidence.turnover {
            facts.push(format!(
                "{:.0}% survive from sample to sample",
                (1.0 - turnover) * 100.0
            ));
        }
        if let Some(oldest) = group.evidence.oldest_seen_seconds {
            facts.push(format!(
                "oldest seen {}",
                humantime::format_duration(Duration::from_secs(oldest.max(0.0).round() as u64))
            ));
        }
        if let Some(at) = group.before_restart {
            facts.push(format!("before the restart at {at:.1}s"));
        }
        facts.push(format!(
            "{:.0}% of the tasks",
            group.evidence.share_of_dump * 100.0
        ));
        if group.signature.is_none() {
            facts.push("every signature past the group limit".into());
        }
        let _ = writeln!(s, "          {}", facts.join(", "));
        if let Some(why) = &group.evidence.why {
            let _ = writeln!(s, "          {why}");
        }
        write_frames(
            &mut s,
            &group.frames,
            group.own_frame,
            group.creator.as_ref(),
            "          ",
        );
    }
    let _ = writeln!(
        s,
        "\n{} leaking, {} growing, {} stable, {} draining",
        count(report, Verdict::Leaking),
        count(report, Verdict::Growing),
        count(report, Verdict::Stable),
        count(report, Verdict::Draining)
    );
    s
}

/// One page: the totals, each leaking and growing group drawn with its trend line and its
/// projection to the horizon, the others folded under one line.
fn html(
    report: &Report,
    args: &LeaksArgs,
    span: f64,
    runtime: Option<faultline_dump::Runtime>,
) -> String {
    use faultline_scenario::html::{self as h, LeakChart, escape};
    let horizon = humantime::format_duration(args.horizon).to_string();
    let mut b = format!(
        "<h1>faultline leaks</h1><p>{} {} dumps over {}, grouped by {}. Total: <b>{}</b> ({}).</p>",
        report.pushed,
        runtime.map_or("", runtime_name),
        humantime::format_duration(Duration::from_secs(span.max(0.0).round() as u64)),
        escape(&level_name(args.level)),
        report.total.verdict.name(),
        escape(&trend_line(&report.total, args.horizon))
    );
    for restart in &report.restarts {
        let _ = write!(
            b,
            "<p class=warn>Restart at {:.1}s: {}; the series before it are judged on their own.</p>",
            restart.time_seconds,
            escape(&restart.why)
        );
    }
    let label = |g: &GroupTrend| {
        g.own_frame
            .and_then(|i| g.frames.get(i))
            .or(g.frames.first())
            .map_or_else(
                || "(every signature past the group limit)".to_owned(),
                |f| format!("{} at {}", f.function, crate::dumps::location(f)),
            )
    };
    let (flagged, rest): (Vec<&GroupTrend>, Vec<&GroupTrend>) = report
        .groups
        .iter()
        .partition(|g| matches!(g.trend.verdict, Verdict::Leaking | Verdict::Growing));
    for g in &flagged {
        let mut evidence = Vec::new();
        if g.evidence.proven_leaked > 0 {
            evidence.push(format!(
                "{} proven leaked by the runtime",
                g.evidence.proven_leaked
            ));
        }
        if let Some(t) = g.evidence.turnover {
            evidence.push(format!(
                "{:.0}% survive from sample to sample",
                (1.0 - t) * 100.0
            ));
        }
        if let Some(why) = &g.evidence.why {
            evidence.push(why.clone());
        }
        let span = match (g.trend.series.first(), g.trend.series.last()) {
            (Some(a), Some(z)) => z.0 - a.0,
            _ => 0.0,
        };
        b.push_str(
            &LeakChart {
                label: &label(g),
                verdict: g.trend.verdict.name(),
                series: &g.trend.series,
                slope_per_min: g.trend.slope_per_min,
                p_value: g.trend.p_value,
                ahead: span.min(args.horizon.as_secs_f64()),
                projected: format!("{} tasks in {horizon}", g.trend.projected),
                evidence: evidence.join("; "),
            }
            .svg(),
        );
        let mut stack = String::new();
        write_frames(&mut stack, &g.frames, g.own_frame, g.creator.as_ref(), "");
        let _ = write!(
            b,
            "<details><summary>stack</summary><pre>{}</pre></details>",
            escape(&stack)
        );
    }
    if !rest.is_empty() {
        let _ = write!(
            b,
            "<details class=other-groups><summary>{} other groups (stable, draining or gone)</summary>",
            rest.len()
        );
        let mut table =
            String::from("<table><tr><th>verdict<th>group<th>first → last<th>slope/min");
        for g in rest {
            let t = &g.trend;
            let _ = write!(
                table,
                "<tr><td>{}<td>{}<td>{} → {}<td>{:+.1}",
                h::shown_verdict(t.verdict.name(), t.count_first, t.count_last),
                escape(&label(g)),
                t.count_first,
                t.count_last,
                t.slope_per_min
            );
        }
        table.push_str("</table>");
        b.push_str(&h::scroll(&table));
        b.push_str("</details>");
    }
    h::page("faultline leaks", &b)
}

fn level_name(level: faultline_dump::Level) -> String {
    match level {
        faultline_dump::Level::Exact => "exact stacks".into(),
        faultline_dump::Level::Functions => "functions".into(),
        faultline_dump::Level::OwnTop(n) => format!("the top {n} frames of your code"),
    }
}

fn trend_json(trend: &Trend) -> serde_json::Value {
    serde_json::json!({
        "verdict": trend.verdict.name(),
        "slope_per_min": finite(trend.slope_per_min),
        "p_value": finite(trend.p_value),
        "z": finite(trend.z),
        "tau": finite(trend.tau),
        "count_first": trend.count_first,
        "count_last": trend.count_last,
        "count_min": trend.count_min,
        "count_max": trend.count_max,
        "samples": trend.samples,
        "projected": trend.projected,
        "series": trend.series.iter().map(|&(t, n)| serde_json::json!([t, n])).collect::<Vec<_>>(),
    })
}

/// JSON has no NaN or infinity: such values are written as null.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn json(
    report: &Report,
    args: &LeaksArgs,
    span: f64,
    runtime: Option<faultline_dump::Runtime>,
) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = report
        .groups
        .iter()
        .map(|g| {
            let mut value = trend_json(&g.trend);
            let Some(object) = value.as_object_mut() else {
                return value;
            };
            object.insert("state".into(), g.state.clone().into());
            object.insert("mixed_states".into(), g.mixed_states.into());
            object.insert("own_frame".into(), g.own_frame.into());
            object.insert("other".into(), g.signature.is_none().into());
            object.insert(
                "frames".into(),
                g.frames.iter().map(frame_json).collect::<Vec<_>>().into(),
            );
            object.insert("creator".into(), g.creator.as_ref().map(frame_json).into());
            object.insert(
                "evidence".into(),
                serde_json::json!({
                    "oldest_aging": g.evidence.oldest_aging,
                    "blocked_share": g.evidence.blocked_share,
                    "share_of_dump": finite(g.evidence.share_of_dump),
                    "wait_seconds": g.evidence.waits.last().map(|w| serde_json::json!({
                        "min": w.min_seconds, "max": w.max_seconds,
                    })),
                    "why": g.evidence.why,
                }),
            );
            object.insert("proven_leaked".into(), g.evidence.proven_leaked.into());
            object.insert("survivors".into(), g.evidence.survivors.into());
            object.insert(
                "turnover".into(),
                g.evidence.turnover.and_then(finite).into(),
            );
            object.insert(
                "oldest_seen_seconds".into(),
                g.evidence.oldest_seen_seconds.and_then(finite).into(),
            );
            object.insert("persisting".into(), g.evidence.persisting.into());
            object.insert("before_restart".into(), g.before_restart.into());
            value
        })
        .collect();
    serde_json::json!({
        "runtime": runtime.map(runtime_name),
        "samples": report.pushed,
        "seconds": span,
        "level": level_name(args.level),
        "horizon_seconds": args.horizon.as_secs_f64(),
        "total": trend_json(&report.total),
        "alive": report.alive.as_ref().map(trend_json),
        "blocked_share": report.blocked_share,
        "overflow_signatures": report.overflow_signatures,
        "restarts": report.restarts.iter().map(|r| serde_json::json!({
            "time_seconds": r.time_seconds, "why": r.why,
        })).collect::<Vec<_>>(),
        "groups": groups,
    })
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn sparklines_scale_to_the_range_and_keep_peaks() {
        let series: Vec<(f64, u64)> = (0..8u32).map(|i| (f64::from(i), u64::from(i))).collect();
        assert_eq!(sparkline(&series), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[(0.0, 5), (1.0, 5)]), "▁▁");
        let long: Vec<(f64, u64)> = (0..400)
            .map(|i| (f64::from(i), u64::from(i == 123)))
            .collect();
        let line = sparkline(&long);
        assert_eq!(line.chars().count(), 40);
        assert_eq!(line.chars().filter(|&c| c == '█').count(), 1);
    }
}
