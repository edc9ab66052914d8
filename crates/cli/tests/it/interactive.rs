//! `faultline symbolize` typed at in a real terminal (tmux): each address is answered as soon
//! as its line is entered, a bad line is reported without ending the session.

use std::time::{Duration, Instant};

use faultline_tests::{CProgram, nm_symbol, run_ok, wait_until};

use crate::tmux::Tmux;

const PROGRAM: &str = r#"
__attribute__((noinline)) int typed_helper(int x) { return x * 3 + 1; }
int main(int argc, char **argv) { return typed_helper(argc); }
"#;

#[test]
fn answers_each_line_as_it_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let binary = CProgram::new("typed", PROGRAM, "c0ffee0000000000000000000000000000000042")
        .compile(dir.path());
    let helper = nm_symbol(&binary, "typed_helper");

    let tmux = Tmux::new("symbolize");
    run_ok(tmux.command().args([
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "200",
        "-y",
        "50",
        env!("CARGO_BIN_EXE_faultline"),
        "symbolize",
        "-e",
        binary.to_str().unwrap(),
    ]));

    let deadline = || Instant::now() + Duration::from_secs(20);
    tmux.type_line(&format!("{:#x}", helper.address + 1));
    assert!(
        wait_until(deadline(), || tmux.screen().contains("typed_helper\n")),
        "no answer to the first line; screen:\n{}",
        tmux.screen()
    );
    assert!(tmux.screen().contains("typed.c:2:"), "{}", tmux.screen());

    // A typo is reported and the session goes on.
    tmux.type_line("0xnope");
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .contains("expected a hex address")),
        "no complaint about the bad line; screen:\n{}",
        tmux.screen()
    );
    tmux.type_line("0x1");
    assert!(
        wait_until(deadline(), || tmux.screen().contains("??:0:0")),
        "no answer after the bad line; screen:\n{}",
        tmux.screen()
    );
}
