//! `faultline run SCENARIO`: the chaos gate. Exit codes (docs/cli.md): 0 passed, 1 an
//! assertion failed, 2 invalid scenario or usage, 3 a revert could not be verified, 4
//! infrastructure error.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use faultline_scenario::runner::{RunOptions, Verdict};
use faultline_scenario::{LoadError, Plan, load_file, report};

use crate::RunArgs;
use crate::exit::Failure;

pub fn run(args: RunArgs) -> Result<(), Failure> {
    // Before any thread starts: Ctrl-C, SIGTERM and SIGHUP are taken synchronously, so an
    // interrupted run still reverts and reports.
    let interrupts = faultline_fault::Interrupts::block();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    // A Chaos Mesh experiment, brought as it is, becomes a scenario of pods.
    let chaos_mesh = std::fs::read_to_string(&args.scenario)
        .ok()
        .filter(|text| faultline_kube::chaos_mesh::is_chaos_mesh(text));
    let scenario = match chaos_mesh {
        Some(text) => crate::kube::chaos_mesh_scenario(
            &text,
            &args.scenario,
            seed,
            args.allow_protected_namespace,
        )?,
        None => match load_file(&args.scenario) {
            Ok(s) => s,
            Err(LoadError::Invalid(invalid)) => {
                render_problems(&invalid);
                return Err(Failure::quiet(crate::exit::BAD_INPUT));
            }
            Err(e) => return Err(Failure::usage(e)),
        },
    };
    if !scenario.pods.is_empty() && args.agent.is_some() {
        return Err(Failure::usage(
            "--agent: a scenario of pods uses the agent on each pod's node (found through the \
             API server); leave --agent out",
        ));
    }
    let plan = Plan::new(&scenario, seed)
        .map_err(|e| Failure::usage(format!("{}: {e}", args.scenario.display())))?;
    if args.dry_run {
        // `| head` closing the pipe early is not an error.
        use std::io::Write as _;
        return match write!(std::io::stdout(), "{plan}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(e)),
            _ => Ok(()),
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::failed(anyhow::anyhow!("find the faultline binary: {e}")))?;
    let tls = crate::agent::TlsFiles {
        ca: args.ca.as_ref(),
        identity: args.cert.as_ref().zip(args.key.as_ref()),
    };
    let agent = match &args.agent {
        Some(addr) => Some((
            addr.parse::<faultline_agent::AgentAddr>()
                .map_err(|e| Failure::usage(format!("--agent {addr}: {e}")))?,
            crate::agent::credentials(
                args.token_file.as_ref(),
                tls.ca,
                tls.identity,
                faultline_agent::tls::AGENT_NAME,
            )?,
        )),
        None => None,
    };
    let cluster: Option<std::sync::Arc<dyn faultline_scenario::cluster::Cluster>> =
        if scenario.pods.is_empty() {
            None
        } else {
            let unreachable = Verdict::InfrastructureError.exit_code() as u8;
            match crate::kube::connect(
                &scenario.kubernetes,
                args.context.clone(),
                args.token_file.as_ref(),
                &tls,
                unreachable,
            ) {
                Ok(cluster) => Some(std::sync::Arc::new(cluster)),
                // No cluster to talk to: the run says so in its reports (exit 4).
                Err(failure) if failure.code() == unreachable => Some(std::sync::Arc::new(
                    faultline_scenario::cluster::Unreachable(failure.message()),
                )),
                Err(failure) => return Err(failure),
            }
        };
    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => fresh_run_dir(&scenario.name)?,
    };
    eprintln!("{plan}");
    eprintln!("faultline run: everything goes to {}", out_dir.display());
    let options = RunOptions {
        out_dir: out_dir.clone(),
        helpers: faultline_agent::Helpers { exe },
        state_dir: args.state_dir.clone(),
        agent,
        progress: true,
    };
    let outcome =
        faultline_scenario::runner::run_on(&scenario, &plan, &options, &interrupts, cluster);

    let write = |path: &Path, text: &str| -> Result<(), Failure> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::failed(anyhow::anyhow!("{}: {e}", parent.display())))?;
        }
        std::fs::write(path, text)
            .map_err(|e| Failure::failed(anyhow::anyhow!("{}: {e}", path.display())))
    };
    let junit = report::junit(&scenario, &outcome);
    let json = serde_json::to_string_pretty(&report::journal(&scenario, &plan, &outcome))
        .map_err(Failure::failed)?
        + "\n";
    let markdown = report::markdown(&scenario, &plan, &outcome);
    let html = report::html(&scenario, &plan, &outcome);
    write(&out_dir.join("junit.xml"), &junit)?;
    write(&out_dir.join("journal.json"), &json)?;
    write(&out_dir.join("report.md"), &markdown)?;
    write(&out_dir.join("report.html"), &html)?;
    write(&out_dir.join("plan.txt"), &plan.to_string())?;
    if let Some(path) = &args.junit {
        write(path, &junit)?;
    }
    if let Some(path) = &args.json {
        write(path, &json)?;
    }
    if let Some(path) = &args.report {
        let is_html = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
        write(path, if is_html { &html } else { &markdown })?;
    }

    // The summary a pipeline log shows.
    let mut summary = String::new();
    for j in &outcome.judged {
        summary.push_str(&format!(
            "  {} {}: {}\n",
            match (j.passed, outcome.not_judged(j)) {
                (true, _) => "pass",
                (false, true) => "skip",
                (false, false) => "FAIL",
            },
            j.title,
            j.evidence
        ));
    }
    let colour = std::io::stdout().is_terminal();
    let verdict = match outcome.verdict {
        Verdict::Passed => "PASSED",
        Verdict::Failed => "FAILED",
        Verdict::RevertUnverified => "REVERT NOT VERIFIED",
        Verdict::InfrastructureError => "INFRASTRUCTURE ERROR",
    };
    let verdict = if colour {
        let code = if outcome.verdict == Verdict::Passed {
            32
        } else {
            31
        };
        format!("\x1b[1;{code}m{verdict}\x1b[0m")
    } else {
        verdict.to_owned()
    };
    print!("faultline run {}: {verdict}\n{summary}", scenario.name);
    if let Some(e) = &outcome.infrastructure_error {
        println!("  infrastructure: {e}");
    }
    for c in crash_summary(&outcome) {
        println!("  crash: {c}");
    }
    println!(
        "  reports: {}/report.md, junit.xml, journal.json (exit code {})",
        out_dir.display(),
        outcome.verdict.exit_code()
    );
    match outcome.verdict.exit_code() {
        0 => Ok(()),
        code => Err(Failure::quiet(code as u8)),
    }
}

