//! Spawns tasks stuck in known places, then prints a tokio task dump of them:
//! `alive tasks: N`, then for each task `task <id>:` and the trace's Display, a blank line
//! between tasks. Build with `RUSTFLAGS="--cfg tokio_unstable"` (see scripts/tokio-fixtures.sh).
//!
//! Expected: 3 tasks in `waiter::wait_for_order`, 2 in `sleeper::nap`, 1 in `locker::hold`.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Mutex, oneshot};

mod waiter {
    use tokio::sync::oneshot;

    #[inline(never)]
    pub async fn wait_for_order(rx: oneshot::Receiver<u32>) -> u32 {
        rx.await.unwrap_or(0)
    }
}

mod sleeper {
    use std::time::Duration;

    #[inline(never)]
    pub async fn nap(seconds: u64) {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

mod locker {
    use std::sync::Arc;

    use tokio::sync::Mutex;

    #[inline(never)]
    pub async fn hold(lock: Arc<Mutex<u32>>) -> u32 {
        let guard = lock.lock().await;
        *guard
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut senders = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel::<u32>();
        senders.push(tx);
        tokio::spawn(waiter::wait_for_order(rx));
    }
    for _ in 0..2 {
        tokio::spawn(sleeper::nap(3600));
    }
    let lock = Arc::new(Mutex::new(7));
    let guard = lock.clone().lock_owned().await;
    tokio::spawn(locker::hold(lock.clone()));

    // Let every task reach its await point.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let handle = Handle::current();
    println!("alive tasks: {}", handle.metrics().num_alive_tasks());
    let dump = match tokio::time::timeout(Duration::from_secs(5), handle.dump()).await {
        Ok(dump) => dump,
        Err(_) => {
            eprintln!("tokio-dump: the dump timed out");
            std::process::exit(1);
        }
    };
    for (i, task) in dump.tasks().iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("task {}:", task.id());
        println!("{}", task.trace());
    }
    drop(guard);
    drop(senders);
}
