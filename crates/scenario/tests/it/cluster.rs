//! The runner on a cluster, with a fake of the `Cluster` trait: pods chosen with the run's
//! seed, pod kills and their replacements judged, the previous logs of containers that
//! restarted during the run searched for panics, and an agent that cannot be reached ending
//! the run as an infrastructure error (exit 4) without skipping the fault quietly.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_scenario::cluster::{Cluster, ClusterPod, PodKilled};
use faultline_scenario::model::PodTarget;
use faultline_scenario::runner::{RunOptions, Verdict, run_on};
use faultline_scenario::{Plan, load};

#[derive(Default)]
struct FakeCluster {
    /// Calls of `pods`, to restart a container part-way.
    lists: AtomicUsize,
    /// checkout-b restarts at each listing of a target, up to twice, instead of once.
    crash_loop: bool,
    /// Listings per target, for `crash_loop`.
    listings: Mutex<std::collections::HashMap<String, u32>>,
    seen: Mutex<Vec<String>>,
}

fn pod(name: &str, restarts: u32) -> ClusterPod {
    ClusterPod {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: Some("node-1".into()),
        phase: "Running".into(),
        ready: true,
        ip: Some("10.244.1.7".into()),
        owner: Some("ReplicaSet/checkout-5d9f".into()),
        containers: vec![("checkout".into(), format!("containerd://{name}"))],
        restarts: vec![("checkout".into(), restarts)],
    }
}

impl Cluster for FakeCluster {
    fn describe(&self) -> String {
        "a fake cluster".into()
    }
    fn select(&self, target: &PodTarget, seed: u64) -> Result<Vec<ClusterPod>, String> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("select {} seed {seed}", target.name));
        Ok(vec![pod("checkout-a", 0)])
    }
    fn pods(&self, target: &PodTarget) -> Result<Vec<ClusterPod>, String> {
        // checkout-b restarts once after the run's start (or at each listing, up to twice).
        let n = self.lists.fetch_add(1, Ordering::SeqCst);
        let b = if self.crash_loop {
            let mut listings = self.listings.lock().unwrap();
            let seen = listings.entry(target.name.clone()).or_default();
            *seen += 1;
            (*seen - 1).min(2)
        } else {
            u32::from(n > 0)
        };
        Ok(vec![pod("checkout-a", 2), pod("checkout-b", b)])
    }
    fn agent(&self, node: &str) -> Result<faultline_agent::Client, String> {
        self.seen.lock().unwrap().push(format!("agent {node}"));
        // Nothing listens on port 1.
        Ok(faultline_agent::Client::new(
            faultline_agent::AgentAddr::Tcp("127.0.0.1:1".parse().unwrap()),
            None,
        ))
    }
    fn pod_kill(
        &self,
        _: &PodTarget,
        pod: &ClusterPod,
        grace: Duration,
        _: Duration,
    ) -> Result<PodKilled, String> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("kill {} grace {}s", pod.id(), grace.as_secs()));
        Ok(PodKilled {
            gone_after: Some(Duration::from_millis(1500)),
            replacement: Some("checkout-z".into()),
            ready_after: Some(Duration::from_millis(4200)),
        })
    }
    fn log(&self, pod: &ClusterPod, container: &str, previous: bool) -> Result<String, String> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("log {}/{container} previous={previous}", pod.id()));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let panic = std::fs::read_to_string(
            root.join("crates/dump/tests/fixtures/go/go1.19/default/panic.txt"),
        )
        .unwrap();
        // Each instance of a container logs which one it was.
        let instance = pod.restarts.first().map_or(0, |r| r.1);
        Ok(format!("serving on :8080 (instance {instance})\n{panic}"))
    }
    fn reach(&self, _: &PodTarget, _: u16) -> Result<SocketAddr, String> {
        Err("no forwards here".into())
    }
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        out_dir: dir.join("run"),
        helpers: faultline_agent::Helpers {
            exe: "/nonexistent".into(),
        },
        state_dir: dir.join("state"),
        agent: None,
        progress: false,
    }
}

/// Loads `text` as a scenario in `dir` and runs it with `seed` on `cluster`.
fn run_scenario(
    text: &str,
    dir: &Path,
    seed: u64,
    cluster: Option<Arc<dyn Cluster>>,
) -> faultline_scenario::runner::RunOutcome {
    let scenario = load(text, &dir.join("scenario.yaml")).unwrap();
    let plan = Plan::new(&scenario, seed).unwrap();
    let interrupts = faultline_fault::Interrupts::block();
    run_on(&scenario, &plan, &options(dir), &interrupts, cluster)
}

