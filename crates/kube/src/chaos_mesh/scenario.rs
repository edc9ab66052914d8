//! A translated Chaos Mesh experiment as a faultline scenario of pods, which `faultline run`
//! carries out as any other: the target `selected` is the pods of `spec.selector`, `target`
//! those of a NetworkChaos `spec.target`. Pure.

use std::path::PathBuf;
use std::time::Duration;

use faultline_scenario::Scenario;
use faultline_scenario::model::{
    Assertion, AssertionCheck, Debug, Fault, FaultStep, Kubernetes, NetOptions, PodMode, PodTarget,
    Step, StepAction,
};

use super::{Action, Translation};
use crate::pods::{Grace, Targets};
use crate::select::Mode;

/// How long a translated pod kill waits for its replacement.
const REPLACED_WITHIN: Duration = Duration::from_secs(120);

/// A scenario, and what it does in one line (`partition of one of the pods of app=checkout in
/// shop from the pods of app=db (both) for 30s`).
#[derive(Debug, Clone)]
pub struct Translated {
    /// The scenario.
    pub scenario: Scenario,
    /// What it does.
    pub what: String,
}

fn pods(name: &str, targets: &Targets, container: Option<String>) -> PodTarget {
    PodTarget {
        name: name.to_owned(),
        namespaces: targets.namespaces.clone(),
        selector: targets.labels.clone(),
        fields: targets.fields.clone(),
        mode: match targets.mode {
            Mode::One => PodMode::One,
            Mode::All => PodMode::All,
            Mode::Fixed(n) => PodMode::Fixed(u32::try_from(n).unwrap_or(u32::MAX)),
            Mode::Percent(p) => PodMode::Percent(p),
        },
        container,
        pos: Default::default(),
    }
}

fn step(fault: Fault, duration: Duration) -> Step {
    Step {
        pos: Default::default(),
        action: StepAction::Fault(FaultStep {
            target: "selected".into(),
            fault,
            duration,
        }),
    }
}

