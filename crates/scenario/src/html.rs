//! The parts HTML reports are made of, shared by the run's `report.html` and `faultline
//! analyze|leaks --format html`: one self-contained page (no network, no script: SVG `<title>`s
//! say what a point is when hovered), light and dark after the system, printable (long tables
//! scroll inside their box on screen and unfold on paper). Pure: values in, HTML out.

use std::fmt::Write as _;

use faultline_dump::{Change, Dump, Frame, Group, GroupChange, Level};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "\
:root{--fg:#1d1d1f;--bg:#fff;--muted:#666;--line:#ddd;--box:#f6f6f6;--ok:#1a7f37;--bad:#c62828;\
--fault:#fde2e1;--fault-edge:#e57373;--lat:#1565c0;--lat99:#8e24aa;--warn:#b26a00;--own:#0b5cad}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#141414;--muted:#9a9a9a;--line:#333;\
--box:#1f1f1f;--ok:#4caf50;--bad:#ef5350;--fault:#4a2220;--fault-edge:#c0504d;--lat:#64b5f6;\
--lat99:#ce93d8;--warn:#ffb74d;--own:#82b1ff}}\
body{font:14px/1.45 system-ui,sans-serif;max-width:78em;margin:2em auto;padding:0 1em;color:var(--fg);background:var(--bg)}\
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid var(--line);padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid var(--line);padding:.25em .5em;text-align:left;vertical-align:top}\
th{position:sticky;top:0;background:var(--bg)}\
.pass{color:var(--ok)}.fail{color:var(--bad)}.warn{color:var(--warn)}.muted{color:var(--muted)}\
pre,.stack{background:var(--box);padding:.5em .7em;overflow:auto;border-radius:4px;font:12.5px/1.4 ui-monospace,monospace}\
.scroll{max-height:30em;overflow:auto;border:1px solid var(--line);border-radius:4px}\
.own{color:var(--own);font-weight:600}.stack a{color:inherit}.frame{white-space:pre}\
svg text{fill:var(--fg);font:11px system-ui,sans-serif}svg .axis{stroke:var(--line)}\
svg .ok{fill:var(--ok)}svg .bad{fill:var(--bad)}svg .span{fill:var(--fault);stroke:var(--fault-edge)}\
svg .p50{stroke:var(--lat);fill:none}svg .p99{stroke:var(--lat99);fill:none}\
svg .crash-mark line{stroke:var(--bad);stroke-width:2}svg .restart-mark line{stroke:var(--warn);stroke-dasharray:3 2}\
svg .recovery{fill:var(--ok)}svg .count{fill:var(--lat)}svg .fit{stroke:var(--bad);stroke-width:1.5}\
svg .projection{stroke:var(--bad);stroke-dasharray:4 3}\
.flame{max-height:36em;overflow:auto}.flame img{max-width:100%;border:1px solid var(--line);background:#fff}\
details>summary{cursor:pointer;color:var(--muted)}\
@media print{body{max-width:none;margin:0}.scroll,.flame{max-height:none;overflow:visible;border:0}\
pre,.stack{overflow:visible;white-space:pre-wrap}h2{break-after:avoid}section,svg,tr{break-inside:avoid}}";

/// A whole page: `title`, then `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content='width=device-width,initial-scale=1'>\
         <meta name=color-scheme content='light dark'>\
         <title>{}</title><style>{STYLE}</style><body>{body}</body></html>\n",
        escape(title)
    )
}

/// `text` in a box that scrolls on screen and unfolds when printed.
pub fn scroll(text: &str) -> String {
    format!("<div class=scroll>{text}</div>")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A flame graph (inferno) of `dump`'s stacks, root at the bottom, widths by task count.
/// `None` when the dump has no frames to draw.
pub fn flame_graph(title: &str, dump: &Dump) -> Result<Option<String>, String> {
    // Identical stacks fold into one line: `root;caller;…;leaf COUNT`.
    let groups = faultline_dump::group(dump, Level::Exact, None);
    let lines: Vec<String> = groups
        .iter()
        .filter(|g| !g.frames.is_empty())
        .map(|g| {
            let stack: Vec<String> = g
                .frames
                .iter()
                .rev()
                .map(|f| f.function.replace(';', ":"))
                .collect();
            let state = g
                .state
                .as_deref()
                .map(|s| format!(";[{}]", s.replace(';', ":")))
                .unwrap_or_default();
            format!("{}{state} {}", stack.join(";"), g.count)
        })
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "tasks".into();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| e.to_string())?;
    String::from_utf8(svg).map(Some).map_err(|e| e.to_string())
}