#[test]
fn a_pod_kill_is_judged_by_its_replacement_and_restarted_containers_are_searched() {
    let text = "\
name: kill
pods:
  checkout: { namespace: shop, selector: app=checkout }
steps:
  - pod_kill: { target: checkout, grace: 5s }
assertions:
  - replaced: { target: checkout, within: 10s }
  - no_panics: [checkout]
";
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(FakeCluster::default());
    let outcome = run_scenario(text, dir.path(), 42, Some(cluster.clone()));
    let seen = cluster.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "select checkout seed 42",
            "kill shop/checkout-a grace 5s",
            // checkout-a restarted before the run (2 both times): not read.
            "log shop/checkout-b/checkout previous=true",
        ]
    );
    assert_eq!(outcome.verdict, Verdict::Failed, "{:?}", outcome.judged);
    let replaced = &outcome.judged[0];
    assert!(replaced.passed, "{replaced:?}");
    assert_eq!(
        replaced.evidence,
        "shop/checkout-a replaced by checkout-z, Ready after 4.2s"
    );
    let kill = &outcome.evidence.faults[0];
    assert_eq!(kill.kind, "pod-kill");
    assert_eq!(kill.pod.as_deref(), Some("shop/checkout-a"));
    assert_eq!(kill.ready_after, Some(4.2));
    // The Go panic in checkout-b's previous log fails no_panics.
    let panics = &outcome.judged[1];
    assert!(!panics.passed);
    let crash = &outcome.evidence.crashes[0];
    assert_eq!(crash.target, "checkout");
    assert_eq!(
        crash.file,
        "pods/checkout/shop.checkout-b.checkout.restart-1.log"
    );
    assert_eq!(crash.kind, "go panic");
    assert!(
        dir.path()
            .join("run/pods/checkout/shop.checkout-b.checkout.restart-1.log")
            .exists()
    );
}

/// The kubelet keeps only a container's last previous log: the run reads each restart's while
/// it goes on, so a container that crashed twice leaves both crashes, and so does each target
/// whose pods it is among.
#[test]
fn each_restart_during_the_run_leaves_its_own_log() {
    let text = "\
name: crash loop
pods:
  checkout: { namespace: shop, selector: app=checkout }
  web: { namespace: shop, selector: tier=web }
steps:
  - wait: 5s
assertions:
  - no_panics: [checkout, web]
";
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(FakeCluster {
        crash_loop: true,
        ..FakeCluster::default()
    });
    let outcome = run_scenario(text, dir.path(), 1, Some(cluster.clone()));
    let seen = cluster.seen.lock().unwrap().clone();
    assert_eq!(seen, ["log shop/checkout-b/checkout previous=true"; 4]);
    assert_eq!(outcome.verdict, Verdict::Failed, "{:?}", outcome.judged);
    let files: Vec<&str> = outcome
        .evidence
        .crashes
        .iter()
        .map(|c| c.file.as_str())
        .collect();
    let expected = |target: &str, restart: u32| {
        format!("pods/{target}/shop.checkout-b.checkout.restart-{restart}.log")
    };
    assert_eq!(
        files,
        [
            expected("checkout", 1),
            expected("web", 1),
            expected("checkout", 2),
            expected("web", 2),
        ]
    );
    for target in ["checkout", "web"] {
        for restart in [1, 2] {
            let log =
                std::fs::read_to_string(dir.path().join("run").join(expected(target, restart)))
                    .unwrap();
            assert!(log.starts_with(&format!("serving on :8080 (instance {restart})")));
        }
    }
    let journal: Vec<&str> = outcome
        .events
        .iter()
        .map(|e| e.message.as_str())
        .filter(|w| w.contains("restarted"))
        .collect();
    assert_eq!(
        journal[0],
        format!(
            "shop/checkout-b container checkout restarted (restart 1): its previous log is {}",
            expected("checkout", 1)
        )
    );
    assert_eq!(journal.len(), 4, "{journal:#?}");
}

