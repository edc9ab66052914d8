//! Drawing: one function per view, from the state alone. Only the rows that fit are built,
//! so a frame costs the same with ten targets or ten thousand.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize as _};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::app::{App, Confirm, Detail, Tab};
use crate::model::{FrameLine, TargetRow, sparkline};

const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
const DIM: Style = Style::new().fg(Color::DarkGray);
const HEADER: Style = Style::new().add_modifier(Modifier::BOLD);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [top, main, message, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    tabs(frame, top, app);
    match app.detail {
        Some(Detail::Crash(i)) => crash_detail(frame, main, app, i),
        Some(Detail::Tasks(i)) => task_detail(frame, main, app, i),
        None => match app.tab {
            Tab::Targets => targets(frame, main, app),
            Tab::Faults => faults(frame, main, app),
            Tab::Crashes => crashes(frame, main, app),
            Tab::Tasks => tasks(frame, main, app),
        },
    }
    if let Some((text, _)) = &app.message {
        frame.render_widget(Paragraph::new(text.as_str()).fg(Color::Yellow), message);
    } else if app.filtering || !app.filter.is_empty() {
        let cursor = if app.filtering { "█" } else { "" };
        frame.render_widget(Paragraph::new(format!("/{}{cursor}", app.filter)), message);
    }
    status_line(frame, status, app);
    if let Some(form) = &app.form {
        form_box(frame, main, form);
    }
    if let Some(confirm) = app.confirm {
        confirm_box(frame, main, app, confirm);
    }
    if app.help {
        help_box(frame, main);
    }
}

fn tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let counts = [
        app.visible_targets().len(),
        app.active_faults().count(),
        app.crashes.len(),
        app.tasks.iter().filter(|t| t.verdict == "leaking").count(),
    ];
    let mut spans = vec![Span::styled(" faultline ", HEADER.fg(Color::Cyan))];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let label = match (tab, counts[i]) {
            (Tab::Tasks, 0) => format!(" {} {} ", i + 1, tab.title()),
            (Tab::Tasks, n) => format!(" {} {} ({n} leaking) ", i + 1, tab.title()),
            (_, n) => format!(" {} {} ({n}) ", i + 1, tab.title()),
        };
        let style = if *tab == app.tab {
            SELECTED.add_modifier(Modifier::BOLD)
        } else if matches!(tab, Tab::Tasks | Tab::Crashes) && counts[i] > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        spans.push(Span::styled(label, style));
    }
    spans.push(Span::styled(format!(" {}", app.title), DIM));
    frame.render_widget(Line::from(spans), area);
}

fn status_line(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = Vec::new();
    for (index, agent) in app.agents.iter().enumerate() {
        if agent.connected {
            spans.push(Span::styled("● ", Style::new().fg(Color::Green)));
            spans.push(Span::raw(agent.name.clone()));
        } else if let Some(why) = &agent.error {
            spans.push(Span::styled("○ ", Style::new().fg(Color::Red)));
            spans.push(Span::styled(
                format!("{} lost: {why} (retrying)", agent.name),
                Style::new().fg(Color::Red),
            ));
        } else {
            spans.push(Span::styled("○ ", DIM));
            spans.push(Span::raw(format!("{} connecting…", agent.name)));
        }
        let ours = app
            .faults
            .iter()
            .filter(|f| f.agent == index && f.active() && f.ours)
            .count();
        match (&agent.lease_error, ours) {
            (Some(e), _) => spans.push(Span::styled(
                format!(" · lease renewal failing: {e}"),
                Style::new().fg(Color::Red),
            )),
            (None, 0) => {}
            (None, n) => spans.push(Span::raw(format!(" · lease held for {n}"))),
        }
        spans.push(Span::raw("  "));
    }
    spans.push(Span::styled("? help  q quit", DIM));
    frame.render_widget(Line::from(spans), area);
}

