//! The statistics against pymannkendall 1.4.3 (`original_test`) and scipy
//! (`stats.theilslopes`), on the series and values of `tests/golden/golden.json`, which
//! `tests/golden/generate.py` wrote (its header says how to regenerate it).

use faultline_leak::stats::{mann_kendall, theil_sen};
use serde_json::Value;

const GOLDEN: &str = include_str!("../golden/golden.json");

fn floats(case: &Value, key: &str) -> Vec<f64> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn number(case: &Value, key: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing"))
}

/// Equal to 1e-9 relative (exactly, for zeros).
fn assert_close(name: &str, what: &str, ours: f64, theirs: f64) {
    let scale = ours.abs().max(theirs.abs());
    assert!(
        (ours - theirs).abs() <= 1e-9 * scale,
        "{name}: {what} is {ours}, the reference says {theirs}"
    );
}

#[test]
fn statistics_match_the_references() {
    let doc: Value = serde_json::from_str(GOLDEN).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (t, x) = (floats(case, "t"), floats(case, "x"));

        let mk = mann_kendall(&x);
        assert_eq!(mk.n, x.len(), "{name}");
        assert_eq!(Some(mk.s), case["s"].as_i64(), "{name}: S");
        assert_close(name, "Var(S)", mk.var_s, number(case, "var_s"));
        assert_close(name, "Z", mk.z, number(case, "z"));
        assert_close(name, "tau", mk.tau, number(case, "tau"));
        assert_close(name, "p (erfc)", mk.p_value, number(case, "p_erfc"));
        // pymannkendall's own p, 2(1 − Φ(|z|)), carries an absolute error of ~1e-16 from
        // the cancellation, which is large relative to a tiny p.
        let p = number(case, "p");
        if p > 1e-6 {
            assert_close(name, "p", mk.p_value, p);
        } else {
            assert!(
                (mk.p_value - p).abs() < 1e-14,
                "{name}: p {} vs {p}",
                mk.p_value
            );
        }

        let line = theil_sen(&t, &x).unwrap();
        assert_close(name, "slope", line.slope, number(case, "slope"));
        assert_close(name, "intercept", line.intercept, number(case, "intercept"));
    }
}
