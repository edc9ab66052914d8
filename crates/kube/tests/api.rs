//! faultline-kube against a mock API server (a tower service standing in for kube's HTTP
//! stack): the requests it makes (selectors, grace periods, the watch) and how it reads the
//! answers, errors included.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_kube::{Error, Grace, Mode, Targets, kill, pods::select};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// Each request, as `METHOD path?query body`.
type Log = Arc<Mutex<Vec<String>>>;

/// A client whose API server is `answer(method, path and query, body) -> (status, body)`.
fn mock(
    answer: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static,
) -> (kube::Client, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let answer = Arc::new(answer);
    let service = tower::service_fn(move |request: Request<Body>| {
        let (seen, answer) = (seen.clone(), answer.clone());
        async move {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&body).into_owned();
            seen.lock()
                .unwrap()
                .push(format!("{method} {uri} {body}").trim().to_owned());
            let (status, text) = answer(&method, &uri, &body);
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(text.into_bytes()))
                    .unwrap(),
            )
        }
    });
    (kube::Client::new(service, "default"), log)
}

fn pod(name: &str, uid: &str, phase: &str, ready: bool, owner: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": uid,
            "resourceVersion": "100",
            "labels": {"app": "checkout"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                "uid": "rs-1", "controller": true
            }]
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "checkout", "image": "checkout:1"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{
                "name": "checkout", "ready": ready, "restartCount": 0, "image": "checkout:1",
                "imageID": "", "containerID": format!("containerd://{uid}-c")
            }]
        }
    })
}

fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "100"}, "items": items}).to_string()
}

fn status(code: u16, reason: &str, message: &str) -> (u16, String) {
    (
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}).to_string(),
    )
}

fn targets(mode: Mode) -> Targets {
    Targets {
        namespaces: vec!["shop".into()],
        labels: "app=checkout".into(),
        fields: None,
        mode,
        seed: 42,
        include_not_ready: false,
        allow_protected: false,
    }
}

#[tokio::test]
async fn select_lists_with_the_selectors_and_keeps_running_ready_pods() {
    let (client, log) = mock(|_, _, _| {
        (
            200,
            list(vec![
                pod("checkout-a", "u-a", "Running", true, "checkout-rs"),
                pod("checkout-b", "u-b", "Running", true, "checkout-rs"),
                pod("checkout-c", "u-c", "Pending", false, "checkout-rs"),
            ]),
        )
    });
    let mut asked = targets(Mode::All);
    asked.fields = Some("spec.nodeName=node-1".into());
    let chosen = select(&client, &asked).await.unwrap();
    let names: Vec<&str> = chosen.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["checkout-a", "checkout-b"]);
    assert_eq!(chosen[0].owner.as_deref(), Some("ReplicaSet/checkout-rs"));
    assert_eq!(chosen[0].node.as_deref(), Some("node-1"));
    assert_eq!(
        chosen[0].containers,
        [("checkout".to_owned(), "containerd://u-a-c".to_owned())]
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].starts_with("GET /api/v1/namespaces/shop/pods?")
            && log[0].contains("labelSelector=app%3Dcheckout")
            && log[0].contains("fieldSelector=spec.nodeName%3Dnode-1"),
        "{}",
        log[0]
    );
}

#[tokio::test]
async fn a_selector_that_matches_nothing_or_a_protected_namespace_is_an_error() {
    let (client, log) = mock(|_, _, _| (200, list(Vec::new())));
    let e = select(&client, &targets(Mode::One)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "selector app=checkout in shop matches no pod"
    );
    let mut protected = targets(Mode::One);
    protected.namespaces = vec!["kube-system".into()];
    let e = select(&client, &protected).await.unwrap_err();
    assert!(e.to_string().contains("kube-system is protected"), "{e}");
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "a protected namespace is not even listed"
    );
}