/// The first row to show so that `selected` is visible in `height` rows.
fn window(selected: usize, len: usize, height: usize) -> std::ops::Range<usize> {
    let height = height.max(1);
    let start = if selected < height {
        0
    } else {
        selected + 1 - height
    };
    start..(start + height).min(len)
}

fn table<'a>(
    frame: &mut Frame<'_>,
    area: Rect,
    title: String,
    header: &[&'a str],
    widths: &[Constraint],
    rows: Vec<Row<'a>>,
    selected: Option<usize>,
) {
    let rows: Vec<Row<'a>> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if Some(i) == selected {
                r.style(SELECTED)
            } else {
                r
            }
        })
        .collect();
    let widget = Table::new(rows, widths.to_vec())
        .header(Row::new(header.iter().map(|h| Cell::from(*h))).style(HEADER))
        .block(Block::new().borders(Borders::TOP).title(title))
        .column_spacing(1);
    frame.render_widget(widget, area);
}

/// The faults in force on target `t`.
fn active_on<'a>(app: &'a App, t: &TargetRow) -> Vec<&'a str> {
    app.faults
        .iter()
        .filter(|f| f.active() && f.agent == t.agent)
        .filter(|f| match &t.pod {
            Some(pod) => f.view.pod.as_deref() == Some(pod.uid.as_str()),
            None => f.view.pid == t.pid,
        })
        .map(|f| f.view.kind.as_str())
        .collect()
}

/// The targets that pass the filter and fit in `area`, each drawn by `row` from the target and
/// its name (marked with the faults in force on it, and then in magenta); the selected row's
/// place among them; and how many pass the filter.
fn target_rows<'a>(
    app: &'a App,
    area: Rect,
    row: impl Fn(&'a TargetRow, String) -> Row<'a>,
) -> (Vec<Row<'a>>, Option<usize>, usize) {
    let visible = app.visible_targets();
    let height = usize::from(area.height.saturating_sub(2));
    let selected = app.target_selected.min(visible.len().saturating_sub(1));
    let range = window(selected, visible.len(), height);
    let rows = visible[range.clone()]
        .iter()
        .map(|&i| {
            let t = &app.targets[i];
            let active = active_on(app, t);
            if active.is_empty() {
                row(t, t.name.clone())
            } else {
                row(t, format!("{} [{}]", t.name, active.join(",")))
                    .style(Style::new().fg(Color::Magenta))
            }
        })
        .collect();
    (rows, selected.checked_sub(range.start), visible.len())
}

/// `--kube`: the pods, as k9s lists them.
fn pods(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let (rows, selected, visible) = target_rows(app, area, |t, name| {
        let pod = t.pod.clone().unwrap_or_default();
        let style = if pod.ready {
            Style::new()
        } else {
            Style::new().fg(Color::Yellow)
        };
        Row::new(vec![
            Cell::from(name),
            Cell::from(if pod.ready { "1" } else { "0" }),
            Cell::from(pod.phase),
            Cell::from(pod.restarts.to_string()),
            Cell::from(t.address.clone().unwrap_or_default()),
            Cell::from(pod.node),
            Cell::from(app.agents.get(t.agent).map_or("none", |a| {
                if a.error.is_some() {
                    "lost"
                } else if a.connected {
                    "ok"
                } else {
                    "…"
                }
            })),
        ])
        .style(style)
    });
    let title = if app.targets.is_empty() {
        " no pods yet ".to_owned()
    } else {
        format!(
            " {visible} of {} pods · k kill  p pause  n partition  l loss  s stress  x delete  / filter ",
            app.targets.len()
        )
    };
    table(
        frame,
        area,
        title,
        &[
            "NAMESPACE/NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "IP",
            "NODE",
            "AGENT",
        ],
        &[
            Constraint::Min(24),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(15),
            Constraint::Length(16),
            Constraint::Length(8),
        ],
        rows,
        selected,
    );
}

