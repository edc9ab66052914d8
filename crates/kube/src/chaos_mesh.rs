//! Chaos Mesh experiments brought as they are: a `PodChaos` manifest read and translated into
//! faultline's pod kill, and every field or kind that cannot be translated named, never
//! dropped in silence. Pure: text in, a translation or the reasons out.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pods::{Grace, Targets};
use crate::select::Mode;

/// What a Chaos Mesh manifest becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// `kind/name` of the experiment.
    pub name: String,
    /// The pods it selects.
    pub targets: Targets,
    /// What is done to them.
    pub action: Action,
    /// What of the manifest was read differently from Chaos Mesh, one line each.
    pub notes: Vec<String>,
}

/// A translated action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `PodChaos` `pod-kill`.
    PodKill(Grace),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Whether `text` is a Chaos Mesh manifest (`apiVersion: chaos-mesh.org/…`).
pub fn is_chaos_mesh(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start()
            .strip_prefix("apiVersion:")
            .is_some_and(|v| v.trim().trim_matches('"').starts_with("chaos-mesh.org/"))
    })
}

/// Translates a Chaos Mesh manifest, or says why it cannot be (each reason a line).
pub fn translate(text: &str, seed: u64) -> Result<Translation, Vec<String>> {
    let manifest: Manifest = serde_saphyr::from_str(text)
        .map_err(|e| vec![format!("not a Chaos Mesh manifest: {e}")])?;
    if !manifest.api_version.starts_with("chaos-mesh.org/") {
        return Err(vec![format!(
            "apiVersion {}: expected chaos-mesh.org/v1alpha1",
            manifest.api_version
        )]);
    }
    let name = format!("{}/{}", manifest.kind, manifest.metadata.name);
    let spec = &manifest.spec;
    let text_of = |key: &str| spec.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let action = text_of("action").unwrap_or_default();
    match (manifest.kind.as_str(), action.as_str()) {
        ("PodChaos", "pod-kill") => {}
        ("PodChaos", other) => {
            return Err(vec![format!(
                "{name}: PodChaos action {other:?} is not translated (only pod-kill; \
                 container-kill and pod-failure are not built)"
            )]);
        }
        ("NetworkChaos", _) | ("StressChaos", _) => {
            return Err(vec![format!(
                "{name}: {} is not translated yet: it needs the node agents reached per pod, \
                 which `faultline inject partition|stress --pod NS/NAME` does one pod at a time \
                 (docs/kubernetes.md)",
                manifest.kind
            )]);
        }
        (kind, _) => {
            return Err(vec![format!("{name}: {kind} is not translated")]);
        }
    }
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let known = [
        "action",
        "mode",
        "value",
        "selector",
        "gracePeriod",
        "duration",
    ];
    for key in spec.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.push(format!("{name}: spec.{key} is not translated"));
    }
    let selector = spec.get("selector").cloned().unwrap_or_default();
    let mut namespaces: Vec<String> = selector
        .get("namespaces")
        .and_then(|n| n.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if namespaces.is_empty() {
        // Chaos Mesh's default: the experiment's own namespace.
        namespaces.extend(manifest.metadata.namespace.clone());
    }
    if namespaces.is_empty() {
        problems.push(format!(
            "{name}: spec.selector.namespaces is empty and the manifest has no namespace"
        ));
    }
    let labels: Vec<String> = selector
        .get("labelSelectors")
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    if labels.is_empty() {
        problems.push(format!(
            "{name}: spec.selector.labelSelectors is empty: faultline never selects every pod \
             of a namespace by accident"
        ));
    }
    if let Some(map) = selector.as_object() {
        for key in map
            .keys()
            .filter(|k| !["namespaces", "labelSelectors"].contains(&k.as_str()))
        {
            problems.push(format!("{name}: spec.selector.{key} is not translated"));
        }
    }
    let value = text_of("value")
        .or_else(|| spec.get("value").map(ToString::to_string))
        .unwrap_or_default();
    let mode = match text_of("mode").unwrap_or_default().as_str() {
        "one" => Mode::One,
        "all" => Mode::All,
        "fixed" => match value.parse() {
            Ok(n) => Mode::Fixed(n),
            Err(_) => {
                problems.push(format!(
                    "{name}: mode fixed needs value: a number, got {value:?}"
                ));
                Mode::One
            }
        },
        mode @ ("fixed-percent" | "random-max-percent") => match value.parse() {
            Ok(p) => {
                if mode == "random-max-percent" {
                    notes.push(format!(
                        "{name}: random-max-percent {p} is taken as percent {p} (the most it \
                         could draw)"
                    ));
                }
                Mode::Percent(p)
            }
            Err(_) => {
                problems.push(format!(
                    "{name}: mode {mode} needs value: a percentage, got {value:?}"
                ));
                Mode::One
            }
        },
        other => {
            problems.push(format!(
                "{name}: mode {other:?}: expected one, all, fixed, fixed-percent or random-max-percent"
            ));
            Mode::One
        }
    };
    let grace = match spec.get("gracePeriod").and_then(serde_json::Value::as_u64) {
        None => Grace::Seconds(30),
        Some(0) => Grace::Force,
        Some(s) => Grace::Seconds(u32::try_from(s).unwrap_or(u32::MAX)),
    };
    if spec.contains_key("duration") {
        notes.push(format!(
            "{name}: spec.duration does not apply to a pod kill, which is instant"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Translation {
        name,
        targets: Targets {
            namespaces,
            labels: labels.join(","),
            fields: None,
            mode,
            seed,
            include_not_ready: false,
            allow_protected: false,
        },
        action: Action::PodKill(grace),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_KILL: &str = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: checkout-kill
  namespace: chaos-testing
spec:
  action: pod-kill
  mode: fixed-percent
  value: "50"
  gracePeriod: 0
  selector:
    namespaces:
      - shop
    labelSelectors:
      app: checkout
      tier: web
"#;

    #[test]
    fn a_pod_kill_becomes_faultlines() {
        assert!(is_chaos_mesh(POD_KILL));
        assert!(!is_chaos_mesh("name: demo\nlab:\n"));
        let t = translate(POD_KILL, 7).unwrap();
        assert_eq!(t.name, "PodChaos/checkout-kill");
        assert_eq!(t.targets.namespaces, ["shop"]);
        assert_eq!(t.targets.labels, "app=checkout,tier=web");
        assert_eq!(t.targets.mode, Mode::Percent(50.0));
        assert_eq!(t.targets.seed, 7);
        assert_eq!(t.action, Action::PodKill(Grace::Force));
        assert!(t.notes.is_empty());
    }

    #[test]
    fn the_experiments_namespace_is_the_default_and_a_grace_period_is_kept() {
        let text = POD_KILL
            .replace("    namespaces:\n      - shop\n", "")
            .replace("gracePeriod: 0", "gracePeriod: 15")
            .replace("fixed-percent", "random-max-percent");
        let t = translate(&text, 1).unwrap();
        assert_eq!(t.targets.namespaces, ["chaos-testing"]);
        assert_eq!(t.action, Action::PodKill(Grace::Seconds(15)));
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    }

    #[test]
    fn what_cannot_be_translated_is_named() {
        let network = POD_KILL
            .replace("kind: PodChaos", "kind: NetworkChaos")
            .replace("action: pod-kill", "action: partition");
        let why = translate(&network, 1).unwrap_err();
        assert!(
            why[0].contains("NetworkChaos is not translated yet"),
            "{why:?}"
        );
        let failure = POD_KILL.replace("action: pod-kill", "action: pod-failure");
        assert!(translate(&failure, 1).unwrap_err()[0].contains("pod-failure"));
        let extra = POD_KILL
            .replace(
                "  gracePeriod: 0\n",
                "  gracePeriod: 0\n  scheduler: {cron: '@every 1m'}\n",
            )
            .replace(
                "      tier: web\n",
                "      tier: web\n    podPhaseSelectors: [Running]\n",
            );
        let why = translate(&extra, 1).unwrap_err();
        assert_eq!(
            why,
            [
                "PodChaos/checkout-kill: spec.scheduler is not translated",
                "PodChaos/checkout-kill: spec.selector.podPhaseSelectors is not translated",
            ]
        );
        let everything = POD_KILL.replace(
            "    labelSelectors:\n      app: checkout\n      tier: web\n",
            "",
        );
        assert!(translate(&everything, 1).unwrap_err()[0].contains("never selects every pod"));
    }
}