#[tokio::test]
async fn api_errors_say_what_was_done_and_what_the_server_said() {
    let (client, _) = mock(|_, _, _| {
        status(
            403,
            "Forbidden",
            "pods is forbidden: User \"ci\" cannot list resource \"pods\" in the namespace \"shop\"",
        )
    });
    let e = select(&client, &targets(Mode::One)).await.unwrap_err();
    assert!(matches!(e, Error::Api { code: 403, .. }));
    let text = e.to_string();
    assert!(
        text.starts_with("list pods app=checkout in shop: the API server refused (403 Forbidden): pods is forbidden")
            && text.contains("deploy/runner-rbac.yaml"),
        "{text}"
    );
    let (client, _) = mock(|_, _, _| status(500, "InternalError", "etcdserver: request timed out"));
    let e = select(&client, &targets(Mode::One)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "list pods app=checkout in shop: the API server failed (500): etcdserver: request timed out"
    );
    let victim = faultline_kube::pods::pod_ref(
        &serde_json::from_value(pod("checkout-a", "u-a", "Running", true, "checkout-rs")).unwrap(),
    );
    for (code, reason, says) in [
        (
            404,
            "NotFound",
            "delete pod shop/checkout-a: not found (404): pods \"checkout-a\" not found",
        ),
        (
            409,
            "Conflict",
            "delete pod shop/checkout-a: conflict (409): the object has been modified",
        ),
    ] {
        let message = if code == 404 {
            "pods \"checkout-a\" not found"
        } else {
            "the object has been modified"
        };
        // The list before the delete answers; the delete is refused.
        let (client, _) = mock(move |method, _, _| match method {
            "GET" => (200, list(Vec::new())),
            _ => status(code, reason, message),
        });
        let e = kill(
            &client,
            &victim,
            "app=checkout",
            Grace::Seconds(30),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), says);
    }
}

