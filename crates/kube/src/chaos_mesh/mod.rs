//! Chaos Mesh experiments brought as they are: `PodChaos` (pod-kill, container-kill),
//! `NetworkChaos` (partition, loss) and `StressChaos` (cpu) manifests read and translated into faultline's faults,
//! and every field or kind that cannot be translated named, never dropped in silence. Pure:
//! text in, a translation or the reasons out.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::pods::{Grace, Targets};
use crate::select::Mode;

mod scenario;
pub use scenario::{Translated, scenario};

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
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `PodChaos` `pod-kill`.
    PodKill(Grace),
    /// `PodChaos` `container-kill`: SIGKILL to the container's processes (the kubelet
    /// restarts it).
    ContainerKill {
        /// `containerNames` (exactly one).
        container: String,
    },
    /// `NetworkChaos` `partition`: the selected pods cut off from `peers` (every pod of
    /// `spec.target`) and `external` (`spec.externalTargets`), in `direction`.
    Partition {
        /// `to`, `from` or `both`, as Chaos Mesh means them (from the selected pods' side).
        direction: String,
        /// `spec.target`: pods whose addresses are the peers.
        peers: Option<Targets>,
        /// `spec.externalTargets`: addresses and CIDRs.
        external: Vec<String>,
        /// `spec.duration`.
        duration: Duration,
    },
    /// `NetworkChaos` `loss`: `percent` of the packets between the selected pods and the peers
    /// dropped, read as a partition's peers are.
    Loss {
        /// `loss.loss`, percent.
        percent: u8,
        /// As a partition's.
        direction: String,
        /// As a partition's.
        peers: Option<Targets>,
        /// As a partition's.
        external: Vec<String>,
        /// `spec.duration`.
        duration: Duration,
    },
    /// `StressChaos` with `stressors.cpu`.
    Stress {
        /// `stressors.cpu.workers`.
        workers: u32,
        /// `stressors.cpu.load`, percent.
        load: u8,
        /// `containerNames` (at most one).
        container: Option<String>,
        /// `spec.duration`.
        duration: Duration,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: BTreeMap<String, Value>,
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

/// The keys that choose pods, in `spec` and in a NetworkChaos `spec.target`.
const SELECTING: &[&str] = &["mode", "value", "selector"];
/// The spec keys each translated experiment reads besides [`SELECTING`].
const POD_KILL_KEYS: &[&str] = &["action", "gracePeriod", "duration"];
const CONTAINER_KILL_KEYS: &[&str] = &["action", "containerNames", "duration"];
const PARTITION_KEYS: &[&str] = &[
    "action",
    "direction",
    "target",
    "externalTargets",
    "duration",
];
const LOSS_KEYS: &[&str] = &[
    "action",
    "direction",
    "target",
    "externalTargets",
    "loss",
    "duration",
];
const STRESS_KEYS: &[&str] = &["stressors", "containerNames", "duration"];

/// Reads one manifest, gathering what cannot be translated in `problems`.
struct Reader<'m> {
    name: String,
    namespace: Option<&'m str>,
    problems: Vec<String>,
    notes: Vec<String>,
    allow_protected: bool,
}

