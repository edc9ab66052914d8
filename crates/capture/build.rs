//! Records which compiler built this crate, for the `runtimes` field of crash records.
//!
//! The version is read here, at build time, because a running service has no way to ask which
//! rustc produced it. Nothing in this script can fail the build: an unknown compiler is recorded
//! as `unknown`.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC");

    // Cargo sets RUSTC to the compiler it is using (also under RUSTC_WRAPPER, which it passes
    // separately); plain `rustc` is only a fallback for builds outside cargo.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && !text.contains('\n'));
    // Recorded verbatim (`rustc 1.95.0 (59807616e 2026-04-14)`), as docs/formats.md specifies
    // for `runtimes`.
    let version = version.as_deref().unwrap_or("unknown");
    println!("cargo::rustc-env=FAULTLINE_CAPTURE_RUSTC_VERSION={version}");

    // Since Rust 1.91 the default panic hook prints the OS thread id after the thread name
    // (`thread 'main' (4242) panicked at …`). `raw_text` is meant to be the default hook's words
    // verbatim, so the hook needs to know which std it is linked with. An unparseable version is
    // taken to be a current one.
    println!("cargo::rustc-check-cfg=cfg(faultline_std_prints_tid)");
    if minor_version(version).is_none_or(|minor| minor >= 91) {
        println!("cargo::rustc-cfg=faultline_std_prints_tid");
    }
}

/// The minor version of a `rustc 1.x.y…` version string.
fn minor_version(version: &str) -> Option<u32> {
    let number = version.strip_prefix("rustc ")?;
    let mut parts = number.split(['.', ' ', '-']);
    match (parts.next(), parts.next()) {
        (Some("1"), Some(minor)) => minor.parse().ok(),
        _ => None,
    }
}