/// A flame graph embedded as an image (its own script stays inert; the page stays one file).
pub fn flame_image(svg: &str, alt: &str) -> String {
    format!(
        "<div class=flame><img alt='{}' src='data:image/svg+xml;base64,{}'></div>",
        escape(alt),
        base64(svg.as_bytes())
    )
}

/// `file:line`, linked to the file where the report is read.
fn location(file: Option<&str>, line: Option<u32>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!(
            "<a href='file://{}'>{}:{line}</a>",
            escape(file),
            escape(file)
        ),
        (Some(file), None) => format!("<a href='file://{}'>{}</a>", escape(file), escape(file)),
        _ => "<span class=muted>no file:line</span>".into(),
    }
}

/// One frame: its function (your own code marked) and its linked place.
pub fn frame_line(
    function: &str,
    file: Option<&str>,
    line: Option<u32>,
    own: bool,
    inlined: bool,
) -> String {
    format!(
        "<div class='frame{}'>{}{}{}\n    {}</div>",
        if own { " own" } else { "" },
        if own { "▶ " } else { "  " },
        escape(function),
        if inlined {
            " <span class=muted>(inlined)</span>"
        } else {
            ""
        },
        location(file, line)
    )
}

/// A dump's stack, innermost first, the first frame of your own code marked.
pub fn stack(frames: &[Frame], own_frame: Option<usize>, creator: Option<&Frame>) -> String {
    let mut s = String::from("<div class=stack>");
    if frames.is_empty() {
        s.push_str("<span class=muted>(no frames recorded)</span>");
    }
    for (i, f) in frames.iter().enumerate() {
        s.push_str(&frame_line(
            &f.function,
            f.file.as_deref(),
            f.line,
            own_frame == Some(i),
            f.inlined,
        ));
    }
    if let Some(c) = creator {
        let _ = write!(
            s,
            "<div class='frame muted'>created by {} at {}</div>",
            escape(&c.function),
            location(c.file.as_deref(), c.line)
        );
    }
    s.push_str("</div>");
    s
}

/// A dump's groups, largest first, each with its stack.
pub fn groups(groups: &[Group]) -> String {
    let mut s = String::new();
    for g in groups {
        let state = g.state.as_deref().unwrap_or("");
        let _ = write!(
            s,
            "<section class=group data-count={}><h3>{} × <span class=muted>{}</span>{}</h3>{}</section>",
            g.count,
            g.count,
            escape(state),
            if g.proven_leaked > 0 {
                format!(" <span class=fail>{} proven leaked</span>", g.proven_leaked)
            } else {
                String::new()
            },
            stack(&g.frames, g.own_frame, g.creator.as_ref())
        );
    }
    s
}

