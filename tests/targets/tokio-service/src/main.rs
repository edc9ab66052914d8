//! A tokio service with tasks stuck in known places, serving faultline task dumps.
//!
//! `tokio-service ADDR [--workers N] [--block-worker] [--workload NAME]` (a multi-thread runtime, 2 workers unless
//! told; 0 for a current-thread runtime) listens on ADDR (`127.0.0.1:0` picks a port) and prints
//! `listening on <addr>`. Expected in a dump: 3 tasks in `orders::wait_for_payment`, 2 in
//! `cache::refresh_every`, 1 in `ledger::append` (waiting for a lock held by main), plus the
//! endpoint's own accept loop. `--block-worker` then parks one worker in a blocking sleep, so
//! a dump cannot finish (tokio needs every worker to pause) and the endpoint answers 503.
//! `--workload NAME` adds a leak-detection workload (see `workloads::start`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, oneshot};

mod orders {
    use tokio::sync::oneshot;

    pub async fn wait_for_payment(paid: oneshot::Receiver<u64>) -> u64 {
        paid.await.unwrap_or(0) // faultline-marker: payment
    }
}

mod cache {
    use std::time::Duration;

    pub async fn refresh_every(period: Duration) {
        loop {
            tokio::time::sleep(period).await; // faultline-marker: refresh
        }
    }
}

mod ledger {
    use std::sync::Arc;

    use tokio::sync::Mutex;

    pub async fn append(ledger: Arc<Mutex<Vec<u64>>>, entry: u64) {
        ledger.lock().await.push(entry); // faultline-marker: ledger
    }
}

fn main() {
    faultline_capture::install();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let mut workers = 2;
    let mut block_worker = false;
    let mut workload = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--block-worker" => block_worker = true,
            "--workload" => workload = Some(args.next().expect("--workload NAME")),
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--workers N")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    // `--workers 0`: a current-thread runtime.
    let mut builder = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(serve(addr, block_worker, workload));
}

/// Leak-detection workloads (docs/leaks.md), on top of the stuck tasks above.
mod workloads {
    use std::time::Duration;

    use tokio::sync::oneshot;

    /// Awaits a reply whose sender was forgotten in a map that is never cleaned: leaks.
    pub async fn forgotten_reply(reply: oneshot::Receiver<u64>) -> u64 {
        reply.await.unwrap_or(0)
    }

    /// One short job of a burst.
    pub async fn burst_job(seconds: u64) {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }

    /// One of a fixed number of request handlers, each replaced when it ends.
    pub async fn handle_request(millis: u64) {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    /// One HTTP request: read up to the end of its head, take 300 ms, answer and close.
    pub async fn serve_request(stream: tokio::net::TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut answer: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndone\n";
        while !answer.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(answer) {
                Ok(n) => answer = &answer[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// Starts `name`: `steady-leak` (one forgotten reply per second), `burst-drain` (300 jobs
    /// at 3 s, all done by 13 s), `constant` (100 handlers, churned) or `http` (an HTTP server
    /// on a port of its own, printed as `handlers listening on <addr>`, whose every request
    /// is a task of its own living 300 ms: for a load generator to ramp up against).
    pub fn start(name: &str) {
        match name {
            "http" => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                listener.set_nonblocking(true).expect("non-blocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                println!(
                    "handlers listening on {}",
                    listener.local_addr().expect("bound")
                );
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(serve_request(stream));
                    }
                });
            }
            "steady-leak" => {
                tokio::spawn(async {
                    let mut forgotten = Vec::new();
                    loop {
                        let (tx, rx) = oneshot::channel();
                        forgotten.push(tx);
                        tokio::spawn(forgotten_reply(rx));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
            }
            "burst-drain" => {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    for i in 0..300 {
                        tokio::spawn(burst_job(1 + i % 10));
                    }
                });
            }
            "constant" => {
                for i in 0..100u64 {
                    tokio::spawn(async move {
                        loop {
                            tokio::spawn(handle_request(100 + (i * 37) % 400))
                                .await
                                .ok();
                        }
                    });
                }
            }
            other => panic!("unknown workload {other}"),
        }
    }
}

async fn serve(addr: String, block_worker: bool, workload: Option<String>) {
    if let Some(name) = &workload {
        workloads::start(name);
    }
    let mut payments = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel::<u64>();
        payments.push(tx);
        tokio::spawn(orders::wait_for_payment(rx));
    }
    for _ in 0..2 {
        tokio::spawn(cache::refresh_every(Duration::from_secs(3600)));
    }
    let ledger = Arc::new(Mutex::new(Vec::new()));
    let held = ledger.clone().lock_owned().await;
    tokio::spawn(ledger::append(ledger.clone(), 7));

    if block_worker {
        // A blocking call on a worker: the mistake that makes a dump hang.
        tokio::spawn(async { std::thread::sleep(Duration::from_secs(3600)) });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    println!("listening on {}", listener.local_addr().expect("bound"));
    tokio::spawn(faultline_capture::tasks::serve(
        listener,
        Duration::from_secs(2),
    ));
    // Runs until killed; keeps the sender halves and the lock alive.
    std::future::pending::<()>().await;
    drop((payments, held));
}
