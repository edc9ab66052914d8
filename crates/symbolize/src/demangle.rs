//! Function names for people and for diffing against other symbolizers.

use crate::Demangle;

/// Demangles `raw` by the unit's language, or by its mangling prefix when the language is not
/// known (symbol-table names). Names that are not mangled come back unchanged.
pub fn demangle(raw: &str, language: Option<gimli::DwLang>, style: Demangle) -> String {
    if style == Demangle::Off {
        return raw.to_owned();
    }
    let rust = || {
        if let Some(fast) = legacy(raw, style == Demangle::Short) {
            return Some(fast);
        }
        rustc_demangle::try_demangle(raw).ok().map(|d| match style {
            // v0 names carry no hash; their alternate form drops the crate disambiguators
            // (`std[e28293b1aa0f68bd]`), which is what llvm-symbolizer prints too.
            Demangle::Full if !raw.starts_with("_R") => d.to_string(),
            _ => format!("{d:#}"),
        })
    };
    let cpp = || {
        cpp_demangle::Symbol::new(raw)
            .ok()
            .and_then(|sym| sym.demangle().ok())
    };
    let demangled = match language {
        Some(gimli::DW_LANG_Rust) => rust(),
        Some(
            gimli::DW_LANG_C_plus_plus
            | gimli::DW_LANG_C_plus_plus_03
            | gimli::DW_LANG_C_plus_plus_11
            | gimli::DW_LANG_C_plus_plus_14
            | gimli::DW_LANG_C_plus_plus_17
            | gimli::DW_LANG_C_plus_plus_20,
        ) => cpp().or_else(rust),
        // Rust legacy symbols are valid Itanium names too; try Rust first so `$LT$` and the
        // hash are decoded the Rust way.
        _ if raw.starts_with("_R") || raw.starts_with("_ZN") => rust().or_else(cpp),
        _ if raw.starts_with("_Z") => cpp(),
        _ => None,
    };
    demangled.unwrap_or_else(|| raw.to_owned())
}