fn crash_summary(outcome: &faultline_scenario::runner::RunOutcome) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for c in &outcome.evidence.crashes {
        let key = format!(
            "{} {} \"{}\" at {}",
            c.target, c.kind, c.message, c.top_frame
        );
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => seen.push((key, 1)),
        }
    }
    seen.into_iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect()
}

/// Every problem, as `file:line:column: message` and a snippet (miette), then a count.
pub fn render_problems(invalid: &faultline_scenario::Invalid) {
    let handler = miette::GraphicalReportHandler::new_themed(if std::io::stderr().is_terminal() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    });
    for problem in invalid.reports() {
        let mut text = String::new();
        if handler.render_report(&mut text, &problem).is_err() {
            text = problem.to_string();
        }
        eprintln!("{text}");
    }
    let n = invalid.problems.len();
    eprintln!(
        "faultline: error: {}: {n} problem{} (nothing was run)",
        invalid.file,
        if n == 1 { "" } else { "s" }
    );
}

/// `faultline __hold`: keeps a lab namespace alive until its stdin closes.
pub fn hold() -> Result<(), Failure> {
    let mut sink = [0u8; 64];
    use std::io::Read as _;
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// `faultline-runs/<name>-<UTC time>`, created here so that two runs started in the same second
/// (CI jobs side by side) never share one: the second gets `-2`, and so on.
fn fresh_run_dir(name: &str) -> Result<PathBuf, Failure> {
    let runs = PathBuf::from("faultline-runs");
    std::fs::create_dir_all(&runs)
        .map_err(|e| Failure::failed(anyhow::anyhow!("create {}: {e}", runs.display())))?;
    let base = format!(
        "{}-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "")
    );
    for n in 1u32..=1000 {
        let dir = runs.join(if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Failure::failed(anyhow::anyhow!(
                    "create {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    Err(Failure::failed(anyhow::anyhow!(
        "{}: a thousand runs named {base} already",
        runs.display()
    )))
}
