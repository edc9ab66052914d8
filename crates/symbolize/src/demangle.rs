//! Function names for people and for diffing against other symbolizers.

use crate::Demangle;

/// Demangles `raw` by the unit's language, or by its mangling prefix when the language is not
/// known (symbol-table names). Names that are not mangled come back unchanged.
pub fn demangle(raw: &str, language: Option<gimli::DwLang>, style: Demangle) -> String {
    if style == Demangle::Off {
        return raw.to_owned();
    }
    let rust = || {
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

    #[test]
    fn plain_and_garbage_names_are_kept() {
        check("main", None, Demangle::Full, "main");
        check("_ZN", None, Demangle::Full, "_ZN");
        check("_R!!", None, Demangle::Short, "_R!!");
    }
}