impl Reader<'_> {
    /// Names each key of `map` that is neither one of [`SELECTING`] nor of `known`.
    fn unknown_keys(&mut self, map: &BTreeMap<String, Value>, known: &[&str], at: &str) {
        for key in map
            .keys()
            .filter(|k| !SELECTING.contains(&k.as_str()) && !known.contains(&k.as_str()))
        {
            self.problems
                .push(format!("{}: {at}{key} is not translated", self.name));
        }
    }

    /// `selector` (namespaces and label selectors, nothing else) and `mode`/`value` of `spec`
    /// or of a NetworkChaos `target`, at `at` (`spec.`, `spec.target.`).
    fn targets(&mut self, spec: &Value, at: &str, seed: u64) -> Targets {
        let selector = spec.get("selector").cloned().unwrap_or_default();
        let mut namespaces = self.strings(
            selector.get("namespaces"),
            &format!("{at}selector.namespaces"),
        );
        if namespaces.is_empty() {
            // Chaos Mesh's default: the experiment's own namespace.
            namespaces.extend(self.namespace.map(str::to_owned));
        }
        if namespaces.is_empty() {
            self.problems.push(format!(
                "{}: {at}selector.namespaces is empty and the manifest has no namespace",
                self.name
            ));
        }
        if let Err(refused) = crate::select::check_namespaces(&namespaces, self.allow_protected) {
            self.problems
                .push(format!("{}: {at}selector: {refused}", self.name));
        }
        let labels: Vec<String> = selector
            .get("labelSelectors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        if labels.is_empty() {
            self.problems.push(format!(
                "{}: {at}selector.labelSelectors is empty: faultline never selects every pod \
                 of a namespace by accident",
                self.name
            ));
        }
        if let Some(map) = selector.as_object() {
            for key in map
                .keys()
                .filter(|k| !["namespaces", "labelSelectors"].contains(&k.as_str()))
            {
                self.problems.push(format!(
                    "{}: {at}selector.{key} is not translated",
                    self.name
                ));
            }
        }
        let value = spec
            .get("value")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        let name = self.name.clone();
        let mode = match spec.get("mode").and_then(Value::as_str).unwrap_or_default() {
            "one" => Mode::One,
            "all" => Mode::All,
            "fixed" => match value.parse() {
                Ok(n) if n >= 1 => Mode::Fixed(n),
                _ => {
                    self.problems.push(format!(
                        "{name}: {at}mode fixed needs value: a number of pods, 1 or more, got \
                         {value:?}"
                    ));
                    Mode::One
                }
            },
            mode @ ("fixed-percent" | "random-max-percent") => match value.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => {
                    if mode == "random-max-percent" {
                        self.notes.push(format!(
                            "{name}: random-max-percent {p} is taken as percent {p} (the most it \
                             could draw)"
                        ));
                    }
                    Mode::Percent(p)
                }
                _ => {
                    self.problems.push(format!(
                        "{name}: {at}mode {mode} needs value: a percentage above 0 and at most \
                         100, got {value:?}"
                    ));
                    Mode::One
                }
            },
            other => {
                self.problems.push(format!(
                    "{name}: {at}mode {other:?}: expected one, all, fixed, fixed-percent or \
                     random-max-percent"
                ));
                Mode::One
            }
        };
        Targets {
            namespaces,
            labels: labels.join(","),
            fields: None,
            mode,
            seed,
            include_not_ready: false,
            allow_protected: false,
        }
    }

    /// A list of strings at `at` (none when absent); anything else in it is named, not dropped.
    fn strings(&mut self, value: Option<&Value>, at: &str) -> Vec<String> {
        let Some(value) = value else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            self.problems
                .push(format!("{}: {at}: expected a list of strings", self.name));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_str() {
                Some(text) => out.push(text.to_owned()),
                None => self
                    .problems
                    .push(format!("{}: {at}: {item} is not a string", self.name)),
            }
        }
        out
    }

    /// A NetworkChaos's `direction` (default `to`), `target` (its pods, all of them) and
    /// `externalTargets` (addresses and CIDRs).
    fn network_peers(
        &mut self,
        spec: &BTreeMap<String, Value>,
        text_of: &dyn Fn(&str) -> Option<String>,
        seed: u64,
    ) -> (String, Option<Targets>, Vec<String>) {
        let name = self.name.clone();
        let direction = match text_of("direction").as_deref() {
            None => "to".to_owned(),
            Some(d @ ("to" | "from" | "both")) => d.to_owned(),
            Some(other) => {
                self.problems.push(format!(
                    "{name}: spec.direction {other:?}: expected to, from or both"
                ));
                "to".to_owned()
            }
        };
        let peers = spec.get("target").map(|target| {
            if let Some(map) = target.as_object() {
                let map: BTreeMap<String, Value> =
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.unknown_keys(&map, &[], "spec.target.");
            }
            let mut peers = self.targets(target, "spec.target.", seed);
            if peers.mode != Mode::All {
                self.notes.push(format!(
                    "{name}: spec.target.mode {} is taken as all: every pod of the target \
                     is a peer, and pods that come and go while it lasts are followed",
                    peers.mode
                ));
                peers.mode = Mode::All;
            }
            peers
        });
        let external = self.strings(spec.get("externalTargets"), "spec.externalTargets");
        for e in &external {
            let address = e.split('/').next().unwrap_or_default();
            if address.parse::<std::net::IpAddr>().is_err() {
                self.problems.push(format!(
                    "{name}: spec.externalTargets {e:?}: only addresses and CIDRs are \
                     translated, not host names"
                ));
            }
        }
        (direction, peers, external)
    }

    /// A NetworkChaos loss's `loss.loss` (a percentage, 1 to 100, as text); `correlation` is
    /// said to be ignored (faultline drops each packet independently).
    fn loss_percent(&mut self, spec: &BTreeMap<String, Value>) -> u8 {
        let name = self.name.clone();
        let loss = spec.get("loss").cloned().unwrap_or_default();
        if let Some(map) = loss.as_object() {
            for key in map.keys() {
                match key.as_str() {
                    "loss" => {}
                    "correlation" => self.notes.push(format!(
                        "{name}: spec.loss.correlation is ignored: faultline drops each packet \
                         independently"
                    )),
                    other => self
                        .problems
                        .push(format!("{name}: spec.loss.{other} is not translated")),
                }
            }
        }
        let text = loss
            .get("loss")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default();
        match text.trim().parse::<f64>() {
            Ok(p) if (1.0..=100.0).contains(&p) => p.round() as u8,
            _ => {
                self.problems.push(format!(
                    "{name}: spec.loss.loss {text:?}: expected a percentage, 1 to 100"
                ));
                1
            }
        }
    }

    /// `spec.duration`, required: faultline never holds a fault without an end.
    fn duration(&mut self, spec: &BTreeMap<String, Value>) -> Duration {
        match spec.get("duration").and_then(Value::as_str) {
            Some(text) => humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or_else(|| {
                    self.problems.push(format!(
                        "{}: spec.duration {text:?} is not a duration (30s, 5m, 1h30m)",
                        self.name
                    ));
                    Duration::ZERO
                }),
            None => {
                self.problems.push(format!(
                    "{}: spec.duration is missing: faultline never holds a fault without an end",
                    self.name
                ));
                Duration::ZERO
            }
        }
    }
}

