//! `faultline symbolize` typed at in a real terminal (tmux): each address is answered as soon
//! as its line is entered, a bad line is reported without ending the session.

use std::process::Command;
use std::time::{Duration, Instant};

use faultline_tests::{CProgram, nm_symbol, run, run_ok, wait_until};

const PROGRAM: &str = r#"
__attribute__((noinline)) int typed_helper(int x) { return x * 3 + 1; }
int main(int argc, char **argv) { return typed_helper(argc); }
"#;

/// A tmux server of our own (its own socket), killed on drop even if the test fails.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    /// Types `text` (literally: tmux would read `0x…` as a key code) and presses Enter.
    fn type_line(&self, text: &str) {
        run_ok(self.command().args(["send-keys", "-t", "t", "-l", text]));
        run_ok(self.command().args(["send-keys", "-t", "t", "Enter"]));
    }

    fn screen(&self) -> String {
        run(self.command().args(["capture-pane", "-p", "-t", "t"])).stdout
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

#[test]
fn answers_each_line_as_it_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let binary = CProgram::new("typed", PROGRAM, "c0ffee0000000000000000000000000000000042")
        .compile(dir.path());
    let helper = nm_symbol(&binary, "typed_helper");

    let tmux = Tmux {
        socket: format!("faultline-test-{}", std::process::id()),
    };
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
