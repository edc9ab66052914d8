//! The manifests in deploy/ read as the Kubernetes API's own types (k8s-openapi), and grant
//! no privilege docs/kubernetes.md does not justify.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = root().join("deploy").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn docs() -> String {
    std::fs::read_to_string(root().join("docs/kubernetes.md")).unwrap()
}

#[test]
fn the_agent_has_exactly_the_privileges_the_docs_justify() {
    let ds: DaemonSet = read("daemonset.yaml");
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_pid, Some(true), "pods are found by pid");
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_ipc, Some(true));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let [agent] = pod.containers.as_slice() else {
        panic!("one container")
    };
    let security = agent.security_context.clone().unwrap();
    assert_ne!(security.privileged, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let caps = security.capabilities.unwrap();
    assert_eq!(caps.drop.unwrap(), ["ALL"]);
    let added: BTreeSet<String> = caps.add.unwrap().into_iter().collect();
    let docs = docs();
    let justified: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split_once("` |"))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    assert_eq!(
        added, justified,
        "capabilities in daemonset.yaml vs docs/kubernetes.md"
    );

    // Host paths: each one named in the docs.
    for volume in pod.volumes.unwrap() {
        if let Some(host) = volume.host_path {
            assert!(
                docs.contains(&format!("`hostPath {}`", host.path)),
                "hostPath {} is not justified in docs/kubernetes.md",
                host.path
            );
        }
    }

    // Probes that connect to the API's port (it demands client certificates), the token and
    // the TLS files from their Secrets, requests set.
    for probe in [&agent.readiness_probe, &agent.liveness_probe] {
        let port = probe
            .as_ref()
            .and_then(|p| p.tcp_socket.as_ref())
            .map(|t| t.port.clone());
        assert_eq!(
            port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("api".into()))
        );
    }
    let args = agent.args.clone().unwrap().join(" ");
    assert!(args.starts_with("agent --listen tcp:"), "{args}");
    assert!(
        args.contains("--token-file /var/run/faultline/token"),
        "{args}"
    );
    assert!(
        args.contains("--policy /etc/faultline/policy.json"),
        "{args}"
    );
    for tls in [
        "--tls-cert /var/run/faultline/tls/tls.crt",
        "--tls-key /var/run/faultline/tls/tls.key",
        "--client-ca /var/run/faultline/tls/ca.crt",
    ] {
        assert!(args.contains(tls), "{args}");
    }
    let requests = agent.resources.clone().unwrap().requests.unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
}

#[test]
fn the_agent_reads_nothing_from_the_api_and_the_runner_only_what_it_uses() {
    let sa: ServiceAccount = read("serviceaccount.yaml");
    assert_eq!(sa.automount_service_account_token, Some(false));
    let ns: Namespace = read("namespace.yaml");
    assert_eq!(ns.metadata.name.as_deref(), Some("faultline-system"));
    let role: ClusterRole = read("runner-rbac.yaml");
    let mut granted: Vec<String> = Vec::new();
    for rule in role.rules.unwrap() {
        for resource in rule.resources.unwrap() {
            for verb in &rule.verbs {
                granted.push(format!("{resource} {verb}"));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "pods delete",
            "pods get",
            "pods list",
            "pods watch",
            "pods/log get",
            "pods/portforward create",
            "pods/portforward get"
        ]
    );
}

#[test]
fn the_policy_is_one_the_agent_accepts_and_limits_targets_to_pods() {
    let cm: ConfigMap = read("policy.yaml");
    let json = cm.data.unwrap()["policy.json"].clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, json).unwrap();
    let policy = faultline_agent::Policy::load(&file).unwrap();
    assert!(!policy.cgroup_prefixes.is_empty());
    assert!(
        policy
            .cgroup_prefixes
            .iter()
            .all(|p| p.to_string_lossy().contains("kubepods"))
    );
}
