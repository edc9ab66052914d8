//! Which pods a fault hits: the pods a selector matched, narrowed to the Running and Ready ones
//! unless asked otherwise, then chosen by mode with a seed, so a run can be replayed. Pure.

use std::fmt;

/// A pod as the selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID (what the node agent finds it by).
    pub uid: String,
    /// The node it runs on.
    pub node: Option<String>,
    /// `status.phase`.
    pub phase: String,
    /// Whether its `Ready` condition is true.
    pub ready: bool,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// Its controlling owner (`ReplicaSet/checkout-5d9f`), if any.
    pub owner: Option<String>,
    /// Its containers' ids (`containerd://…`), by container name.
    pub containers: Vec<(String, String)>,
    /// `status.podIP`, once it has one.
    pub ip: Option<String>,
    /// Each container's `restartCount`, by container name.
    pub restarts: Vec<(String, u32)>,
}

/// How many of the matched pods are hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// One, chosen by the seed.
    One,
    /// All of them.
    All,
    /// N of them (all if fewer match).
    Fixed(usize),
    /// P percent of them, rounded up (at least one).
    Percent(f64),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::One => f.write_str("one"),
            Mode::All => f.write_str("all"),
            Mode::Fixed(n) => write!(f, "fixed: {n}"),
            Mode::Percent(p) => write!(f, "percent: {p}"),
        }
    }
}

/// Namespaces no fault may reach without an explicit override.
pub const PROTECTED: &[&str] = &["kube-system", "faultline-system"];

/// Why a selection chose nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The selector matched no pod that may be hit.
    NothingMatches(String),
    /// A protected namespace was asked for without the override.
    Protected(String),
    /// The mode does not make sense.
    BadMode(String),
    /// The agents' own namespace was asked for without the override.
    AgentsOwn(String),
    /// A pod has no running container of the name asked for.
    NoContainer {
        /// `namespace/name` of the pod.
        pod: String,
        /// The container asked for.
        wanted: String,
        /// The containers it has.
        containers: Vec<String>,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NothingMatches(why) | Refused::BadMode(why) => f.write_str(why),
            Refused::Protected(ns) => write!(
                f,
                "namespace {ns} is protected: faults there need --allow-protected-namespace"
            ),
            Refused::AgentsOwn(ns) => write!(
                f,
                "namespace {ns} is the agent's own: faults there need --allow-protected-namespace"
            ),
            Refused::NoContainer {
                pod,
                wanted,
                containers,
            } => write!(
                f,
                "--container {wanted}: pod {pod} has no running container of that name \
                 (containers: {})",
                containers.join(", ")
            ),
        }
    }
}

/// Refuses protected namespaces unless `allow_protected`.
pub fn check_namespaces(namespaces: &[String], allow_protected: bool) -> Result<(), Refused> {
    match namespaces
        .iter()
        .find(|ns| PROTECTED.contains(&ns.as_str()))
    {
        Some(ns) if !allow_protected => Err(Refused::Protected(ns.clone())),
        _ => Ok(()),
    }
}

/// [`check_namespaces`], and the agents' own namespace (`agent_namespace`) refused too: a
/// fault there could cut the agents off from their clients. `allow` lets both through.
pub fn check_protected(
    namespaces: &[String],
    agent_namespace: &str,
    allow: bool,
) -> Result<(), Refused> {
    if allow {
        return Ok(());
    }
    check_namespaces(namespaces, false)?;
    match namespaces.iter().find(|ns| *ns == agent_namespace) {
        Some(ns) => Err(Refused::AgentsOwn(ns.clone())),
        None => Ok(()),
    }
}

/// Chooses the pods to hit among `matched` (described by `what`, for the error): the Running,
/// Ready, not terminating ones unless `include_not_ready`; then by `mode`, drawn with `seed`
/// from the pods in namespace/name order.
pub fn choose(
    mut matched: Vec<PodRef>,
    mode: Mode,
    seed: u64,
    include_not_ready: bool,
    what: &str,
) -> Result<Vec<PodRef>, Refused> {
    let total = matched.len();
    if !include_not_ready {
        matched.retain(|p| p.phase == "Running" && p.ready && !p.terminating);
    }
    if matched.is_empty() {
        return Err(Refused::NothingMatches(if total == 0 {
            format!("{what} matches no pod")
        } else {
            format!("{what} matches {total} pods, none of them Running and Ready")
        }));
    }
    matched.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let n = match mode {
        Mode::All => matched.len(),
        Mode::One => 1,
        Mode::Fixed(0) => return Err(Refused::BadMode("fixed: 0 hits nothing".into())),
        Mode::Fixed(n) => n.min(matched.len()),
        Mode::Percent(p) if !(p > 0.0 && p <= 100.0) => {
            return Err(Refused::BadMode(format!(
                "percent: {p}: expected more than 0 and at most 100"
            )));
        }
        Mode::Percent(p) => {
            // At least one; rounded up, so 50% of 3 is 2.
            let n = (p / 100.0 * matched.len() as f64).ceil();
            (n as usize).clamp(1, matched.len())
        }
    };
    if n == matched.len() {
        return Ok(matched);
    }
    // A partial Fisher–Yates shuffle driven by the seed: the same seed, the same pods.
    let mut rng = SplitMix64(seed);
    for i in 0..n {
        let left = (matched.len() - i) as u64;
        let j = i + usize::try_from(rng.next() % left).unwrap_or(0);
        matched.swap(i, j);
    }
    matched.truncate(n);
    Ok(matched)
}

