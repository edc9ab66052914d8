//! A real terminal for the tests: a tmux server of the test's own (its own socket), with one
//! session `t`, killed on drop even if the test fails.

use std::process::Command;

use faultline_tests::{run, run_ok};

pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server named after the test and this process.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            socket: format!("faultline-test-{name}-{}", std::process::id()),
        }
    }

    /// A tmux client; the first one starts the server, whose environment every program in
    /// the pane inherits: the same as [`crate::faultline`]'s (no ambient variables, the tests'
    /// own cache).
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        crate::isolated(&mut command);
        command
    }

    /// Types `text` literally (tmux would read `0x…` as a key code).
    pub(crate) fn type_text(&self, text: &str) {
        run_ok(self.command().args(["send-keys", "-t", "t", "-l", text]));
    }

    /// Presses keys by their tmux names (`Enter`, `Escape`, `q`).
    pub(crate) fn keys(&self, keys: &[&str]) {
        run_ok(self.command().args(["send-keys", "-t", "t"]).args(keys));
    }

    /// Types `text` and presses Enter.
    pub(crate) fn type_line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// What the terminal shows.
    pub(crate) fn screen(&self) -> String {
        run(self.command().args(["capture-pane", "-p", "-t", "t"])).stdout
    }

    /// Whether the program in the pane has the alternate screen on.
    pub(crate) fn alternate_screen(&self) -> bool {
        run(self
            .command()
            .args(["display-message", "-p", "-t", "t", "#{alternate_on}"]))
        .stdout
        .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}
