//! faultline-demo: a tiny "order service" that panics, for testing faultline end to end.
//!
//! It installs `faultline-capture`, prices a few hard-coded orders and panics while pricing the
//! last one, whose discount exceeds its price. The panic sits at the bottom of a call chain
//! `main` → `process_order` (never inlined) → `price_order` → `apply_discount` (both always
//! inlined), so a release build exercises symbolization of inlined frames.
//!
//! Lines that tests look for end in a marker comment (`faultline-marker` followed by a colon and
//! the line's name: `panic-site`, `call-apply-discount`, `call-price-order`,
//! `call-process-order`); tests find the line numbers by searching this file, so moving code
//! around does not break them. (This paragraph avoids spelling a marker out, so a search for
//! markers finds only the marked lines.)
//!
//! `FAULTLINE_DEMO_DISCOUNT` sets the last order's discount in percent (default 150). A value
//! of 100 or less lets the service finish without panicking (exit status 0).
//!
//! `faultline-demo serve --listen ADDR --inventory HOST:PORT` is the "checkout" service of
//! `scenarios/demo.yaml`: it answers `GET /health` and, five times a second, looks order 42's
//! price up in the inventory service (Go). When the inventory has been unreachable for
//! [`STALE_AFTER`], it prices the order from a stale local price list instead — whose
//! discount for order 42 is the bad 150% — and panics in `apply_discount`, the bug a
//! partition brings out.

use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

/// How long the inventory may be unreachable before checkout falls back to its stale list
/// (`--stale-after SECONDS` changes it).
const STALE_AFTER: Duration = Duration::from_millis(1500);

/// An order to price.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: u32,
    unit_price_cents: u64,
    quantity: u64,
    discount_pct: u64,
}

/// The last order's discount when `FAULTLINE_DEMO_DISCOUNT` is unset: more than the price.
const DEFAULT_LAST_DISCOUNT_PCT: u64 = 150;

fn main() {
    faultline_capture::install();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let listen = flag("--listen").unwrap_or_else(|| "127.0.0.1:8080".into());
        let inventory = flag("--inventory").unwrap_or_else(|| "127.0.0.1:6060".into());
        let stale_after = flag("--stale-after")
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(STALE_AFTER, Duration::from_secs_f64);
        serve(&listen, &inventory, stale_after);
        return;
    }
    println!(
        "faultline-demo: order service starting (pid {})",
        std::process::id()
    );

    let orders = load_orders();
    println!("faultline-demo: pricing {} orders", orders.len());
    let mut total_cents = 0;
    for order in &orders {
        total_cents += process_order(order); // faultline-marker: call-process-order
    }
    println!("faultline-demo: all orders priced, total {total_cents} cents");
}

/// The checkout service: health on `listen`, price lookups against `inventory` on this
/// thread. Returns only by panicking (see the module docs).
fn serve(listen: &str, inventory: &str, stale_after: Duration) {
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    println!("faultline-demo: checkout serving on {listen}, inventory at {inventory}");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    let mut last_good = Instant::now();
    loop {
        match lookup_price(inventory, 42) {
            Ok(cents) => {
                last_good = Instant::now();
                let order = Order {
                    id: 42,
                    unit_price_cents: cents,
                    quantity: 1,
                    discount_pct: 10,
                };
                black_box(process_order(&order));
            }
            Err(e) if last_good.elapsed() >= stale_after => {
                eprintln!(
                    "faultline-demo: inventory unreachable ({e}); pricing from the stale list"
                );
                let stale = load_orders();
                let order = stale[stale.len() - 1];
                black_box(process_order(&order));
            }
            Err(e) => eprintln!("faultline-demo: inventory: {e}; retrying"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /health` → 200; anything else → 404.
fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // Read the request head (up to its blank line) before answering.
    let mut request = Vec::new();
    let mut buf = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let healthy = request.starts_with(b"GET /health ");
    let reply: &[u8] = if healthy {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = stream.write_all(reply);
}

/// Order `item`'s unit price from the inventory service (`GET /price?item=N`).
fn lookup_price(inventory: &str, item: u32) -> Result<u64, String> {
    let addr = inventory
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let timeout = Duration::from_millis(300);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /price?item={item} HTTP/1.1\r\nHost: inventory\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let body = response.split("\r\n\r\n").nth(1).ok_or("no body")?;
    body.trim()
        .parse()
        .map_err(|_| format!("bad price {:?}", body.trim()))
}

/// The orders to price. The last discount comes from the environment, and all of them pass
/// through `black_box`, so the optimizer cannot see that the panic is reachable, or fold the
/// chain away.
fn load_orders() -> Vec<Order> {
    let last_discount = std::env::var("FAULTLINE_DEMO_DISCOUNT")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(DEFAULT_LAST_DISCOUNT_PCT);
    black_box(vec![
        Order {
            id: 40,
            unit_price_cents: 1_250,
            quantity: 2,
            discount_pct: 10,
        },
        Order {
            id: 41,
            unit_price_cents: 999,
            quantity: 1,
            discount_pct: 0,
        },
        Order {
            id: 42,
            unit_price_cents: 4_000,
            quantity: 3,
            discount_pct: last_discount,
        },
    ])
}

/// Prices one order and logs it. Never inlined, so it is a real frame even in release builds:
/// the frame the inlined `price_order` and `apply_discount` are found in.
#[inline(never)]
fn process_order(order: &Order) -> u64 {
    let net_cents = price_order(order); // faultline-marker: call-price-order
    println!("faultline-demo: order {} costs {net_cents} cents", order.id);
    net_cents
}

#[inline(always)]
fn price_order(order: &Order) -> u64 {
    let gross_cents = order.unit_price_cents * order.quantity;
    apply_discount(order.id, gross_cents, order.discount_pct) // faultline-marker: call-apply-discount
}

#[inline(always)]
fn apply_discount(id: u32, price_cents: u64, pct: u64) -> u64 {
    let discount_cents = price_cents * pct / 100;
    if discount_cents > price_cents {
        panic!("discount {pct}% exceeds the price of order {id}"); // faultline-marker: panic-site
    }
    price_cents - discount_cents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_orders_within_their_discount() {
        let order = Order {
            id: 1,
            unit_price_cents: 1_250,
            quantity: 2,
            discount_pct: 10,
        };
        assert_eq!(process_order(&order), 2_250);
        assert_eq!(apply_discount(2, 999, 100), 0);
    }

    /// End-to-end tests locate source lines by these markers; each must stay unique.
    #[test]
    fn each_marker_marks_exactly_one_line() {
        let source = include_str!("main.rs");
        // Assembled at run time so this test's own source is not a marker.
        let marker = |name: &str| format!("// faultline-{}: {name}", "marker");
        let names = [
            "panic-site",
            "call-apply-discount",
            "call-price-order",
            "call-process-order",
        ];
        for name in names {
            let lines = source
                .lines()
                .filter(|l| l.ends_with(&marker(name)))
                .count();
            assert_eq!(lines, 1, "marker {name}");
        }
        let all = source.matches(&marker("")).count();
        assert_eq!(all, names.len());
    }
}
