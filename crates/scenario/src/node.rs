//! A YAML document as a tree of nodes that each know where they are, and the problems found
//! while reading it.
//!
//! serde stops at the first error, but a scenario's author wants every mistake at once. So
//! serde-saphyr reads the YAML into [`Node`]s that keep their line, column and byte span, and
//! [`crate::load`] walks the tree with [`Map`] and [`Problems`], reporting unknown keys, wrong
//! types and bad values as it goes, and carrying on.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where something is in the file: 1-based line and column, and the byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes (at least 1 when known).
    pub len: usize,
}

impl Pos {
    fn of<T>(spanned: &Spanned<T>) -> Self {
        Self::at(spanned.referenced)
    }

    fn at(at: serde_saphyr::Location) -> Self {
        let span = at.span();
        Self {
            line: at.line(),
            column: at.column(),
            offset: span.byte_offset().unwrap_or(0) as usize,
            len: span.byte_len().unwrap_or(0) as usize,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where it is.
    pub pos: Pos,
    /// What it is.
    pub value: Value,
}

/// The shapes a YAML value can take. Scalars keep their text; the walker decides what they
/// mean (a duration, a number, a host name).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order: (key, key position, value).
    Map(Vec<(String, Pos, Node)>),
}

impl Value {
    /// "a mapping", "a string", … for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Deserialized through [`Spanned`], so every value (and key) records its place.
struct Raw(Value);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Value::Number(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(Value::Number(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Value::Number(v.to_string())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(node(item));
        }
        Ok(Raw(Value::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let key_pos = Pos::of(&key);
            let key = match key.value.0 {
                Value::Str(s) | Value::Number(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Null => "~".into(),
                other => {
                    return Err(de::Error::custom(format!(
                        "a key must be plain text, not {}",
                        other.kind()
                    )));
                }
            };
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, key_pos, node(value)));
        }
        Ok(Raw(Value::Map(entries)))
    }
}

fn node(spanned: Spanned<Raw>) -> Node {
    let pos = Pos::of(&spanned);
    Node {
        pos,
        value: spanned.value.0,
    }
}

/// What could not be read from the YAML at all (a syntax error, a duplicate key).
#[derive(Debug)]
pub struct SyntaxError {
    /// Where, if known.
    pub pos: Option<Pos>,
    /// What.
    pub message: String,
}

/// Reads YAML text into a [`Node`] tree. Duplicate keys are refused.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str::<Spanned<Raw>>(text) {
        Ok(root) => Ok(node(root)),
        Err(e) => {
            let pos = e.location().map(Pos::at);
            // The error's own text repeats the location and may quote a snippet; keep the
            // first line, which says what is wrong.
            let message = e.to_string();
            let message = message.lines().next().unwrap_or_default().to_owned();
            Err(SyntaxError { pos, message })
        }
    }
}

/// One mistake: where, what, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// What would be right, if there is something to say.
    pub hint: Option<String>,
}

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems {
    /// In the order found.
    pub list: Vec<Problem>,
}

impl Problems {
    /// Records a problem.
    pub fn add(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.list.push(Problem {
            pos,
            message: message.into(),
            hint,
        });
    }

    /// Records that `node` is not the `expected` shape.
    pub fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.add(
            node.pos,
            format!("{what}: expected {expected}, found {}", node.value.kind()),
            None,
        );
    }
}

/// A mapping being read: fields are taken by name; [`Map::finish`] reports the keys nobody
/// took, with the closest known key as a hint.
#[derive(Debug)]
pub struct Map<'a> {
    /// Where the mapping is.
    pub pos: Pos,
    /// What the mapping is ("step 3: partition"), for messages.
    pub what: String,
    entries: &'a [(String, Pos, Node)],
    taken: Vec<&'static str>,
    known: &'static [&'static str],
}

impl<'a> Map<'a> {
    /// `node` as a mapping with the given known keys, or a problem.
    pub fn of(
        node: &'a Node,
        what: impl Into<String>,
        known: &'static [&'static str],
        problems: &mut Problems,
    ) -> Option<Self> {
        let what = what.into();
        match &node.value {
            Value::Map(entries) => Some(Self {
                pos: node.pos,
                what,
                entries,
                taken: Vec::new(),
                known,
            }),
            _ => {
                problems.wrong_type(node, &what, "a mapping");
                None
            }
        }
    }

    /// The value of `key`, if present (and not null).
    pub fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        self.taken.push(key);
        self.entries
            .iter()
            .find(|(k, _, v)| k == key && v.value != Value::Null)
            .map(|(_, _, v)| v)
    }

    /// The value of `key`, or a "missing" problem.
    pub fn require(&mut self, key: &'static str, problems: &mut Problems) -> Option<&'a Node> {
        let found = self.get(key);
        if found.is_none() {
            problems.add(self.pos, format!("{}: `{key}` is missing", self.what), None);
        }
        found
    }

    /// Reports every key not taken (and not known) as unknown.
    pub fn finish(self, problems: &mut Problems) {
        for (key, pos, _) in self.entries {
            if self.taken.contains(&key.as_str()) {
                continue;
            }
            let hint = match closest(key, self.known) {
                Some(near) => Some(format!("did you mean `{near}`?")),
                None => Some(format!("known keys: {}", self.known.join(", "))),
            };
            problems.add(*pos, format!("{}: unknown key `{key}`", self.what), hint);
        }
    }
}

