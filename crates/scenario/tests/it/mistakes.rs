//! A scenario's mistakes are reported all at once, each with its line and column.

use std::path::Path;

use faultline_scenario::load;

/// Loads `text` and returns each problem as `line:column: message (hint)`.
fn problems(text: &str) -> Vec<String> {
    let invalid = load(text, Path::new("s.yaml")).unwrap_err();
    invalid
        .problems
        .iter()
        .map(|p| match &p.hint {
            Some(h) => format!("{}: {} ({h})", p.pos, p.message),
            None => format!("{}: {}", p.pos, p.message),
        })
        .collect()
}

#[test]
fn three_mistakes_are_three_problems_with_their_places() {
    let text = "\
name: three mistakes
lab:
  hosts:
    api: { command: [./api] }
    db: { command: [./db] }
steps:
  - partition: { target: api, peers: [db], for: 5 }
  - stress: { target: apu, load: 50, for: 5s }
  - pause: { target: db, for: 2s, sigal: STOP }
";
    assert_eq!(
        problems(text),
        [
            "7:49: partition: for: `5` is not a duration (time unit needed, for example 5sec or 5ms) \
             (write a number and a unit: 500ms, 5s, 2m, 1m30s)",
            "8:23: stress: target: `apu` is not a lab host or a process of this scenario \
             (did you mean `api`?)",
            "9:35: pause: unknown key `sigal` (known keys: target, for)",
        ]
    );
}