/// Translates a Chaos Mesh manifest, or says why it cannot be (each reason a line). Pods of
/// protected namespaces are refused unless `allow_protected`.
pub fn translate(text: &str, seed: u64, allow_protected: bool) -> Result<Translation, Vec<String>> {
    let manifest: Manifest = serde_saphyr::from_str(text).map_err(|e| {
        let e = e.to_string();
        vec![if e.contains("multiple YAML documents") {
            "several YAML documents (`---`): faultline runs one Chaos Mesh experiment per file; \
             split it and run each"
                .to_owned()
        } else {
            format!("not a Chaos Mesh manifest: {e}")
        }]
    })?;
    if !manifest.api_version.starts_with("chaos-mesh.org/") {
        return Err(vec![format!(
            "apiVersion {}: expected chaos-mesh.org/v1alpha1",
            manifest.api_version
        )]);
    }
    let name = format!("{}/{}", manifest.kind, manifest.metadata.name);
    let spec = &manifest.spec;
    let spec_value = Value::Object(spec.clone().into_iter().collect());
    let text_of = |key: &str| spec.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let action = text_of("action").unwrap_or_default();
    let mut r = Reader {
        name: name.clone(),
        namespace: manifest.metadata.namespace.as_deref(),
        problems: Vec::new(),
        notes: Vec::new(),
        allow_protected,
    };
    let action = match (manifest.kind.as_str(), action.as_str()) {
        ("PodChaos", "pod-kill") => {
            r.unknown_keys(spec, POD_KILL_KEYS, "spec.");
            if spec.contains_key("duration") {
                r.notes.push(format!(
                    "{name}: spec.duration does not apply to a pod kill, which is instant"
                ));
            }
            let grace = spec.get("gracePeriod");
            Action::PodKill(match grace.map(Value::as_u64) {
                None => Grace::Seconds(30),
                Some(Some(0)) => Grace::Force,
                Some(Some(s)) => Grace::Seconds(u32::try_from(s).unwrap_or(u32::MAX)),
                Some(None) => {
                    r.problems.push(format!(
                        "{name}: spec.gracePeriod {}: expected whole seconds, 0 or more",
                        grace.map(Value::to_string).unwrap_or_default()
                    ));
                    Grace::Seconds(30)
                }
            })
        }
        ("PodChaos", "container-kill") => {
            r.unknown_keys(spec, CONTAINER_KILL_KEYS, "spec.");
            if spec.contains_key("duration") {
                r.notes.push(format!(
                    "{name}: spec.duration does not apply to a container kill, which is instant"
                ));
            }
            let containers = r.strings(spec.get("containerNames"), "spec.containerNames");
            if containers.len() != 1 {
                r.problems.push(format!(
                    "{name}: spec.containerNames names {} containers: faultline kills exactly \
                     one (one experiment per container)",
                    containers.len()
                ));
            }
            Action::ContainerKill {
                container: containers.into_iter().next().unwrap_or_default(),
            }
        }
        ("PodChaos", other) => {
            return Err(vec![format!(
                "{name}: PodChaos action {other:?} is not translated (only pod-kill and \
                 container-kill; pod-failure is not built)"
            )]);
        }
        ("NetworkChaos", action @ ("partition" | "loss")) => {
            let loss = action == "loss";
            r.unknown_keys(spec, if loss { LOSS_KEYS } else { PARTITION_KEYS }, "spec.");
            let (direction, peers, external) = r.network_peers(spec, &text_of, seed);
            if peers.is_none() && external.is_empty() {
                r.problems.push(format!(
                    "{name}: a {action} needs spec.target or spec.externalTargets: faultline \
                     never cuts all traffic by accident"
                ));
            }
            let duration = r.duration(spec);
            if loss {
                Action::Loss {
                    percent: r.loss_percent(spec),
                    direction,
                    peers,
                    external,
                    duration,
                }
            } else {
                Action::Partition {
                    direction,
                    peers,
                    external,
                    duration,
                }
            }
        }
        ("NetworkChaos", other) => {
            return Err(vec![format!(
                "{name}: NetworkChaos action {other:?} is not translated (only partition and \
                 loss; delay, duplicate, corrupt and bandwidth are not)"
            )]);
        }
        ("StressChaos", _) => {
            r.unknown_keys(spec, STRESS_KEYS, "spec.");
            let stressors = spec.get("stressors").cloned().unwrap_or_default();
            if let Some(map) = stressors.as_object() {
                for key in map.keys().filter(|k| k.as_str() != "cpu") {
                    r.problems.push(format!(
                        "{name}: spec.stressors.{key} is not translated (only cpu)"
                    ));
                }
            }
            let cpu = stressors.get("cpu").cloned().unwrap_or_default();
            if let Some(map) = cpu.as_object() {
                for key in map
                    .keys()
                    .filter(|k| !["workers", "load"].contains(&k.as_str()))
                {
                    r.problems.push(format!(
                        "{name}: spec.stressors.cpu.{key} is not translated"
                    ));
                }
            }
            let workers = cpu.get("workers").and_then(Value::as_u64);
            let workers = match workers {
                Some(w @ 1..=256) => w as u32,
                _ => {
                    r.problems.push(format!(
                        "{name}: spec.stressors.cpu.workers: expected 1 to 256"
                    ));
                    1
                }
            };
            let load = match cpu.get("load").and_then(Value::as_u64) {
                None => 100,
                Some(l @ 1..=100) => l as u8,
                Some(other) => {
                    r.problems.push(format!(
                        "{name}: spec.stressors.cpu.load {other}: expected 1 to 100"
                    ));
                    100
                }
            };
            r.notes.push(format!(
                "{name}: load {load} is taken as {load}% of the container's CPU quota, shared by \
                 the workers (Chaos Mesh loads {load}% of a CPU per worker; inside a CPU limit \
                 the quota caps both)"
            ));
            let containers = r.strings(spec.get("containerNames"), "spec.containerNames");
            if containers.len() > 1 {
                r.problems.push(format!(
                    "{name}: spec.containerNames names {} containers: faultline stresses one",
                    containers.len()
                ));
            }
            Action::Stress {
                workers,
                load,
                container: containers.into_iter().next(),
                duration: r.duration(spec),
            }
        }
        (kind, _) => {
            return Err(vec![format!("{name}: {kind} is not translated")]);
        }
    };
    let targets = r.targets(&spec_value, "spec.", seed);
    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    Ok(Translation {
        name,
        targets,
        action,
        notes: r.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const POD_KILL: &str = r#"
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
        let t = translate(POD_KILL, 7, false).unwrap();
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
        let t = translate(&text, 1, false).unwrap();
        assert_eq!(t.targets.namespaces, ["chaos-testing"]);
        assert_eq!(t.action, Action::PodKill(Grace::Seconds(15)));
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    }

    /// The loss example of Chaos Mesh's documentation (with a namespace).
    #[test]
    fn a_network_loss_drops_that_share_between_the_pods_and_the_target() {
        let manifest = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: loss
  namespace: shop
spec:
  action: loss
  mode: all
  selector:
    labelSelectors:
      'app': 'web-show'
  loss:
    loss: '25'
    correlation: '25'
  direction: to
  target:
    selector:
      labelSelectors:
        'app': 'db'
    mode: all
  duration: '10s'
"#;
        let t = translate(manifest, 1, false).unwrap();
        let Action::Loss {
            percent,
            direction,
            peers,
            external,
            duration,
        } = &t.action
        else {
            panic!("{:?}", t.action)
        };
        assert_eq!(*percent, 25);
        assert_eq!(direction, "to");
        assert_eq!(peers.as_ref().unwrap().labels, "app=db");
        assert!(external.is_empty());
        assert_eq!(*duration, Duration::from_secs(10));
        assert_eq!(
            t.notes,
            [
                "NetworkChaos/loss: spec.loss.correlation is ignored: faultline drops each packet \
              independently"
            ]
        );
        let bad = manifest.replace("loss: '25'", "loss: 'most'").replace(
            "  target:\n    selector:\n      labelSelectors:\n        'app': 'db'\n    mode: all\n",
            "",
        );
        assert_eq!(
            translate(&bad, 1, false).unwrap_err(),
            [
                "NetworkChaos/loss: a loss needs spec.target or spec.externalTargets: faultline \
                 never cuts all traffic by accident",
                "NetworkChaos/loss: spec.loss.loss \"most\": expected a percentage, 1 to 100",
            ]
        );
    }

    /// The container-kill example of Chaos Mesh's documentation.
    #[test]
    fn a_container_kill_kills_one_named_container() {
        let manifest = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: container-kill-example
  namespace: chaos-mesh
spec:
  action: container-kill
  mode: one
  containerNames: ['prometheus']
  selector:
    labelSelectors:
      'app.kubernetes.io/component': 'monitor'
"#;
        let t = translate(manifest, 1, false).unwrap();
        assert_eq!(
            t.action,
            Action::ContainerKill {
                container: "prometheus".into()
            }
        );
        assert_eq!(t.targets.namespaces, ["chaos-mesh"]);
        assert_eq!(t.targets.labels, "app.kubernetes.io/component=monitor");
        let two = manifest.replace("['prometheus']", "['prometheus', 'sidecar']");
        assert_eq!(
            translate(&two, 1, false).unwrap_err(),
            [
                "PodChaos/container-kill-example: spec.containerNames names 2 containers: \
                 faultline kills exactly one (one experiment per container)"
            ]
        );
    }

    #[test]
    fn what_cannot_be_translated_is_named() {
        let network = POD_KILL
            .replace("kind: PodChaos", "kind: NetworkChaos")
            .replace("action: pod-kill", "action: partition");
        let why = translate(&network, 1, false).unwrap_err();
        assert_eq!(
            why,
            [
                "NetworkChaos/checkout-kill: spec.gracePeriod is not translated",
                "NetworkChaos/checkout-kill: a partition needs spec.target or \
                 spec.externalTargets: faultline never cuts all traffic by accident",
                "NetworkChaos/checkout-kill: spec.duration is missing: faultline never holds a \
                 fault without an end",
            ]
        );
        let delay = network.replace("action: partition", "action: delay");
        assert!(translate(&delay, 1, false).unwrap_err()[0].contains("only partition"));
        let negative = POD_KILL.replace("gracePeriod: 0", "gracePeriod: -1");
        assert_eq!(
            translate(&negative, 1, false).unwrap_err(),
            ["PodChaos/checkout-kill: spec.gracePeriod -1: expected whole seconds, 0 or more"]
        );
        let two = format!("{delay}---\n{delay}");
        assert!(translate(&two, 1, false).unwrap_err()[0].starts_with("several YAML documents"));
        let failure = POD_KILL.replace("action: pod-kill", "action: pod-failure");
        assert!(translate(&failure, 1, false).unwrap_err()[0].contains("pod-failure"));
        let extra = POD_KILL
            .replace(
                "  gracePeriod: 0\n",
                "  gracePeriod: 0\n  scheduler: {cron: '@every 1m'}\n",
            )
            .replace(
                "      tier: web\n",
                "      tier: web\n    podPhaseSelectors: [Running]\n",
            );
        let why = translate(&extra, 1, false).unwrap_err();
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
        assert!(
            translate(&everything, 1, false).unwrap_err()[0].contains("never selects every pod")
        );
    }

    /// As Chaos Mesh's documentation writes a partition between two applications.
    pub(super) const PARTITION: &str = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata:
  name: partition
  namespace: shop
spec:
  action: partition
  mode: all
  selector:
    labelSelectors:
      app: checkout
  direction: both
  target:
    mode: one
    selector:
      namespaces: [shop]
      labelSelectors:
        app: inventory
  externalTargets: ["10.100.0.0/16"]
  duration: "1m30s"
"#;

    #[test]
    fn a_network_partition_becomes_a_partition_from_every_pod_of_its_target() {
        let t = translate(PARTITION, 3, false).unwrap();
        assert_eq!(t.name, "NetworkChaos/partition");
        assert_eq!(t.targets.namespaces, ["shop"]);
        assert_eq!(t.targets.labels, "app=checkout");
        assert_eq!(t.targets.mode, Mode::All);
        let Action::Partition {
            direction,
            peers,
            external,
            duration,
        } = t.action
        else {
            panic!("{:?}", t.action)
        };
        assert_eq!(direction, "both");
        let peers = peers.unwrap();
        assert_eq!(peers.labels, "app=inventory");
        assert_eq!(peers.mode, Mode::All);
        assert_eq!(external, ["10.100.0.0/16"]);
        assert_eq!(duration, Duration::from_secs(90));
        assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
        assert!(t.notes[0].contains("spec.target.mode one is taken as all"));

        let numbered = PARTITION.replace("[\"10.100.0.0/16\"]", "[\"10.100.0.0/16\", 5]");
        assert_eq!(
            translate(&numbered, 1, false).unwrap_err(),
            ["NetworkChaos/partition: spec.externalTargets: 5 is not a string"]
        );
        let named = PARTITION.replace("10.100.0.0/16", "db.example.com");
        assert!(translate(&named, 1, false).unwrap_err()[0].contains("not host names"));
        let forever = PARTITION.replace("  duration: \"1m30s\"\n", "");
        assert!(
            translate(&forever, 1, false).unwrap_err()[0]
                .contains("never holds a fault without an end")
        );
    }

    /// As Chaos Mesh's documentation writes a CPU stress.
    pub(super) const STRESS: &str = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: burn
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  containerNames: [checkout]
  stressors:
    cpu:
      workers: 2
      load: 80
  duration: "30s"
"#;

    #[test]
    fn a_cpu_stress_becomes_a_stress_in_the_named_container() {
        let t = translate(STRESS, 5, false).unwrap();
        assert_eq!(t.name, "StressChaos/burn");
        assert_eq!(t.targets.mode, Mode::One);
        assert_eq!(
            t.action,
            Action::Stress {
                workers: 2,
                load: 80,
                container: Some("checkout".into()),
                duration: Duration::from_secs(30),
            }
        );
        assert!(t.notes[0].contains("80% of the container's CPU quota"));
        let memory = STRESS.replace(
            "      load: 80\n",
            "      load: 80\n    memory:\n      workers: 1\n      size: 256MB\n",
        );
        assert_eq!(
            translate(&memory, 1, false).unwrap_err(),
            ["StressChaos/burn: spec.stressors.memory is not translated (only cpu)"]
        );
        let two = STRESS.replace("[checkout]", "[checkout, sidecar]");
        assert!(translate(&two, 1, false).unwrap_err()[0].contains("faultline stresses one"));
    }
}
