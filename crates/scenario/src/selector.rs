//! Kubernetes label selectors, field selectors and namespace names, checked as the API server
//! checks them, so that a typo fails `--dry-run` and the loader (exit 2) instead of the run on
//! the cluster (exit 4). Pure.

/// Checks a label selector: requirements separated by commas, each `key`, `!key`,
/// `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`,
/// `key>N` or `key<N`.
pub fn check_labels(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth > 0 => return Err("a `(` inside a value set".into()),
            '(' => depth += 1,
            ')' if depth == 0 => return Err("a `)` that closes nothing".into()),
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a `(` is not closed".into());
    }
    parts.push(&text[start..]);
    for part in parts {
        requirement(part.trim())?;
    }
    Ok(())
}

fn requirement(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("an empty requirement (two commas, or one at an end)".into());
    }
    if let Some(key) = text.strip_prefix('!') {
        return label_key(key.trim());
    }
    let end = text
        .find(|c: char| c.is_whitespace() || "=!<>(),".contains(c))
        .unwrap_or(text.len());
    let (key, rest) = text.split_at(end);
    if key.is_empty() {
        return Err(format!("`{text}` has no key before its operator"));
    }
    label_key(key)?;
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Ok(());
    }
    for op in ["==", "!=", "="] {
        if let Some(value) = rest.strip_prefix(op) {
            return label_value(value.trim());
        }
    }
    for op in [">", "<"] {
        if let Some(value) = rest.strip_prefix(op) {
            let value = value.trim();
            return value
                .parse::<i64>()
                .map(drop)
                .map_err(|_| format!("`{key} {op} {value}`: {op} compares with a whole number"));
        }
    }
    for op in ["notin", "in"] {
        let Some(set) = rest.strip_prefix(op) else {
            continue;
        };
        if !set.starts_with(|c: char| c.is_whitespace() || c == '(') {
            continue;
        }
        let set = set.trim();
        let Some(inner) = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
            return Err(format!(
                "`{key} {op}` needs a set of values in parentheses: (a,b)"
            ));
        };
        if inner.trim().is_empty() {
            return Err(format!("`{key} {op} ()`: the set of values is empty"));
        }
        for value in inner.split(',') {
            label_value(value.trim())?;
        }
        return Ok(());
    }
    Err(format!(
        "`{text}`: expected =, ==, !=, in (…), notin (…), > or < after `{key}`"
    ))
}

/// A label key: `name` or `prefix/name`, the prefix a DNS subdomain.
fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "label key `{key}`: its prefix must be a DNS subdomain (lowercase letters, digits, \
             `-` and `.`, at most 253)"
        ));
    }
    if name.is_empty() || !is_label_text(name) {
        return Err(format!(
            "label key `{key}`: a name of at most 63 letters, digits, `-`, `_` and `.`, \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_text(value) {
        return Ok(());
    }
    Err(format!(
        "label value `{value}`: at most 63 letters, digits, `-`, `_` and `.`, starting and \
         ending with a letter or digit"
    ))
}

fn is_label_text(text: &str) -> bool {
    text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && text.split('.').all(is_dns_label)
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a field selector: `key=value`, `key==value` or `key!=value`, separated by commas
/// (`status.phase=Running,spec.nodeName!=node-1`).
pub fn check_fields(text: &str) -> Result<(), String> {
    // Empty terms are skipped, as the API server skips them; a key is taken as it is written.
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some(at) = part.find(['=', '!']) else {
            return Err(format!(
                "`{part}`: expected KEY=VALUE, KEY==VALUE or KEY!=VALUE"
            ));
        };
        let key = &part[..at];
        let op_ok = ["==", "!=", "="]
            .iter()
            .any(|op| part[at..].starts_with(op));
        if key.is_empty()
            || !op_ok
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        {
            return Err(format!(
                "`{part}`: expected KEY=VALUE, KEY==VALUE or KEY!=VALUE (a key such as \
                 status.phase or spec.nodeName)"
            ));
        }
    }
    Ok(())
}

/// Checks a namespace's name: a DNS label (lowercase letters, digits and `-`, at most 63).
pub fn check_namespace(name: &str) -> Result<(), String> {
    if is_dns_label(name) {
        return Ok(());
    }
    Err(format!(
        "namespace `{name}`: lowercase letters, digits and `-`, starting and ending with a \
         letter or digit, at most 63"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_the_api_server_takes_pass() {
        for ok in [
            "app=checkout",
            "app==checkout,tier!=db",
            "app in (checkout, inventory),!canary",
            "environment notin (qa)",
            "app.kubernetes.io/name=checkout",
            "partition",
            "release=",
            "replicas>2",
        ] {
            assert_eq!(check_labels(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        let cases = [
            ("app in (a,b", "a `(` is not closed"),
            ("==", "`==` has no key before its operator"),
            (
                "app=a,,tier=b",
                "an empty requirement (two commas, or one at an end)",
            ),
            (
                "app ~ checkout",
                "`app ~ checkout`: expected =, ==, !=, in (…), notin (…), > or < after `app`",
            ),
            ("app in ()", "`app in ()`: the set of values is empty"),
            (
                "app in a,b",
                "`app in` needs a set of values in parentheses: (a,b)",
            ),
            (
                "app=check out",
                "label value `check out`: at most 63 letters, digits, `-`, `_` and `.`, \
                 starting and ending with a letter or digit",
            ),
            (
                "Example.com/app=x",
                "label key `Example.com/app`: its prefix must be a DNS subdomain (lowercase \
                 letters, digits, `-` and `.`, at most 253)",
            ),
            (
                "replicas>two",
                "`replicas > two`: > compares with a whole number",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(check_labels(text), Err(why.to_owned()), "{text}");
        }
    }

    #[test]
    fn field_selectors_and_namespaces() {
        assert_eq!(
            check_fields("status.phase=Running,spec.nodeName!=n1"),
            Ok(())
        );
        assert!(check_fields("garbage").is_err());
        assert!(check_fields("=Running").is_err());
        assert!(
            check_fields("status.phase = Running").is_err(),
            "a key has no spaces"
        );
        assert_eq!(check_fields("status.phase=Running,"), Ok(()));
        assert_eq!(check_namespace("shop-2"), Ok(()));
        assert!(check_namespace("Shop_NS").is_err());
        assert!(check_namespace("-shop").is_err());
    }
}