/// The known name nearest to `name`, if it is near enough to be a typo.
pub fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Text of a scalar node (string, number or boolean), or a problem.
pub fn text<'a>(node: &'a Node, what: &str, problems: &mut Problems) -> Option<&'a str> {
    match &node.value {
        Value::Str(s) | Value::Number(s) => Some(s),
        _ => {
            problems.wrong_type(node, what, "text");
            None
        }
    }
}

/// A list of strings (a single string counts as a list of one).
pub fn strings(node: &Node, what: &str, problems: &mut Problems) -> Option<Vec<(String, Pos)>> {
    match &node.value {
        Value::Str(s) | Value::Number(s) => Some(vec![(s.clone(), node.pos)]),
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push((text(item, what, problems)?.to_owned(), item.pos));
            }
            Some(out)
        }
        _ => {
            problems.wrong_type(node, what, "a list of strings");
            None
        }
    }
}

/// A boolean, or a problem.
pub fn boolean(node: &Node, what: &str, problems: &mut Problems) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            problems.wrong_type(node, what, "true or false");
            None
        }
    }
}

/// A number within `range`, or a problem.
pub fn number(
    node: &Node,
    what: &str,
    range: std::ops::RangeInclusive<f64>,
    problems: &mut Problems,
) -> Option<f64> {
    let parsed = match &node.value {
        Value::Number(s) => s.parse::<f64>().ok(),
        Value::Str(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(x) if range.contains(&x) => Some(x),
        Some(x) => {
            problems.add(
                node.pos,
                format!(
                    "{what}: {x} is out of range ({}–{})",
                    range.start(),
                    range.end()
                ),
                None,
            );
            None
        }
        None => {
            problems.wrong_type(node, what, "a number");
            None
        }
    }
}

/// A duration like `500ms`, `5s`, `2m`, `1m30s`, or a problem with the accepted forms.
pub fn duration(node: &Node, what: &str, problems: &mut Problems) -> Option<std::time::Duration> {
    let text = text(node, what, problems)?;
    match humantime::parse_duration(text.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.add(
                node.pos,
                format!("{what}: `{text}` is not a duration ({e})"),
                Some("write a number and a unit: 500ms, 5s, 2m, 1m30s".into()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_and_key_knows_its_line_and_column() {
        let text = "name: demo\nsteps:\n  - wait: 5s\n  - partition:\n      for: 2s\n";
        let root = parse(text).unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("{root:?}")
        };
        let (key, key_pos, steps) = &entries[1];
        assert_eq!(key, "steps");
        assert_eq!((key_pos.line, key_pos.column), (2, 1));
        let Value::Seq(items) = &steps.value else {
            panic!()
        };
        assert_eq!((items[1].pos.line, items[1].pos.column), (4, 5));
        let Value::Map(step) = &items[1].value else {
            panic!()
        };
        let Value::Map(options) = &step[0].2.value else {
            panic!()
        };
        let (_, pos, value) = &options[0];
        assert_eq!((pos.line, pos.column), (5, 7));
        assert_eq!(value.value, Value::Str("2s".into()));
        assert_eq!(
            &text[value.pos.offset..value.pos.offset + value.pos.len],
            "2s"
        );
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_refused_with_a_place() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("uplicate"), "{}", err.message);
        assert_eq!(err.pos.map(|p| p.line), Some(2));
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.pos.is_some(), "{err:?}");
    }

    #[test]
    fn unknown_keys_are_reported_with_the_nearest_known_one() {
        let root = parse("peers: [a]\nfro: 2s\nwhatever: 1\n").unwrap();
        let mut problems = Problems::default();
        let mut map = Map::of(&root, "partition", &["peers", "for"], &mut problems).unwrap();
        map.get("peers");
        map.get("for");
        map.finish(&mut problems);
        let messages: Vec<_> = problems
            .list
            .iter()
            .map(|p| (p.pos.line, p.message.as_str(), p.hint.as_deref()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    2,
                    "partition: unknown key `fro`",
                    Some("did you mean `for`?")
                ),
                (
                    3,
                    "partition: unknown key `whatever`",
                    Some("known keys: peers, for")
                ),
            ]
        );
    }

    #[test]
    fn durations_take_units_and_say_which_forms_work() {
        let root = parse("[5s, 1m30s, 250ms, 5, soon]").unwrap();
        let Value::Seq(items) = &root.value else {
            panic!()
        };
        let mut problems = Problems::default();
        let parsed: Vec<_> = items
            .iter()
            .map(|n| duration(n, "for", &mut problems).map(|d| d.as_millis()))
            .collect();
        assert_eq!(parsed, [Some(5000), Some(90_000), Some(250), None, None]);
        assert_eq!(problems.list.len(), 2);
        assert!(
            problems.list[1]
                .message
                .contains("`soon` is not a duration")
        );
    }
}