fn targets(frame: &mut Frame<'_>, area: Rect, app: &App) {
    if app.kube {
        return pods(frame, area, app);
    }
    let trend_width = usize::from(area.width.saturating_sub(60)).clamp(8, 30);
    let (rows, selected, visible) = target_rows(app, area, |t, name| {
        Row::new(vec![
            Cell::from(t.pid.to_string()),
            Cell::from(name),
            Cell::from(t.address.clone().unwrap_or_default()),
            Cell::from(t.state.map(String::from).unwrap_or_default()),
            Cell::from(
                t.cpu
                    .map(|c| format!("{:.0}%", c * 100.0))
                    .unwrap_or_default(),
            ),
            Cell::from(t.threads.map(|n| n.to_string()).unwrap_or_default()),
            Cell::from(t.tasks.map(|n| n.to_string()).unwrap_or_default()),
            Cell::from(sparkline(&t.history, trend_width)).fg(Color::Cyan),
        ])
    });
    let title = if app.targets.is_empty() {
        " no targets yet ".to_owned()
    } else {
        format!(
            " {visible} of {} targets · k kill  p pause  n partition  l loss  s stress  / filter ",
            app.targets.len()
        )
    };
    table(
        frame,
        area,
        title,
        &[
            "PID", "NAME", "ADDRESS", "ST", "CPU", "THR", "TASKS", "TREND",
        ],
        &[
            Constraint::Length(7),
            Constraint::Min(14),
            Constraint::Length(11),
            Constraint::Length(2),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(6),
            Constraint::Length(u16::try_from(trend_width).unwrap_or(8)),
        ],
        rows,
        selected,
    );
}