#[test]
fn an_agent_that_cannot_be_reached_ends_the_run_as_an_infrastructure_error() {
    let text = "\
name: stress
pods:
  checkout: { namespace: shop, selector: app=checkout, container: checkout }
steps:
  - stress: { target: checkout, workers: 1, for: 5s }
";
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_scenario(text, dir.path(), 1, Some(Arc::new(FakeCluster::default())));
    assert_eq!(outcome.verdict, Verdict::InfrastructureError);
    assert_eq!(outcome.verdict.exit_code(), 4);
    let error = outcome.infrastructure_error.unwrap();
    assert!(
        error.contains(
            "step 1: the faultline agent on node node-1 at tcp:127.0.0.1:1 is unreachable"
        ),
        "{error}"
    );
    // Not skipped quietly: the fault is in the report, not applied, with the reason.
    let fault = &outcome.evidence.faults[0];
    assert_eq!(fault.pod.as_deref(), Some("shop/checkout-a"));
    assert!(
        fault
            .applied
            .starts_with("not applied: the faultline agent"),
        "{}",
        fault.applied
    );
}

#[test]
fn a_scenario_of_pods_without_a_cluster_is_an_infrastructure_error() {
    let text = "\
name: nowhere
pods:
  checkout: { namespace: shop, selector: app=checkout }
steps:
  - pod_kill: { target: checkout }
";
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_scenario(text, dir.path(), 1, None);
    assert_eq!(outcome.verdict, Verdict::InfrastructureError);
    assert_eq!(
        outcome.infrastructure_error.as_deref(),
        Some("this scenario's targets are pods: it needs a cluster")
    );
}

#[test]
fn a_container_the_pod_does_not_run_ends_the_run_instead_of_skipping_the_fault() {
    let text = "\
name: typo
pods:
  checkout: { namespace: shop, selector: app=checkout, container: sidecar }
steps:
  - pause: { target: checkout, for: 5s }
";
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_scenario(text, dir.path(), 1, Some(Arc::new(FakeCluster::default())));
    assert_eq!(outcome.verdict, Verdict::InfrastructureError);
    assert_eq!(
        outcome.infrastructure_error.as_deref(),
        Some("step 1: pod shop/checkout-a has no running container sidecar (containers: checkout)")
    );
}

/// Pod peers are listed on a thread of their own, round after round, for as long as a fault
/// follows them.
#[test]
fn peers_are_listed_off_the_renewing_thread_while_followed() {
    use faultline_scenario::peer_watch::PeerWatch;
    let cluster: Arc<dyn Cluster> = Arc::new(FakeCluster::default());
    let watch = PeerWatch::start(cluster.clone(), Duration::from_millis(20));
    let scenario = load(
        "name: p\npods:\n  inventory: { namespace: shop, selector: app=inventory }\nsteps:\n  - pod_kill: { target: inventory }\n",
        Path::new("s.yaml"),
    )
    .unwrap();
    let peers = scenario.pods.clone();
    assert_eq!(watch.latest(&peers), None, "not followed yet");
    watch.follow(&peers);
    let mut listed = None;
    for _ in 0..500 {
        listed = watch.latest(&peers);
        if listed.as_ref().is_some_and(|(round, _)| *round >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (round, ips) = listed.expect("listed");
    assert!(round >= 2, "listed again and again");
    // Both fake pods share one address: sorted, without duplicates.
    assert_eq!(ips, Ok(vec!["10.244.1.7".to_owned()]));
    watch.retain(&[]);
    assert_eq!(watch.latest(&peers), None, "no longer followed");
}

/// A pod target that is both a crash target (its restarted containers' logs followed) and a
/// partition's peer (its addresses followed) is listed once per interval, not twice: the two
/// threads share their listings, as the runner wires them.
#[test]
fn a_pod_target_followed_twice_is_listed_once_per_interval() {
    use faultline_scenario::cluster::SharedListing;
    use faultline_scenario::peer_watch::PeerWatch;
    use faultline_scenario::pod_logs::{LOOK_EVERY, PodLogs};
    let fake = Arc::new(FakeCluster::default());
    let shared: Arc<dyn Cluster> = Arc::new(SharedListing::new(
        fake.clone(),
        LOOK_EVERY - Duration::from_millis(200),
    ));
    let scenario = load(
        "name: p\npods:\n  checkout: { namespace: shop, selector: app=checkout }\nsteps:\n  - pod_kill: { target: checkout }\n",
        Path::new("s.yaml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let watching = PodLogs::new(scenario.pods.clone(), dir.path()).watch(shared.clone());
    let watch = PeerWatch::start(shared, LOOK_EVERY);
    watch.follow(&scenario.pods);
    std::thread::sleep(LOOK_EVERY * 3 + Duration::from_millis(500));
    drop(watch);
    let _ = watching.stop();
    let listed = fake.lists.load(Ordering::SeqCst);
    // Three rounds of two followers: three or four listings (the first rounds may straddle),
    // never six.
    assert!((3..=4).contains(&listed), "{listed} listings");
}
