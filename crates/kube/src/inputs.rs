//! Pods as inputs of `faultline analyze` and `faultline leaks`: an endpoint of a pod
//! (`pod://NAMESPACE/NAME:PORT/PATH`), reached through the API server's port-forward as
//! `kubectl port-forward` would, and the log of a container's previous run
//! (`pod:NAMESPACE/NAME[/CONTAINER]`), the one that crashed. Both with the current kubeconfig
//! context.

use crate::pods::Error;
use crate::session::{Forward, ForwardTo, Session};

/// `pod://NAMESPACE/NAME:PORT/PATH?QUERY`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUrl {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The port in the pod.
    pub port: u16,
    /// The path and query (`/debug/pprof/goroutine?debug=2`), `/` when none was given.
    pub path: String,
}

impl PodUrl {
    /// Reads what follows `pod://`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "pod://{spec}: expected pod://NAMESPACE/NAME:PORT/PATH \
                 (pod://shop/inventory-a:6060/debug/pprof/goroutine?debug=2)"
            )
        };
        let (namespace, rest) = spec.split_once('/').ok_or_else(expected)?;
        let (name, rest) = rest.split_once(':').ok_or_else(expected)?;
        let (port, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let port: u16 = port.parse().map_err(|_| expected())?;
        if namespace.is_empty() || name.is_empty() || port == 0 {
            return Err(expected());
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
            path,
        })
    }
}

/// A pod's endpoint reached through a port-forward, for as long as this value lives.
#[derive(Debug)]
pub struct PodEndpoint {
    /// `http://127.0.0.1:PORT/PATH`: the endpoint, forwarded.
    pub url: String,
    _forward: Forward,
    _session: Session,
}

impl PodEndpoint {
    /// Forwards `url`'s pod port to loopback.
    pub fn open(url: &PodUrl) -> Result<Self, Error> {
        let session = Session::connect(None)?;
        let forward =
            session.forward(&url.namespace, ForwardTo::Pod(url.name.clone()), url.port)?;
        Ok(Self {
            url: format!("http://{}{}", forward.local, url.path),
            _forward: forward,
            _session: session,
        })
    }
}

/// `pod:NAMESPACE/NAME[/CONTAINER]`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container (the pod's only one when not given).
    pub container: Option<String>,
}

impl PodLog {
    /// Reads what follows `pod:`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split('/').collect();
        let (namespace, pod, container) = match parts.as_slice() {
            [ns, pod] if !ns.is_empty() && !pod.is_empty() => (*ns, *pod, None),
            [ns, pod, c] if !ns.is_empty() && !pod.is_empty() && !c.is_empty() => {
                (*ns, *pod, Some(*c))
            }
            _ => {
                return Err(format!(
                    "pod:{spec}: expected pod:NAMESPACE/POD or pod:NAMESPACE/POD/CONTAINER"
                ));
            }
        };
        Ok(Self {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.map(str::to_owned),
        })
    }

    /// The log of the container's previous run.
    pub fn previous(&self) -> Result<String, Error> {
        let session = Session::connect(None)?;
        session.block_on(crate::pods::log(
            session.client(),
            &self.namespace,
            &self.pod,
            self.container.as_deref(),
            true,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_url_is_namespace_name_port_and_path() {
        let url = PodUrl::parse("shop/inventory-a:6060/debug/pprof/goroutine?debug=2").unwrap();
        assert_eq!(
            url,
            PodUrl {
                namespace: "shop".into(),
                name: "inventory-a".into(),
                port: 6060,
                path: "/debug/pprof/goroutine?debug=2".into(),
            }
        );
        assert_eq!(PodUrl::parse("shop/a:80").unwrap().path, "/");
        assert_eq!(
            PodUrl::parse("shop/a:80?debug=1").unwrap().path,
            "/?debug=1"
        );
        for bad in [
            "shop",
            "shop/a",
            "shop/a:",
            "shop/a:0/x",
            "/a:80",
            "shop/:80",
            "shop/a:http",
        ] {
            let e = PodUrl::parse(bad).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "pod://{bad}: expected pod://NAMESPACE/NAME:PORT/PATH"
                )),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_pod_log_is_namespace_pod_and_maybe_a_container() {
        assert_eq!(
            PodLog::parse("shop/checkout-1/app").unwrap(),
            PodLog {
                namespace: "shop".into(),
                pod: "checkout-1".into(),
                container: Some("app".into()),
            }
        );
        assert_eq!(PodLog::parse("shop/checkout-1").unwrap().container, None);
        for bad in ["shop", "shop/", "/p", "a/b/c/d", "a/b/"] {
            assert_eq!(
                PodLog::parse(bad).unwrap_err(),
                format!("pod:{bad}: expected pod:NAMESPACE/POD or pod:NAMESPACE/POD/CONTAINER")
            );
        }
    }
}