fn faults(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let area = if app.probes.is_empty() {
        area
    } else {
        let [probes, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
        let mut spans = vec![Span::styled("probes: ", HEADER)];
        for p in &app.probes {
            let (mark, style) = match p.ok {
                Some(true) => ("✓", Style::new().fg(Color::Green)),
                Some(false) => ("✗", Style::new().fg(Color::Red)),
                None => ("…", DIM),
            };
            spans.push(Span::styled(format!("{mark} {}", p.name), style));
            if let (Some(false), Some(e)) = (p.ok, &p.error) {
                spans.push(Span::styled(format!(" ({})", truncate(e, 40)), DIM));
            }
            spans.push(Span::raw("  "));
        }
        frame.render_widget(Line::from(spans), probes);
        rest
    };
    let wide = area.width >= 110;
    let height = usize::from(area.height.saturating_sub(2));
    let selected = app.fault_selected.min(app.faults.len().saturating_sub(1));
    let range = window(selected, app.faults.len(), height);
    let rows = app.faults[range.clone()]
        .iter()
        .map(|f| {
            let v = &f.view;
            let target = app.names.get(&(f.agent, v.pid)).map_or_else(
                || format!("pid {}", v.pid),
                |name| format!("{name} {}", v.pid),
            );
            let pod = v.pod.as_ref().and_then(|uid| {
                app.targets
                    .iter()
                    .find(|t| t.pod.as_ref().is_some_and(|p| &p.uid == uid))
                    .map(|t| format!("pod {}", t.name))
            });
            let target = match (pod, &v.cgroup) {
                (Some(pod), _) => pod,
                (None, Some(dir)) => format!("cgroup {}", dir.display()),
                (None, None) => target,
            };
            let left = f
                .seconds_left(app.now)
                .filter(|_| f.active())
                .map(|s| format!("{}s", s.ceil()))
                .unwrap_or_default();
            let state = if f.active() {
                "active".to_owned()
            } else {
                format!(
                    "{} · {}{}",
                    v.state,
                    v.revert.as_deref().unwrap_or("-"),
                    v.reverted_by
                        .as_deref()
                        .map(|b| format!(" ({b})"))
                        .unwrap_or_default()
                )
            };
            let style = if f.active() {
                Style::new()
            } else if v.revert.as_deref() == Some("verified") || v.state == "done" {
                DIM
            } else {
                Style::new().fg(Color::Red)
            };
            let counter = match (v.packets, v.throttled_periods) {
                (Some(p), _) => format!("{p} pkts"),
                (None, Some(t)) => format!("{t} thr"),
                (None, None) => String::new(),
            };
            let mut cells = vec![
                Cell::from(v.id.clone()),
                Cell::from(v.kind.clone()),
                Cell::from(target),
            ];
            if wide {
                cells.push(Cell::from(v.options.clone()));
            }
            cells.extend([
                Cell::from(left),
                Cell::from(counter),
                Cell::from(if v.kernel_anchored {
                    "kernel"
                } else {
                    "journal"
                }),
                Cell::from(state),
            ]);
            Row::new(cells).style(style)
        })
        .collect();
    let active = app.active_faults().count();
    let (header, widths): (&[&str], Vec<Constraint>) = if wide {
        (
            &[
                "ID", "KIND", "TARGET", "OPTIONS", "LEFT", "COUNTER", "LIFETIME", "STATE",
            ],
            vec![
                Constraint::Length(16),
                Constraint::Length(9),
                Constraint::Fill(2),
                Constraint::Fill(3),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Fill(2),
            ],
        )
    } else {
        (
            &[
                "ID", "KIND", "TARGET", "LEFT", "COUNTER", "LIFETIME", "STATE",
            ],
            vec![
                Constraint::Length(16),
                Constraint::Length(9),
                Constraint::Fill(1),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
    };
    table(
        frame,
        area,
        format!(" {active} active · r revert  R revert all "),
        header,
        &widths,
        rows,
        selected.checked_sub(range.start),
    );
}

fn crashes(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let height = usize::from(area.height.saturating_sub(2));
    let selected = app.crash_selected.min(app.crashes.len().saturating_sub(1));
    let range = window(selected, app.crashes.len(), height);
    let rows = app.crashes[range.clone()]
        .iter()
        .map(|c| {
            Row::new(vec![
                Cell::from(c.target.clone()),
                Cell::from(c.kind.clone()),
                Cell::from(c.message.clone()),
                Cell::from(short_frame(&c.top_frame)).fg(Color::Green),
            ])
        })
        .collect();
    table(
        frame,
        area,
        format!(
            " {} crashes, newest first · Enter: the stack ",
            app.crashes.len()
        ),
        &["TARGET", "KIND", "MESSAGE", "WHERE (own code)"],
        &[
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Fill(2),
            Constraint::Fill(3),
        ],
        rows,
        selected.checked_sub(range.start),
    );
}

fn tasks(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let height = usize::from(area.height.saturating_sub(2));
    let selected = app.task_selected.min(app.tasks.len().saturating_sub(1));
    let range = window(selected, app.tasks.len(), height);
    // On a narrow terminal the state gives way, so that where the tasks wait stays readable.
    let wide = area.width >= 100;
    let rows = app.tasks[range.clone()]
        .iter()
        .map(|g| {
            let verdict_style = match g.verdict.as_str() {
                "leaking" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                "growing" => Style::new().fg(Color::Yellow),
                _ => DIM,
            };
            let mut cells = vec![
                Cell::from(g.source.clone()),
                Cell::from(g.count.to_string()),
                Cell::from(sparkline(&g.history, 12)).fg(Color::Cyan),
                Cell::from(g.verdict.to_uppercase()).style(verdict_style),
                Cell::from(format!("{:+.0}/min", g.slope_per_min)),
                Cell::from(stays(g)),
                if g.proven_leaked > 0 {
                    Cell::from(g.proven_leaked.to_string())
                        .style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
                } else {
                    Cell::from("")
                },
            ];
            if wide {
                cells.push(Cell::from(g.state.clone()));
            }
            cells.push(Cell::from(short_frame(&g.top_frame)));
            Row::new(cells)
        })
        .collect();
    let total: u64 = app.tasks.iter().map(|g| g.count).sum();
    let mut headers = vec![
        "SOURCE", "COUNT", "TREND", "VERDICT", "SLOPE", "STAYS", "PROVEN",
    ];
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(6),
    ];
    if wide {
        headers.push("STATE");
        widths.push(Constraint::Length(14));
    }
    headers.push("WHERE");
    widths.push(Constraint::Fill(1));
    table(
        frame,
        area,
        format!(
            " {} groups, {total} tasks, largest first · Enter: the stack ",
            app.tasks.len()
        ),
        &headers,
        &widths,
        rows,
        selected.checked_sub(range.start),
    );
}

/// Who stays: the share of members still there from one dump to the next and the oldest
/// member's time in the group (`100% 5m`, `0% 0s`); `-` for formats without task ids.
fn stays(g: &crate::model::TaskGroupRow) -> String {
    match (g.stays, g.oldest_seen_seconds) {
        (Some(share), Some(oldest)) => format!("{:.0}% {}", share * 100.0, age(oldest)),
        (Some(share), None) => format!("{:.0}%", share * 100.0),
        (None, Some(oldest)) => age(oldest),
        (None, None) => "-".into(),
    }
}

fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn stack_lines(frames: &[FrameLine]) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for f in frames {
        let inlined = if f.inlined { " (inlined)" } else { "" };
        if f.own {
            lines.push(Line::from(vec![
                Span::styled("▶ ", Style::new().fg(Color::Green)),
                Span::styled(
                    f.text.clone(),
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                ),
                Span::styled(inlined, DIM),
            ]));
            if let Some(source) = &f.source {
                lines.push(Line::styled(format!("      │ {}", source.trim()), DIM));
            }
        } else {
            lines.push(Line::from(vec![
                Span::raw("  "),
                Span::raw(f.text.clone()),
                Span::styled(inlined, DIM),
            ]));
        }
    }
    lines
}

fn crash_detail(frame: &mut Frame<'_>, area: Rect, app: &App, i: usize) {
    let Some(c) = app.crashes.get(i) else { return };
    let mut lines = vec![
        Line::styled(
            c.message.clone(),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Line::styled(format!("{} · {} · {}", c.target, c.kind, c.file), DIM),
        Line::raw(""),
    ];
    lines.extend(stack_lines(&c.frames));
    if c.frames.is_empty() {
        lines.push(Line::raw(c.top_frame.clone()));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" crash · ▶ own code · Esc back "))
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        area,
    );
}