#[test]
fn references_types_and_combinations_are_checked() {
    let text = "\
name: refs
lab:
  hosts:
    api: { command: [./api], restart: sometimes, cpu: -1 }
probes:
  health: { http: { url: 'http://apx:8080/' }, tcp: { address: 'api:1' } }
captures:
  dumps:
    goroutines: { url: 'http://api:6060/debug/pprof/goroutine?debug=2', every: 10ms }
steps:
  - partition: { target: api, peers: [], for: 1s }
  - loss: { target: api, peers: [10.0.0.0/8], percent: 150, for: 1s, protocol: icmp, ports: [80] }
  - reboot: { target: api }
  - parallel:
      - wait: 1s
      - kill: { target: api, signal: SIGNOPE }
assertions:
  - probe_success: { probe: helth, min: 90% }
  - no_leaks: [goroutine]
  - never_fails: true
";
    let got = problems(text);
    let want = [
        "4:39: host api: restart: `sometimes` is not a restart policy (never, on-failure or always)",
        "4:55: host api: cpu (cores): -1 is out of range (0.01–1024)",
        "6:11: probe health: give exactly one of `http`, `tcp` or `command`",
        "6:26: probe health: http: `apx` is not a lab host (nor an IP address) (did you mean `api`?)",
        "9:80: dump goroutines: every: at least 50ms",
        "11:38: partition: peers is empty (name the lab hosts or addresses to cut off; never all traffic by accident)",
        "12:11: loss: icmp has no ports (drop `ports`, or use tcp or udp)",
        "12:56: loss: percent: 150 is out of range (1–100)",
        "13:5: unknown step `reboot` (steps: wait, parallel, partition, loss, pause, stress, kill, pod_kill)",
        "16:38: kill: signal: signal \"SIGNOPE\": expected TERM, KILL, INT, QUIT, HUP, USR1, USR2, ABRT or a number from 1 to 64",
        "18:29: probe_success: probe: no probe `helth` (did you mean `health`?)",
        "19:16: no_leaks: no dump capture `goroutine` (did you mean `goroutines`?)",
        "20:5: unknown assertion `never_fails` (assertions: probe_success, recovers, no_panics, no_races, no_leaks, replaced)",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn yaml_syntax_errors_and_duplicate_keys_have_a_place_too() {
    let got = problems("name: dup\nname: again\nsteps: []\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("2:"), "{got:?}");
    let got = problems("name: [unclosed\n");
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn a_scenario_without_steps_or_a_name_says_so() {
    let got = problems("description: nothing\n");
    assert_eq!(
        got,
        [
            "1:1: the scenario: `name` is missing",
            "1:1: the scenario: `steps` is missing"
        ]
    );
    let got = problems("name: empty\nsteps: []\n");
    assert_eq!(
        got,
        ["2:1: steps: the timeline is empty (add at least one step)"]
    );
}

#[test]
fn host_substitutions_must_name_a_host_declared_anywhere_in_the_lab() {
    let text = "\
name: refs
lab:
  hosts:
    api: { command: [./api, --db, '${hosts.db}:5432', --cache, '${hosts.cahce}:6379'] }
    db: { command: [./db], env: { PEER: '${hosts.ap' } }
    cache: { command: [./cache] }
steps:
  - wait: 1s
";
    assert_eq!(
        problems(text),
        [
            "4:64: host api: `${hosts.cahce}` names no lab host (did you mean `cache`?)",
            "5:41: host db: `${hosts.ap`: `${hosts.` is not closed (write ${hosts.NAME})",
        ]
    );
}

#[test]
fn pod_targets_are_checked_like_every_other_target() {
    let text = "\
name: pods
pods:
  checkout: { namespace: shop, selector: app=checkout, mode: some }
  inventory: { namespace: shop, selector: \"  \" }
  cart: { selector: app=cart, mode: { fixed: 0 } }
probes:
  cart:
    http: { url: \"http://chekout:8080/health\", status: 200, within: 1s }
    every: 1s
steps:
  - partition: { target: checkout, peers: [inventroy], for: 5s }
  - pod_kill: { target: checkout, grace: 0s }
  - pod_kill: { target: checkout, force: true, grace: 5s }
assertions:
  - replaced: { target: checkuot, within: 1m }
";
    assert_eq!(
        problems(text),
        [
            "3:62: pod target checkout: mode must be one of one, all, fixed, percent \
             (one, all, `{ fixed: N }` or `{ percent: P }`)",
            "4:43: pod target inventory: the selector is empty (a label selector such as \
             `app=checkout`: faultline never selects every pod of a namespace by accident)",
            "5:9: pod target cart: give its `namespace` (pods are chosen in named namespaces only)",
            "5:46: pod target cart: mode: fixed: 0 is out of range (1–10000)",
            "8:18: probe cart: http: `chekout` is not a lab host or a pod target (nor an IP \
             address) (did you mean `checkout`?)",
            "11:44: partition: peer `inventroy` is neither a lab host, a pod target nor an \
             address or CIDR (did you mean `inventory`?)",
            "12:42: pod_kill: a grace of 0 is `force: true` (write `force: true` to delete at once)",
            "13:55: pod_kill: give `grace` or `force: true`, not both",
            "15:25: replaced: `checkuot` is not a pod target (did you mean `checkout`?)",
        ]
    );
}

#[test]
fn protected_namespaces_need_a_yes_and_kubernetes_needs_pods() {
    let text = "\
name: protected
pods:
  dns: { namespace: kube-system, selector: k8s-app=kube-dns }
  api: { namespace: shop, selector: app=api, mode: { fixed: 1.5 } }
steps:
  - pod_kill: { target: dns }
";
    assert_eq!(
        problems(text),
        [
            "3:3: pod target dns: namespace kube-system is protected (set `kubernetes: { \
             allow_protected_namespaces: true }` to target it on purpose)",
            "4:61: pod target api: mode: fixed: 1.5 is not a whole number of pods",
        ]
    );
    let allowed =
        format!("{text}kubernetes: {{ allow_protected_namespaces: true }}\n").replace("1.5", "1");
    assert!(load(&allowed, Path::new("s.yaml")).is_ok());
    let lonely = "\
name: lonely
kubernetes: { context: staging }
processes:
  api: { pid: 1 }
steps:
  - pause: { target: api, for: 1s }
";
    assert_eq!(
        problems(lonely),
        [
            "2:1: kubernetes: the scenario has no `pods` to use it for (declare the pods to fault under `pods`)"
        ]
    );
}

#[test]
fn a_scenario_is_on_this_machine_or_on_a_cluster_and_pod_kill_needs_pods() {
    let text = "\
name: both
lab:
  hosts:
    api: { command: [./api] }
pods:
  checkout: { namespace: shop, selector: app=checkout }
steps:
  - pod_kill: { target: api }
";
    assert_eq!(
        problems(text),
        [
            "5:1: pods: a scenario runs either on this machine (`lab`, `processes`) or on a \
             cluster (`pods`), not both (split it into two scenarios)",
            "8:15: pod_kill: `api` is not a pod target (a pod kill deletes pods through the API \
             server: declare them under `pods`; `kill` signals a process)",
        ]
    );
}

#[test]
fn an_empty_container_a_zero_timeout_and_a_target_among_its_peers_are_mistakes() {
    let text = "\
name: more
pods:
  checkout: { namespace: shop, selector: app=checkout, container: \"\" }
probes:
  up: { tcp: { address: \"checkout:8080\" } }
steps:
  - pod_kill: { target: checkout, timeout: 0s }
  - partition: { target: checkout, peers: [checkout], for: 5s }
";
    assert_eq!(
        problems(text),
        [
            "3:67: pod target checkout: container is empty (a container's name, or leave \
             `container` out for the whole pod)",
            "5:25: probe up: tcp: `checkout` is a pod target, reached through a port-forward \
             whose loopback end accepts every connection: a TCP probe of it always succeeds \
             (use an http probe, `http: { url: \"http://checkout:8080/…\" }`, or probe the \
             Service's address from a job inside the cluster)",
            "7:44: pod_kill: timeout must be more than 0 (how long the replacement may take to \
             be Ready)",
            "8:16: partition: `checkout` is among its own peers (the peers are who the target \
             is cut off from)",
        ]
    );
}

#[test]
fn a_dns_name_is_a_probe_host_on_a_cluster_only() {
    let on_cluster = "\
name: svc
pods:
  checkout: { namespace: shop, selector: app=checkout }
probes:
  users: { http: { url: 'http://checkout.shop.svc:8080/health' } }
steps:
  - pod_kill: { target: checkout }
";
    let scenario = load(on_cluster, Path::new("s.yaml")).unwrap();
    assert_eq!(scenario.probes.len(), 1);
    let in_lab = "\
name: svc
lab:
  hosts:
    api: { command: [sleep, '60'] }
probes:
  users: { http: { url: 'http://api.shop.svc:8080/health' } }
steps:
  - kill: { target: api }
";
    assert_eq!(
        problems(in_lab),
        [
            "6:25: probe users: http: `api.shop.svc` is not a lab host (nor an IP address) (lab \
          hosts: api)"
        ]
    );
}

#[test]
fn selectors_fields_and_namespaces_are_checked_as_the_api_server_would() {
    let text = "\
name: typos
pods:
  checkout: { namespace: Shop_NS, selector: app=checkout }
  inventory: { namespace: shop, selector: 'app in (a,b', fields: garbage }
steps:
  - pod_kill: { target: checkout }
";
    assert_eq!(
        problems(text),
        [
            "3:13: pod target checkout: namespace `Shop_NS`: lowercase letters, digits and `-`, \
             starting and ending with a letter or digit, at most 63",
            "4:43: pod target inventory: selector `app in (a,b`: a `(` is not closed (a label \
             selector as kubectl -l takes it)",
            "4:66: pod target inventory: fields: `garbage`: expected KEY=VALUE, \
             KEY==VALUE or KEY!=VALUE (a field selector as kubectl --field-selector takes it)",
        ]
    );
}

#[test]
fn a_replaced_assertion_needs_a_pod_kill_to_judge() {
    let text = "\
name: nothing-killed
pods:
  checkout: { namespace: shop, selector: app=checkout }
  inventory: { namespace: shop, selector: app=inventory }
steps:
  - pod_kill: { target: inventory }
assertions:
  - replaced: { target: checkout, within: 1m }
  - replaced: { target: inventory, within: 1m }
";
    assert_eq!(
        problems(text),
        [
            "8:5: replaced: no pod_kill step on `checkout` to judge (add `- pod_kill: { target: … }` \
          to the steps)"
        ]
    );
}