/// What changed between two dumps, group by group, largest change first.
pub fn diff_table(changes: &[GroupChange]) -> String {
    let mut s = String::from(
        "<table class=diff><tr><th>change<th>before<th>after<th>Δ<th>group (first frame of your code)",
    );
    let mut unchanged = 0;
    for c in changes {
        if c.change == Change::Unchanged {
            unchanged += 1;
            continue;
        }
        let name = match c.change {
            Change::Appeared => "appeared",
            Change::Grew => "grew",
            Change::Shrank => "shrank",
            Change::Vanished => "vanished",
            Change::Unchanged => "unchanged",
        };
        let frame = c
            .group
            .own_frame
            .and_then(|i| c.group.frames.get(i))
            .or(c.group.frames.first())
            .map_or_else(|| "(no frames)".to_owned(), |f| f.function.to_string());
        let _ = write!(
            s,
            "<tr class='change {name}'><td>{name}<td>{}<td>{}<td>{:+}<td>{} <span class=muted>{}</span>",
            c.before,
            c.after,
            c.delta(),
            escape(&frame),
            escape(c.group.state.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(s, "</table><p class=muted>{unchanged} groups unchanged</p>");
    s
}

/// One group's count over time, its Theil–Sen line and the line's projection `ahead` seconds
/// past the last sample, with the p-value and slope beside it.
#[derive(Debug)]
pub struct LeakChart<'a> {
    /// What the group is (`main.audit at main.go:25`).
    pub label: &'a str,
    /// `leaking`, `growing`…
    pub verdict: &'a str,
    /// `(seconds, count)`.
    pub series: &'a [(f64, u64)],
    /// Theil–Sen slope, tasks per minute.
    pub slope_per_min: f64,
    /// Mann-Kendall p-value.
    pub p_value: f64,
    /// How far past the last sample the projection is drawn, seconds.
    pub ahead: f64,
    /// What the projection says in words (`13,276 in 1 h`).
    pub projected: String,
    /// Evidence beside the count.
    pub evidence: String,
}

impl LeakChart<'_> {
    /// The chart, an SVG with a caption.
    pub fn svg(&self) -> String {
        let (w, h, left, bottom) = (560.0, 170.0, 44.0, 22.0);
        let t0 = self.series.first().map_or(0.0, |p| p.0);
        let t_last = self.series.last().map_or(0.0, |p| p.0);
        let t1 = (t_last + self.ahead).max(t0 + 1.0);
        // The verdict's line: the group's Theil–Sen slope with Theil–Sen's intercept, as
        // faultline-leak computes it (scipy's: median(count) − slope · median(t)).
        let slope = self.slope_per_min / 60.0;
        let mut ts: Vec<f64> = self.series.iter().map(|p| p.0).collect();
        let mut counts: Vec<f64> = self.series.iter().map(|p| p.1 as f64).collect();
        let intercept = faultline_leak::stats::median(&mut counts).unwrap_or(0.0)
            - slope * faultline_leak::stats::median(&mut ts).unwrap_or(0.0);
        let at = |t: f64| (intercept + slope * t).max(0.0);
        let max = self
            .series
            .iter()
            .map(|p| p.1 as f64)
            .fold(at(t1), f64::max)
            .max(1.0);
        let x = |t: f64| left + (t - t0) / (t1 - t0) * (w - left - 8.0);
        let y = |c: f64| h - bottom - c / max * (h - bottom - 10.0);
        let mut s = format!(
            "<figure class=leak><svg class=leak-chart data-group='{}' data-verdict='{}' width={w} height={h} viewBox='0 0 {w} {h}'>",
            escape(self.label),
            escape(self.verdict)
        );
        let (base, right) = (h - bottom, w - 40.0);
        let _ = write!(
            s,
            "<line class=axis x1={left} y1=8 x2={left} y2={base} /><line class=axis x1={left} y1={base} x2={w} y2={base} />\
             <text x=2 y=14>{max:.0}</text><text x=2 y={base}>0</text>\
             <text x={left} y={h}>{t0:.0}s</text><text x={right} y={h}>{t1:.0}s</text>"
        );
        let _ = write!(
            s,
            "<line class=fit x1={:.1} y1={:.1} x2={:.1} y2={:.1}><title>Theil–Sen line: {:+.1} tasks/min</title></line>",
            x(t0),
            y(at(t0)),
            x(t_last),
            y(at(t_last)),
            self.slope_per_min
        );
        if self.ahead > 0.0 {
            let _ = write!(
                s,
                "<line class=projection x1={:.1} y1={:.1} x2={:.1} y2={:.1}><title>projected: {}</title></line>",
                x(t_last),
                y(at(t_last)),
                x(t1),
                y(at(t1)),
                escape(&self.projected)
            );
        }
        for &(t, c) in self.series {
            let _ = write!(
                s,
                "<circle class='count leak-point' cx={:.1} cy={:.1} r=2.5><title>{c} tasks at {t:.1}s</title></circle>",
                x(t),
                y(c as f64)
            );
        }
        s.push_str("</svg>");
        let _ = write!(
            s,
            "<figcaption><b class={}>{}</b> {} — {:+.1} tasks/min, p = {:.2e}, projected {}{}</figcaption></figure>",
            if self.verdict == "leaking" {
                "fail"
            } else {
                "warn"
            },
            escape(&self.verdict.to_uppercase()),
            escape(self.label),
            self.slope_per_min,
            self.p_value,
            escape(&self.projected),
            if self.evidence.is_empty() {
                String::new()
            } else {
                format!("<br><span class=muted>{}</span>", escape(&self.evidence))
            }
        );
        s
    }
}

/// A group whose count fell to nothing is not `stable`: it is gone.
pub fn shown_verdict(verdict: &str, first: u64, last: u64) -> &str {
    if last == 0 && first > 0 && verdict == "stable" {
        "gone"
    } else {
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_the_rfc_has_it() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn a_leak_chart_draws_its_points_line_and_projection() {
        let series: Vec<(f64, u64)> = (0..10u32)
            .map(|i| (f64::from(i), u64::from(i) * 3))
            .collect();
        let svg = LeakChart {
            label: "main.audit at main.go:25",
            verdict: "leaking",
            series: &series,
            slope_per_min: 180.0,
            p_value: 1e-6,
            ahead: 9.0,
            projected: "10,827 in 1 h".into(),
            evidence: String::new(),
        }
        .svg();
        assert_eq!(svg.matches("class='count leak-point'").count(), 10);
        assert!(svg.contains("class=fit") && svg.contains("class=projection"));
        assert!(svg.contains("data-group='main.audit at main.go:25'"));
        assert_eq!(shown_verdict("stable", 5, 0), "gone");
        assert_eq!(shown_verdict("stable", 5, 5), "stable");
    }
}