fn task_detail(frame: &mut Frame<'_>, area: Rect, app: &App, i: usize) {
    let Some(g) = app.tasks.get(i) else { return };
    let mut lines = vec![
        Line::styled(
            format!(
                "{} tasks · {} ({:+.1}/min, p={:.1e}) · {}",
                g.count, g.verdict, g.slope_per_min, g.p_value, g.state
            ),
            HEADER,
        ),
        Line::styled(format!("{}  {}", g.source, sparkline(&g.history, 60)), DIM),
    ];
    let mut evidence = Vec::new();
    if g.proven_leaked > 0 {
        evidence.push(format!("{} proven leaked by the runtime", g.proven_leaked));
    }
    if g.stays.is_some() || g.oldest_seen_seconds.is_some() {
        evidence.push(format!("who stays: {}", stays(g)));
    }
    if !evidence.is_empty() {
        lines.push(Line::raw(evidence.join(" · ")));
    }
    if let Some(why) = &g.why {
        lines.push(Line::raw(why.clone()));
    }
    lines.push(Line::raw(""));
    lines.extend(stack_lines(&g.frames));
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" task group · ▶ own code · Esc back "))
            .wrap(Wrap { trim: false })
            .scroll((app.detail_scroll, 0)),
        area,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn form_box(frame: &mut Frame<'_>, area: Rect, form: &crate::form::Form) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let value = if field.choices.is_empty() {
            format!("{}{}", field.value, if focused { "█" } else { "" })
        } else {
            format!("‹ {} ›", field.value)
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{}{:>10} ", if focused { "›" } else { " " }, field.label),
                if focused { HEADER } else { Style::new() },
            ),
            Span::styled(
                value,
                if focused {
                    Style::new().fg(Color::Cyan)
                } else {
                    Style::new()
                },
            ),
            Span::styled(format!("  {}", field.hint), DIM),
        ]));
        if let Some(error) = &field.error {
            lines.push(Line::styled(
                format!("            ✗ {error}"),
                Style::new().fg(Color::Red),
            ));
        }
    }
    lines.push(Line::raw(""));
    if let Some(refused) = &form.refused {
        lines.push(Line::styled(
            format!("✗ {refused}"),
            Style::new().fg(Color::Red),
        ));
    }
    lines.push(Line::styled(
        if form.sending {
            "sending to the agent…"
        } else {
            "Enter inject · Tab next field · ←/→ change a choice · Esc cancel"
        },
        DIM,
    ));
    let height = u16::try_from(lines.len()).unwrap_or(20) + 2;
    let rect = centered(area, 76, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(match &form.pod {
                Some(_) => format!(" {} {} (pod) ", form.kind.name(), form.target),
                None => format!(" {} {} (pid {}) ", form.kind.name(), form.target, form.pid),
            })),
        rect,
    );
}