/// Rust legacy names (`_ZN…E`) without rustc-demangle's formatting machinery: the bulk of the
/// names in most Rust binaries, and the hot spot of symbolizing many addresses. Gives exactly
/// what rustc-demangle's `{}` (or, with `short`, `{:#}`) gives, and `None` for anything it does
/// not handle the same simple way (suffixes, non-ASCII, malformed input), which then takes the
/// general path.
fn legacy(raw: &str, short: bool) -> Option<String> {
    let inner = raw.strip_prefix("_ZN")?;
    if !inner.is_ascii() || raw.contains(".llvm.") {
        return None;
    }
    // Split into elements; the name must end exactly at the closing `E`.
    let mut elements: Vec<&str> = Vec::new();
    let mut rest = inner;
    loop {
        if let Some(after) = rest.strip_prefix('E') {
            if !after.is_empty() {
                return None;
            }
            break;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let len: usize = rest[..digits].parse().ok()?;
        let element = rest.get(digits..digits.checked_add(len)?)?;
        elements.push(element);
        rest = &rest[digits + len..];
    }
    if elements.is_empty() {
        return None;
    }
    let is_hash = |e: &str| e.starts_with('h') && e[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if short && elements.last().is_some_and(|e| is_hash(e)) {
        elements.pop();
    }
    let mut out = String::with_capacity(raw.len());
    for (n, element) in elements.iter().enumerate() {
        if n > 0 {
            out.push_str("::");
        }
        let mut e = if element.starts_with("_$") {
            &element[1..]
        } else {
            element
        };
        loop {
            if let Some(r) = e.strip_prefix("..") {
                out.push_str("::");
                e = r;
            } else if let Some(r) = e.strip_prefix('.') {
                out.push('.');
                e = r;
            } else if let Some(r) = e.strip_prefix('$') {
                let Some(end) = r.find('$') else { break };
                let (escape, after) = (&r[..end], &r[end + 1..]);
                let unescaped = match escape {
                    "SP" => '@',
                    "BP" => '*',
                    "RF" => '&',
                    "LT" => '<',
                    "GT" => '>',
                    "LP" => '(',
                    "RP" => ')',
                    "C" => ',',
                    _ => {
                        let digits = escape.strip_prefix('u');
                        let c = digits
                            .filter(|d| d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                            .and_then(|d| u32::from_str_radix(d, 16).ok())
                            .and_then(char::from_u32)
                            .filter(|c| !c.is_control());
                        match c {
                            Some(c) => c,
                            None => break,
                        }
                    }
                };
                out.push(unescaped);
                e = after;
            } else if let Some(i) = e.find(['$', '.']) {
                out.push_str(&e[..i]);
                e = &e[i..];
            } else {
                break;
            }
        }
        out.push_str(e);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, lang: Option<gimli::DwLang>, style: Demangle, expected: &str) {
        assert_eq!(demangle(raw, lang, style), expected, "{raw}");
    }

    #[test]
    fn rust_legacy() {
        let raw = "_ZN4core9panicking9panic_fmt17h0123456789abcdefE";
        check(
            raw,
            None,
            Demangle::Full,
            "core::panicking::panic_fmt::h0123456789abcdef",
        );
        check(raw, None, Demangle::Short, "core::panicking::panic_fmt");
        check(raw, Some(gimli::DW_LANG_Rust), Demangle::Off, raw);
        check(
            "_ZN70_$LT$alloc..vec..Vec$LT$T$C$A$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE",
            Some(gimli::DW_LANG_Rust),
            Demangle::Short,
            "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop",
        );
    }

    #[test]
    fn rust_v0() {
        check(
            "_RNvCs1234_7mycrate3foo",
            None,
            Demangle::Short,
            "mycrate::foo",
        );
    }

    #[test]
    fn cpp() {
        check(
            "_ZN3foo3barEi",
            Some(gimli::DW_LANG_C_plus_plus),
            Demangle::Full,
            "foo::bar(int)",
        );
        check("_Z3bazv", None, Demangle::Full, "baz()");
    }

    /// The fast legacy path against rustc-demangle itself, on every symbol of this test binary
    /// (thousands of real Rust names, generics and closures included) and on generated names
    /// full of escapes, malformed ones included.
    #[test]
    fn fast_legacy_path_matches_rustc_demangle() {
        use object::{Object, ObjectSymbol};
        let data = std::fs::read("/proc/self/exe").unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let mut names: Vec<String> = obj
            .symbols()
            .filter_map(|s| s.name().ok().map(str::to_owned))
            .filter(|n| n.starts_with("_ZN"))
            .collect();
        assert!(names.len() > 1000, "expected many Rust symbols");
        let pieces = [
            "$LT$",
            "$GT$",
            "$u20$",
            "$C$",
            "$RF$",
            "$BP$",
            "$SP$",
            "$LP$",
            "$RP$",
            "$u7b$",
            "$u7d$",
            "$u27$",
            "$uXY$",
            "$u$",
            "$",
            "..",
            ".",
            "_$",
            "foo",
            "h0123abcd",
            "E",
            "$u0$",
            "$u1f600$",
            "é",
        ];
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        for _ in 0..20_000 {
            let mut name = String::from("_ZN");
            for _ in 0..1 + next() % 4 {
                let element: String = (0..next() % 5)
                    .map(|_| pieces[next() % pieces.len()])
                    .collect();
                let len = if next() % 10 == 0 {
                    element.len() + 1
                } else {
                    element.len()
                };
                name.push_str(&format!("{len}{element}"));
            }
            if next() % 2 == 0 {
                name.push_str("17h0123456789abcdef");
            }
            match next() % 8 {
                0 => {}
                1 => name.push_str("E.llvm.1234"),
                2 => name.push_str("E.cold"),
                _ => name.push('E'),
            }
            names.push(name);
        }
        let mut fast = 0;
        for name in &names {
            for short in [false, true] {
                let Some(ours) = legacy(name, short) else {
                    continue;
                };
                fast += 1;
                let theirs = rustc_demangle::try_demangle(name)
                    .map(|d| {
                        if short {
                            format!("{d:#}")
                        } else {
                            d.to_string()
                        }
                    })
                    .unwrap_or_else(|_| {
                        panic!("fast path took {name:?}, rustc-demangle refused it")
                    });
                assert_eq!(ours, theirs, "{name} (short: {short})");
            }
        }
        assert!(
            fast > names.len(),
            "the fast path should handle most names ({fast})"
        );
    }

    #[test]
    fn plain_and_garbage_names_are_kept() {
        check("main", None, Demangle::Full, "main");
        check("_ZN", None, Demangle::Full, "_ZN");
        check("_R!!", None, Demangle::Short, "_R!!");
    }
}
