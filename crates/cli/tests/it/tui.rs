//! `faultline tui` in a real terminal (tmux), against a local agent and a target in a network
//! namespace: select the target, inject a partition, watch it count down and bite, revert it
//! with `r`, quit with `q`, and find the terminal restored.

use std::time::{Duration, Instant};

use faultline_tests::{NetLab, wait_until};

use crate::agent::Agent;
use crate::faults::{ECHO, setup, signal};
use crate::tmux::Tmux;

/// The line of the screen that shows a partition fault, if one does.
fn fault_line(screen: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.contains(" partition ") && l.contains("sleep"))
        .map(str::to_owned)
}

/// The LEFT column of a fault line: `27s` → 27.
fn seconds_left(line: &str) -> Option<u32> {
    line.split_whitespace()
        .find_map(|w| w.strip_suffix('s')?.parse().ok())
}

/// The PACKETS column of a fault line: the word after LEFT.
fn packets(line: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let left = words.iter().position(|w| {
        w.strip_suffix('s')
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })?;
    words.get(left + 1)?.parse().ok()
}

/// `faultline tui --agent ADDR` in a tmux session of its own (120×30), once it lists `target`.
/// When the screen exits, the pane says `tui exited CODE`.
fn open_screen(name: &str, agent: &str, target: u32) -> Tmux {
    let tmux = Tmux::new(name);
    let script = format!(
        "{} tui --agent {agent}; echo \"tui exited $?\"; sleep 600",
        env!("CARGO_BIN_EXE_faultline"),
    );
    faultline_tests::run_ok(tmux.command().args([
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]));
    let target = target.to_string();
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || {
            let screen = tmux.screen();
            screen.contains("Targets (") && screen.contains(&target)
        }),
        "the target is not listed:\n{}",
        tmux.screen()
    );
    tmux
}

/// Selects `target` by filtering on its pid, opens the partition form with `n`, and sends a
/// partition from the lab's host `a`.
fn partition_from_the_form(tmux: &Tmux, target: u32) {
    tmux.type_text("/");
    tmux.type_line(&target.to_string());
    tmux.type_text("n");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || tmux
            .screen()
            .contains(&format!("partition sleep (pid {target})"))),
        "no partition form:\n{}",
        tmux.screen()
    );
    tmux.type_line(NetLab::A_IP);
}

#[test]
fn a_partition_from_the_keyboard_bites_counts_down_and_is_reverted() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::unix(dir.path());
    let tmux = open_screen("tui", &agent.addr, setup.target);
    let deadline = || Instant::now() + Duration::from_secs(20);
    assert!(tmux.alternate_screen(), "a full-screen UI");

    partition_from_the_form(&tmux, setup.target);
    assert!(
        wait_until(deadline(), || {
            fault_line(&tmux.screen())
                .is_some_and(|l| l.contains("active") && seconds_left(&l).is_some())
        }),
        "no active partition with a countdown:\n{}",
        tmux.screen()
    );
    let first = seconds_left(&fault_line(&tmux.screen()).unwrap()).unwrap();
    assert!(
        (25..=30).contains(&first),
        "the default duration is 30 s: {first}"
    );
    assert_eq!(
        setup.lab.faultline_tables(1).len(),
        1,
        "the table is in force"
    );

    // It bites: traffic to the peer times out, and the packet counter on screen moves.
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    assert!(
        wait_until(deadline(), || fault_line(&tmux.screen()).is_some_and(|l| {
            seconds_left(&l).is_some_and(|left| left < first) && packets(&l).is_some_and(|p| p > 0)
        })),
        "no countdown or no packets counted:\n{}",
        tmux.screen()
    );

    // `r` reverts it: the screen says verified, and the kernel agrees.
    tmux.type_text("r");
    assert!(
        wait_until(deadline(), || fault_line(&tmux.screen())
            .is_some_and(|l| l.contains("reverted · verified"))),
        "not reverted:\n{}",
        tmux.screen()
    );
    assert!(
        setup.lab.faultline_tables(1).is_empty(),
        "no faultline_* table left"
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");

    // `q` quits at once (nothing of this screen is active) and restores the terminal.
    tmux.type_text("q");
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .lines()
            .any(|l| l == "tui exited 0")),
        "did not exit cleanly:\n{}",
        tmux.screen()
    );
    assert!(!tmux.alternate_screen(), "the alternate screen is left");
    drop(agent);
}

#[test]
fn sigterm_reverts_the_screens_faults_and_restores_the_terminal() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::unix(dir.path());
    let tmux = open_screen("tui-term", &agent.addr, setup.target);
    partition_from_the_form(&tmux, setup.target);
    let deadline = || Instant::now() + Duration::from_secs(20);
    assert!(
        wait_until(deadline(), || !setup.lab.faultline_tables(1).is_empty()),
        "no partition:\n{}",
        tmux.screen()
    );

    // The shell in the pane runs the screen as its only child.
    let shell = faultline_tests::run_ok(tmux.command().args([
        "display-message",
        "-p",
        "-t",
        "t",
        "#{pane_pid}",
    ]))
    .stdout;
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let screen: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    signal(screen, libc::SIGTERM);
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .lines()
            .any(|l| l == "tui exited 0")),
        "did not exit:\n{}",
        tmux.screen()
    );
    let text = tmux.screen();
    assert!(
        text.contains("faultline tui: stopped by signal 15"),
        "{text}"
    );
    assert!(text.contains("reverted: verified"), "{text}");
    assert!(!tmux.alternate_screen(), "the alternate screen is left");
    assert!(
        setup.lab.faultline_tables(1).is_empty(),
        "no faultline_* table left"
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    drop(agent);
}