fn confirm_box(frame: &mut Frame<'_>, area: Rect, app: &App, confirm: Confirm) {
    let (title, text) = match confirm {
        Confirm::RevertAll => (
            " revert all ",
            format!(
                "Revert all {} active faults? [y/N]",
                app.active_faults().count()
            ),
        ),
        Confirm::PodKill(agent, pid) => (
            " delete pod ",
            format!(
                "Delete pod {} through the API server (30s grace period) and wait for its \
                 replacement? [y/N]",
                app.targets
                    .iter()
                    .find(|t| t.agent == agent && t.pid == pid)
                    .map_or("?", |t| t.name.as_str())
            ),
        ),
        Confirm::Quit => (
            " quit ",
            format!(
                "{} faults from this screen are active. Revert them before quitting? [Y/n]\n\
                 (n leaves them to their lease, which ends them soon after; Esc stays)",
                app.faults.iter().filter(|f| f.active() && f.ours).count()
            ),
        ),
    };
    let rect = centered(area, 74, 5);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title).fg(Color::Yellow)),
        rect,
    );
}

/// Every key, as `?` shows them.
pub const KEYS: &[(&str, &str)] = &[
    ("1 2 3 4, Tab", "Targets, Faults, Crashes, Tasks"),
    ("↑ ↓ PgUp PgDn Home End", "move"),
    ("/", "filter targets (Enter keeps it, Esc clears it)"),
    (
        "k p n l s",
        "on a target: kill, pause, partition, loss, stress",
    ),
    (
        "x",
        "on a pod (--kube): delete it, and wait for its replacement",
    ),
    ("r", "on a fault: revert it"),
    ("R", "revert every active fault (asks first)"),
    (
        "Enter",
        "on a crash or task group: its stack; Esc goes back",
    ),
    ("?", "this help"),
    ("q, Ctrl-C", "quit (asks to revert this screen's faults)"),
];

fn help_box(frame: &mut Frame<'_>, area: Rect) {
    let lines: Vec<Line<'_>> = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>22}  "), HEADER),
                Span::raw(*what),
            ])
        })
        .collect();
    let rect = centered(area, 76, u16::try_from(KEYS.len()).unwrap_or(10) + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys · any key closes ")),
        rect,
    );
}

/// `function at /long/path/file.rs:12` as `function at file.rs:12`, for a list's column.
fn short_frame(text: &str) -> String {
    match text.rsplit_once(" at ") {
        Some((function, place)) => {
            let file = place.rsplit('/').next().unwrap_or(place);
            format!("{function} at {file}")
        }
        None => text.to_owned(),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
