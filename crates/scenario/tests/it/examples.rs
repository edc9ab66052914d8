//! Every file in scenarios/ parses, validates and plans; the plans are snapshots, so a change
//! to what a scenario does shows up in review.

use std::path::{Path, PathBuf};

use faultline_scenario::{Plan, load_file};

/// scenarios/*.yaml and scenarios/kubernetes/*.yaml.
fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = [root.clone(), root.join("kubernetes")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_file_loads_and_plans() {
    let files = scenarios();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let scenario = load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::new(&scenario, 1).unwrap();
        let mut name = file.file_stem().unwrap().to_string_lossy().into_owned();
        if file.parent().is_some_and(|d| d.ends_with("kubernetes")) {
            name = format!("kubernetes-{name}");
        }
        insta::assert_snapshot!(format!("plan-{name}"), plan.to_string());
    }
}