#[tokio::test]
async fn a_pod_kill_deletes_with_the_grace_period_and_waits_for_the_replacement() {
    let old = pod("checkout-a", "u-a", "Running", true, "checkout-rs");
    let victim = faultline_kube::pods::pod_ref(&serde_json::from_value(old.clone()).unwrap());
    let sibling = pod("checkout-b", "u-b", "Running", true, "checkout-rs");
    let (client, log) = mock(move |method, uri, _| match method {
        "DELETE" => (200, old.to_string()),
        // Still there, terminating.
        "GET" if uri.starts_with("/api/v1/namespaces/shop/pods/checkout-a") => {
            (200, old.to_string())
        }
        "GET" if uri.contains("watch=true") => {
            let events = [
                // A replica that was there before the delete is not its replacement.
                json!({"type": "ADDED", "object": sibling.clone()}),
                json!({"type": "ADDED", "object": pod("checkout-z", "u-z", "Pending", false, "checkout-rs")}),
                json!({"type": "ADDED", "object": pod("other-q", "u-q", "Running", true, "other-rs")}),
                json!({"type": "DELETED", "object": pod("checkout-a", "u-a", "Running", false, "checkout-rs")}),
                json!({"type": "MODIFIED", "object": pod("checkout-z", "u-z", "Running", true, "checkout-rs")}),
            ];
            (
                200,
                events
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n",
            )
        }
        "GET" => (200, list(vec![old.clone(), sibling.clone()])),
        _ => status(500, "InternalError", "unexpected"),
    });
    let report = kill(
        &client,
        &victim,
        "app=checkout",
        Grace::Seconds(30),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(report.gone_after.is_some());
    assert_eq!(
        report.replacement.as_deref(),
        Some("checkout-z"),
        "same controller, not other-q"
    );
    assert!(report.ready_after.is_some());
    let log = log.lock().unwrap().clone();
    assert!(
        log[0].starts_with("GET /api/v1/namespaces/shop/pods?")
            && log[0].contains("labelSelector=app%3Dcheckout"),
        "{}",
        log[0]
    );
    assert!(
        log[1].starts_with("DELETE /api/v1/namespaces/shop/pods/checkout-a"),
        "{}",
        log[1]
    );
    assert!(log[1].contains("\"gracePeriodSeconds\":30"), "{}", log[1]);
    assert!(
        log[3].contains("watch=true")
            && log[3].contains("labelSelector=app%3Dcheckout")
            && log[3].contains("resourceVersion=100"),
        "from the list's version: {}",
        log[3]
    );

    // --force: grace 0.
    let (client, log) = mock(|method, uri, _| match method {
        "DELETE" => (
            200,
            pod("checkout-a", "u-a", "Running", true, "checkout-rs").to_string(),
        ),
        "GET" if uri.contains("/pods?") => (200, list(Vec::new())),
        "GET" => status(404, "NotFound", "gone"),
        _ => status(500, "InternalError", "unexpected"),
    });
    let _ = kill(
        &client,
        &victim,
        "app=checkout",
        Grace::Force,
        Duration::from_millis(200),
    )
    .await;
    assert!(log.lock().unwrap()[1].contains("\"gracePeriodSeconds\":0"));
}

#[tokio::test]
async fn a_watch_that_keeps_ending_is_an_error_and_no_replacement_in_time_is_reported() {
    let old = pod("checkout-a", "u-a", "Running", true, "checkout-rs");
    let victim = faultline_kube::pods::pod_ref(&serde_json::from_value(old.clone()).unwrap());
    let deleted = old.clone();
    let (client, _) = mock(move |method, uri, _| match method {
        "DELETE" => (200, deleted.to_string()),
        "GET" if uri.contains("watch=true") => (200, String::new()),
        "GET" if uri.contains("/pods?") => (200, list(vec![deleted.clone()])),
        "GET" => (200, deleted.to_string()),
        _ => status(500, "InternalError", "unexpected"),
    });
    let e = kill(
        &client,
        &victim,
        "app=checkout",
        Grace::Seconds(1),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "watch pods app=checkout in shop: the watch ended 3 times without an event"
        ),
        "{e}"
    );

    // The pod goes, but nothing replaces it within the timeout: the report says so.
    let gone = old.clone();
    let (client, _) = mock(move |method, uri, _| match method {
        "DELETE" => (200, gone.to_string()),
        "GET" if uri.contains("watch=true") => (
            200,
            json!({"type": "DELETED", "object": gone.clone()}).to_string() + "\n",
        ),
        "GET" if uri.contains("/pods?") => (200, list(vec![gone.clone()])),
        "GET" => status(404, "NotFound", "gone"),
        _ => status(500, "InternalError", "unexpected"),
    });
    let report = kill(
        &client,
        &victim,
        "app=checkout",
        Grace::Seconds(1),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert!(report.gone_after.is_some());
    assert_eq!(report.ready_after, None);
    assert_eq!(report.replacement, None);
}

/// A watch that answers 410 Gone is followed by a new listing, which tells what happened
/// meanwhile; pods of one controller killed at once each need a replacement of their own.
#[tokio::test]
async fn a_410_lists_again_and_pods_killed_at_once_each_get_their_own_replacement() {
    let old = pod("checkout-a", "u-a", "Running", true, "checkout-rs");
    let victim = faultline_kube::pods::pod_ref(&serde_json::from_value(old.clone()).unwrap());
    let lists = Arc::new(Mutex::new(0));
    let counted = lists.clone();
    let (client, log) = mock(move |method, uri, _| match method {
        "DELETE" => (200, old.to_string()),
        "GET" if uri.contains("watch=true") => (
            200,
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "code": 410, "reason": "Expired", "message": "too old"}})
            .to_string()
                + "\n",
        ),
        "GET" if uri.contains("/pods?") => {
            let mut n = counted.lock().unwrap();
            *n += 1;
            if *n == 1 {
                // Before the delete.
                return (200, list(vec![old.clone()]));
            }
            // After the 410: checkout-a is gone, and its replacement Ready.
            (
                200,
                list(vec![pod(
                    "checkout-z",
                    "u-z",
                    "Running",
                    true,
                    "checkout-rs",
                )]),
            )
        }
        "GET" => (200, old.to_string()),
        _ => status(500, "InternalError", "unexpected"),
    });
    let share = faultline_kube::KillShare::default();
    let report = faultline_kube::kill_claiming(
        &client,
        &victim,
        "app=checkout",
        Grace::Seconds(1),
        Duration::from_secs(10),
        &share,
    )
    .await
    .unwrap();
    assert!(report.gone_after.is_some());
    assert_eq!(report.replacement.as_deref(), Some("checkout-z"));
    assert!(share.taken("u-z"));
    assert_eq!(*lists.lock().unwrap(), 2, "{:#?}", log.lock().unwrap());

    // Two pods of one controller killed at once: two replacements, one each, even though both
    // watches see both.
    let (a, b) = (
        pod("checkout-a", "u-a", "Running", true, "checkout-rs"),
        pod("checkout-b", "u-b", "Running", true, "checkout-rs"),
    );
    let victims = [&a, &b]
        .map(|p| faultline_kube::pods::pod_ref(&serde_json::from_value(p.clone()).unwrap()));
    let (client, _) = mock(move |method, uri, _| match method {
        "DELETE" if uri.contains("checkout-a") => (200, a.to_string()),
        "DELETE" => (200, b.to_string()),
        "GET" if uri.contains("watch=true") => {
            let events = [
                json!({"type": "ADDED", "object": pod("checkout-y", "u-y", "Running", true, "checkout-rs")}),
                json!({"type": "ADDED", "object": pod("checkout-z", "u-z", "Running", true, "checkout-rs")}),
            ];
            (
                200,
                events
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n",
            )
        }
        "GET" if uri.contains("/pods?") => (200, list(vec![a.clone(), b.clone()])),
        "GET" => status(404, "NotFound", "gone"),
        _ => status(500, "InternalError", "unexpected"),
    });
    let share = faultline_kube::KillShare::default();
    let kill_one = |victim| {
        faultline_kube::kill_claiming(
            &client,
            victim,
            "app=checkout",
            Grace::Seconds(1),
            Duration::from_secs(10),
            &share,
        )
    };
    let (first, second) = tokio::join!(kill_one(&victims[0]), kill_one(&victims[1]));
    let mut replacements = [first.unwrap().replacement, second.unwrap().replacement];
    replacements.sort();
    assert_eq!(
        replacements,
        [Some("checkout-y".to_owned()), Some("checkout-z".to_owned())]
    );

    // A pod without a controller: nothing will replace it, so only its going is waited for.
    let mut orphan = pod("debug-a", "u-d", "Running", true, "none");
    orphan["metadata"]["ownerReferences"] = json!([]);
    let victim = faultline_kube::pods::pod_ref(&serde_json::from_value(orphan.clone()).unwrap());
    let (client, log) = mock(move |method, uri, _| match method {
        "DELETE" => (200, orphan.to_string()),
        "GET" if uri.contains("/pods?") => (200, list(Vec::new())),
        "GET" => status(404, "NotFound", "gone"),
        _ => status(500, "InternalError", "unexpected"),
    });
    let report = kill(
        &client,
        &victim,
        "app=debug",
        Grace::Seconds(1),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(report.gone_after.is_some());
    assert_eq!(report.replacement, None);
    let log = log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|r| r.contains("watch=true")),
        "no watch for a replacement: {log:#?}"
    );
}

#[tokio::test]
async fn a_crashed_containers_previous_log_is_read() {
    let (client, log) = mock(|_, uri, _| {
        if uri.contains("previous=true") {
            (
                200,
                "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:9 +0x1d\n"
                    .into(),
            )
        } else {
            status(
                400,
                "BadRequest",
                "previous terminated container \"checkout\" in pod \"checkout-a\" not found",
            )
        }
    });
    let text = faultline_kube::pods::log(&client, "shop", "checkout-a", Some("checkout"), true)
        .await
        .unwrap();
    assert!(text.starts_with("panic: boom"), "{text}");
    let request = log.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET /api/v1/namespaces/shop/pods/checkout-a/log?")
            && request.contains("container=checkout")
            && request.contains("previous=true"),
        "{request}"
    );
    let e = faultline_kube::pods::log(&client, "shop", "checkout-a", Some("checkout"), false)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "read the log of shop/checkout-a container checkout: the API server failed (400): previous terminated container \"checkout\" in pod \"checkout-a\" not found"
    );
}
