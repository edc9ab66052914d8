//! Two dumps, group by group: what appeared, grew, shrank, vanished.

use std::collections::HashMap;

use crate::group::{Group, Signature};

/// How a group changed between two dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Only in the newer dump.
    Appeared,
    /// More tasks in the newer dump.
    Grew,
    /// Fewer tasks in the newer dump.
    Shrank,
    /// Only in the older dump.
    Vanished,
    /// The same count in both.
    Unchanged,
}

/// One group's change.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupChange {
    /// What happened to it.
    pub change: Change,
    /// Its count in the older dump (0 if it appeared).
    pub before: u64,
    /// Its count in the newer dump (0 if it vanished).
    pub after: u64,
    /// The group as the newer dump has it (the older one's, if it vanished).
    pub group: Group,
}

impl GroupChange {
    /// `after - before`.
    pub fn delta(&self) -> i128 {
        i128::from(self.after) - i128::from(self.before)
    }
}

/// Compares groups made at the same level from two dumps. Largest change first; unchanged
/// groups last.
pub fn diff(old: &[Group], new: &[Group]) -> Vec<GroupChange> {
    let before: HashMap<&Signature, &Group> = old.iter().map(|g| (&g.signature, g)).collect();
    let mut seen: HashMap<&Signature, ()> = HashMap::new();
    let mut out: Vec<GroupChange> = new
        .iter()
        .map(|g| {
            seen.insert(&g.signature, ());
            let was = before.get(&g.signature).map_or(0, |o| o.count);
            let change = match (was, g.count) {
                _ if !before.contains_key(&g.signature) => Change::Appeared,
                (a, b) if b > a => Change::Grew,
                (a, b) if b < a => Change::Shrank,
                _ => Change::Unchanged,
            };
            GroupChange {
                change,
                before: was,
                after: g.count,
                group: g.clone(),
            }
        })
        .collect();
    out.extend(
        old.iter()
            .filter(|g| !seen.contains_key(&g.signature))
            .map(|g| GroupChange {
                change: Change::Vanished,
                before: g.count,
                after: 0,
                group: g.clone(),
            }),
    );
    out.sort_by(|a, b| {
        (a.change == Change::Unchanged)
            .cmp(&(b.change == Change::Unchanged))
            .then(b.delta().abs().cmp(&a.delta().abs()))
    });
    out
}
