//! The architecture's dependency rules (docs/ARCHITECTURE.md, "Invariants"), checked against
//! what the manifests really declare, as `cargo metadata` reports it.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Each workspace package's normal (non-dev, non-build), non-optional dependencies, by package
/// name.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    declared(false)
}

/// Each workspace package's optional dependencies (those only a feature turns on).
fn optional_dependencies() -> BTreeMap<String, Vec<String>> {
    declared(true)
}

fn declared(optional: bool) -> BTreeMap<String, Vec<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter(|d| d["optional"].as_bool().unwrap_or(false) == optional)
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn check_only(package: &str, allowed: &[&str]) {
    let deps = dependencies();
    let declared = deps
        .get(package)
        .unwrap_or_else(|| panic!("{package} is not in the workspace"));
    for dep in declared {
        assert!(
            allowed.contains(&dep.as_str()),
            "{package} must not depend on {dep} (allowed: {allowed:?})"
        );
    }
}

#[test]
fn record_is_serde_only() {
    check_only(
        "faultline-record",
        &["serde", "serde_json", "serde_path_to_error", "thiserror"],
    );
}

#[test]
fn capture_depends_on_libc_only() {
    check_only("faultline-capture", &["libc"]);
    // tokio only behind the `tokio` feature (task dumps), for services that already run it.
    let optional = optional_dependencies();
    assert_eq!(optional["faultline-capture"], ["tokio"]);
}

#[test]
fn only_the_fault_crate_touches_the_kernel_for_faults() {
    // Signals, namespaces and nftables go through faultline-fault alone; the binary asks it.
    check_only("faultline-fault", &["libc", "thiserror"]);
    let deps = dependencies();
    assert!(
        !deps["faultline"].iter().any(|d| d == "libc"),
        "the faultline binary must leave signals and namespaces to faultline-fault"
    );
}

#[test]
fn pure_crates_stay_pure() {
    check_only(
        "faultline-dump",
        &["faultline-record", "flate2", "thiserror"],
    );
    check_only("faultline-leak", &["faultline-dump", "libm", "thiserror"]);
    for package in ["faultline-record", "faultline-dump", "faultline-leak"] {
        assert!(
            optional_dependencies()[package].is_empty(),
            "{package} has optional dependencies"
        );
    }
}

#[test]
fn only_the_binary_presents() {
    for (package, deps) in dependencies() {
        if package == "faultline" {
            continue;
        }
        for ui in ["clap", "anyhow", "miette"] {
            // A scenario's problems are diagnostics of text the user wrote: the scenario crate
            // describes them as miette diagnostics; the binary still does the rendering.
            if ui == "miette" && package == "faultline-scenario" {
                continue;
            }
            assert!(
                !deps.iter().any(|d| d == ui),
                "{package} depends on {ui}: presentation belongs to the faultline binary"
            );
        }
        assert!(
            !deps.iter().any(|d| d == "faultline"),
            "{package} depends on the binary package"
        );
    }
}

#[test]
fn no_library_depends_on_kube_or_tokio_directly() {
    // Only faultline-kube may import kube (or k8s-openapi); async code lives in the agent and
    // in faultline-kube (kube is async); the CLI reaches both through blocking calls.
    // faultline-capture's optional tokio, for the services that link it, is checked above.
    for (package, deps) in dependencies() {
        if package != "faultline-kube" {
            assert!(
                !deps.iter().any(|d| d == "kube" || d == "k8s-openapi"),
                "{package} depends on kube: only faultline-kube talks to the API server"
            );
        }
        if package != "faultline-agent" && package != "faultline-kube" {
            assert!(
                !deps.iter().any(|d| d == "tokio" || d == "axum"),
                "{package} depends on tokio or axum: async code lives in the agent and faultline-kube"
            );
        }
    }
}

#[test]
fn every_member_inherits_workspace_lints_and_versions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for manifest in [
        "crates/record/Cargo.toml",
        "crates/capture/Cargo.toml",
        "crates/symbolize/Cargo.toml",
        "crates/scenario/Cargo.toml",
        "crates/tui/Cargo.toml",
        "crates/kube/Cargo.toml",
        "crates/cli/Cargo.toml",
        "tests/Cargo.toml",
        "tests/targets/demo/Cargo.toml",
    ] {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{manifest}: add `[lints] workspace = true`"
        );
        // Every dependency is pinned once, in the workspace: members say `workspace = true`.
        let mut in_deps = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
                continue;
            }
            if in_deps && !line.is_empty() && !line.starts_with('#') {
                assert!(
                    line.contains("workspace = true"),
                    "{manifest}:{}: `{line}` should be `name.workspace = true`",
                    n + 1
                );
            }
        }
    }
}

/// The code map of docs/ARCHITECTURE.md, top to bottom: a crate may depend only on crates
/// below it, so the map can be read from the top down and no crate reaches back up.
const CODE_MAP: &[&str] = &[
    "faultline",
    "faultline-tui",
    "faultline-kube",
    "faultline-scenario",
    "faultline-agent",
    "faultline-fault",
    "faultline-symbolize",
    "faultline-native",
    "faultline-capture",
    "faultline-leak",
    "faultline-dump",
    "faultline-record",
];

#[test]
fn dependencies_point_down_the_code_map() {
    let architecture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ARCHITECTURE.md"),
    )
    .unwrap();
    // The map in the document is in this order.
    let positions: Vec<usize> = CODE_MAP
        .iter()
        .map(|name| {
            let heading = if *name == "faultline" {
                "(package `faultline`)".to_owned()
            } else {
                format!("(`{name}`)**")
            };
            architecture
                .find(&heading)
                .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no code map entry {heading}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "docs/ARCHITECTURE.md's code map is not in the order {CODE_MAP:?}"
    );
    for (package, deps) in dependencies() {
        let Some(at) = CODE_MAP.iter().position(|p| *p == package) else {
            continue;
        };
        for dep in deps.iter().filter(|d| d.starts_with("faultline")) {
            let below = CODE_MAP.iter().position(|p| p == dep);
            assert!(
                below.is_some_and(|b| b > at),
                "{package} depends on {dep}, which is not below it in the code map"
            );
        }
    }
}
