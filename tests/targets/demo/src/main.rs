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

use std::hint::black_box;

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