/// SplitMix64: small, fast, and the same everywhere (the seed is in the report).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ready: bool) -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: Some("node-1".into()),
            phase: phase.into(),
            ready,
            terminating: false,
            owner: Some("ReplicaSet/checkout-5d9f".into()),
            containers: Vec::new(),
            ip: None,
            restarts: Vec::new(),
        }
    }

    fn pods(n: usize) -> Vec<PodRef> {
        (0..n)
            .map(|i| pod(&format!("checkout-{i}"), "Running", true))
            .collect()
    }

    fn names(chosen: &[PodRef]) -> Vec<&str> {
        chosen.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn each_mode_takes_its_share_and_a_seed_replays_it() {
        let all = choose(pods(10), Mode::All, 1, false, "app=checkout").unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(choose(pods(10), Mode::One, 1, false, "x").unwrap().len(), 1);
        assert_eq!(
            choose(pods(10), Mode::Fixed(3), 1, false, "x")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            choose(pods(2), Mode::Fixed(5), 1, false, "x")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            choose(pods(3), Mode::Percent(50.0), 1, false, "x")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            choose(pods(10), Mode::Percent(1.0), 1, false, "x")
                .unwrap()
                .len(),
            1
        );
        let a = choose(pods(10), Mode::Fixed(3), 42, false, "x").unwrap();
        let b = choose(pods(10), Mode::Fixed(3), 42, false, "x").unwrap();
        assert_eq!(names(&a), names(&b), "same seed, same pods");
        // The order the API listed them in does not matter.
        let mut reversed = pods(10);
        reversed.reverse();
        let c = choose(reversed, Mode::Fixed(3), 42, false, "x").unwrap();
        assert_eq!(names(&a), names(&c));
        let others: Vec<Vec<String>> = (0..20)
            .map(|seed| {
                names(&choose(pods(10), Mode::Fixed(3), seed, false, "x").unwrap())
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        assert!(
            others.windows(2).any(|w| w[0] != w[1]),
            "seeds choose differently"
        );
    }

    #[test]
    fn only_running_and_ready_pods_unless_asked_and_nothing_is_an_error() {
        let mut matched = pods(2);
        matched.push(pod("checkout-pending", "Pending", false));
        matched.push(pod("checkout-unready", "Running", false));
        let mut going = pod("checkout-going", "Running", true);
        going.terminating = true;
        matched.push(going);
        let chosen = choose(matched.clone(), Mode::All, 1, false, "x").unwrap();
        assert_eq!(names(&chosen), ["checkout-0", "checkout-1"]);
        assert_eq!(choose(matched, Mode::All, 1, true, "x").unwrap().len(), 5);
        let none = choose(Vec::new(), Mode::All, 1, false, "app=nope in shop").unwrap_err();
        assert_eq!(none.to_string(), "app=nope in shop matches no pod");
        let unready = choose(
            vec![pod("a", "Pending", false)],
            Mode::All,
            1,
            false,
            "app=a",
        )
        .unwrap_err();
        assert_eq!(
            unready.to_string(),
            "app=a matches 1 pods, none of them Running and Ready"
        );
        assert!(choose(pods(2), Mode::Fixed(0), 1, false, "x").is_err());
        assert!(choose(pods(2), Mode::Percent(0.0), 1, false, "x").is_err());
        assert!(choose(pods(2), Mode::Percent(150.0), 1, false, "x").is_err());
    }

    #[test]
    fn protected_namespaces_need_the_override() {
        let asked = vec!["shop".to_owned(), "kube-system".to_owned()];
        let refused = check_namespaces(&asked, false).unwrap_err();
        assert!(
            refused.to_string().contains("kube-system is protected"),
            "{refused}"
        );
        assert!(check_namespaces(&asked, true).is_ok());
        assert!(check_namespaces(&["shop".to_owned()], false).is_ok());
    }

    #[test]
    fn protected_namespaces_and_the_agents_own_need_the_override() {
        let ns = |n: &str| vec![n.to_owned()];
        assert_eq!(
            check_protected(&ns("kube-system"), "faultline", false),
            Err(Refused::Protected("kube-system".into()))
        );
        let refused = check_protected(&ns("faultline"), "faultline", false).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "namespace faultline is the agent's own: faults there need --allow-protected-namespace"
        );
        assert_eq!(check_protected(&ns("shop"), "faultline", false), Ok(()));
        assert_eq!(check_protected(&ns("faultline"), "faultline", true), Ok(()));
        assert_eq!(
            check_protected(&ns("kube-system"), "faultline", true),
            Ok(())
        );
    }
}