/// `translation` as a scenario whose relative paths are read from `base_dir` (the manifest's
/// directory).
pub fn scenario(translation: &Translation, base_dir: PathBuf, allow_protected: bool) -> Translated {
    let mut targets = Vec::new();
    let mut assertions = Vec::new();
    // A network fault of the selected pods: its peers (the target's pods, then the external
    // addresses) and how they read.
    let network = |targets: &mut Vec<PodTarget>,
                   direction: &String,
                   peers: &Option<Targets>,
                   external: &Vec<String>| {
        targets.push(pods("selected", &translation.targets, None));
        let mut names = external.clone();
        if let Some(peers) = peers {
            targets.push(pods("target", peers, None));
            names.insert(0, "target".into());
        }
        let described = peers
            .iter()
            .map(|p| format!("the pods of {}", p.labels))
            .chain(external.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        let net = NetOptions {
            peers: names,
            ports: Vec::new(),
            protocol: None,
            direction: direction.clone(),
            reject: false,
        };
        (net, described)
    };
    // The selected pods, as every description names them.
    let selected = format!(
        "{} of the pods of {} in {}",
        translation.targets.mode,
        translation.targets.labels,
        translation.targets.namespaces.join(", ")
    );
    let (what, steps) = match &translation.action {
        Action::PodKill(grace) => {
            targets.push(pods("selected", &translation.targets, None));
            assertions.push(Assertion {
                pos: Default::default(),
                check: AssertionCheck::Replaced {
                    target: Some("selected".into()),
                    within: REPLACED_WITHIN,
                },
            });
            let grace = match grace {
                Grace::Force => Duration::ZERO,
                Grace::Seconds(s) => Duration::from_secs(u64::from(*s)),
            };
            (
                format!(
                    "pod-kill of {selected}, {}",
                    if grace.is_zero() {
                        "at once".to_owned()
                    } else {
                        format!("with a {}s grace period", grace.as_secs())
                    }
                ),
                vec![step(
                    Fault::PodKill {
                        grace,
                        timeout: REPLACED_WITHIN,
                    },
                    Duration::ZERO,
                )],
            )
        }
        Action::ContainerKill { container } => {
            targets.push(pods(
                "selected",
                &translation.targets,
                Some(container.clone()),
            ));
            (
                format!("container-kill of container {container} of {selected}"),
                vec![step(
                    Fault::Kill {
                        signal: "KILL".into(),
                        grace: Duration::ZERO,
                    },
                    Duration::ZERO,
                )],
            )
        }
        Action::Partition {
            direction,
            peers,
            external,
            duration,
        } => {
            let (net, described) = network(&mut targets, direction, peers, external);
            (
                format!(
                    "partition of {selected} from {described} ({direction}) for {}",
                    humantime::format_duration(*duration)
                ),
                vec![step(Fault::Partition(net), *duration)],
            )
        }
        Action::Loss {
            percent,
            direction,
            peers,
            external,
            duration,
        } => {
            let (net, described) = network(&mut targets, direction, peers, external);
            (
                format!(
                    "loss of {percent}% between {selected} and {described} ({direction}) for {}",
                    humantime::format_duration(*duration)
                ),
                vec![step(
                    Fault::Loss {
                        net,
                        percent: *percent,
                    },
                    *duration,
                )],
            )
        }
        Action::Stress {
            workers,
            load,
            container,
            duration,
        } => {
            targets.push(pods("selected", &translation.targets, container.clone()));
            (
                format!(
                    "CPU stress ({workers} workers, load {load}) of {selected}{} for {}",
                    container
                        .as_ref()
                        .map(|c| format!(", container {c}"))
                        .unwrap_or_default(),
                    humantime::format_duration(*duration)
                ),
                vec![step(
                    Fault::Stress {
                        workers: *workers,
                        load: *load,
                    },
                    *duration,
                )],
            )
        }
    };
    let scenario = Scenario {
        name: translation.name.clone(),
        description: Some(format!(
            "Chaos Mesh {} translated: {what}",
            translation.name
        )),
        base_dir,
        hosts: Vec::new(),
        processes: Vec::new(),
        pods: targets,
        kubernetes: Kubernetes {
            allow_protected_namespaces: allow_protected,
            ..Kubernetes::default()
        },
        debug: Debug::default(),
        probes: Vec::new(),
        crash_targets: vec!["selected".into()],
        dumps: Vec::new(),
        steps,
        assertions,
        lease: Duration::from_secs(5),
    };
    Translated { scenario, what }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PARTITION, POD_KILL, STRESS};
    use super::*;

    fn translated(text: &str) -> Translated {
        let translation = super::super::translate(text, 7, false).unwrap();
        scenario(&translation, PathBuf::from("/experiments"), false)
    }

    #[test]
    fn a_pod_kill_is_a_step_and_its_replacement_an_assertion() {
        let t = translated(POD_KILL);
        assert_eq!(
            t.what,
            "pod-kill of percent: 50 of the pods of app=checkout,tier=web in shop, at once"
        );
        let s = &t.scenario;
        assert_eq!(s.name, "PodChaos/checkout-kill");
        assert_eq!(s.base_dir, PathBuf::from("/experiments"));
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.pods[0].mode, PodMode::Percent(50.0));
        assert_eq!(s.crash_targets, ["selected"]);
        assert!(matches!(
            s.assertions[0].check,
            AssertionCheck::Replaced { within, .. } if within == REPLACED_WITHIN
        ));
        // It plans as a scenario file would.
        faultline_scenario::Plan::new(s, 7).unwrap();
    }

    #[test]
    fn a_partition_names_the_targets_pods_then_the_external_addresses_as_peers() {
        let t = translated(PARTITION);
        assert_eq!(
            t.what,
            "partition of all of the pods of app=checkout in shop from the pods of \
             app=inventory, 10.100.0.0/16 (both) for 1m 30s"
        );
        let names: Vec<&str> = t.scenario.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["selected", "target"]);
        let StepAction::Fault(step) = &t.scenario.steps[0].action else {
            panic!("not a fault: {:?}", t.scenario.steps[0]);
        };
        let Fault::Partition(net) = &step.fault else {
            panic!("not a partition: {:?}", step.fault);
        };
        assert_eq!(net.peers, ["target", "10.100.0.0/16"]);
        assert_eq!(step.duration, Duration::from_secs(90));
        faultline_scenario::Plan::new(&t.scenario, 7).unwrap();
    }

    #[test]
    fn a_stress_lands_in_the_named_container() {
        let t = translated(STRESS);
        assert_eq!(t.scenario.pods[0].container.as_deref(), Some("checkout"));
        assert!(
            t.what
                .starts_with("CPU stress (2 workers, load 80) of one of the pods")
        );
        faultline_scenario::Plan::new(&t.scenario, 7).unwrap();
    }
}
