//! Names from sensors are untrusted text. This module says which characters a name may
//! hold, and makes any text safe to print in a terminal table or a spreadsheet cell.
//!
//! A name (tenant, site, sensor, zone, device id) may hold any Unicode text except:
//! - control characters: C0 (U+0000–U+001F: NUL, tab, newline, carriage return, ESC...),
//!   DEL (U+007F) and C1 (U+0080–U+009F), which rewrite terminals and split lines;
//! - bidirectional controls: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069, which
//!   make text display in another order than it is stored ("Trojan Source");
//! - invisible separators and joiners: U+200B–U+200D, U+2028, U+2029, U+FEFF, which make
//!   two different names look the same or break lines.

use std::borrow::Cow;

/// Whether `c` may not appear in a name (see the module documentation).
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// The first forbidden character of `s`, if any. Printable ASCII, the common case, is
/// checked a byte at a time.
pub fn first_forbidden(s: &str) -> Option<char> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    s.chars().find(|&c| is_forbidden(c))
}

/// `s` with every forbidden character shown as a visible escape (`\u{1b}`), for
/// terminal tables: what was stored stays recognisable, and nothing it holds can move the
/// cursor, change colours or reorder the line.
pub fn printable(s: &str) -> Cow<'_, str> {
    if first_forbidden(s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_forbidden(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV injection"):
/// text starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`.
/// Numbers (`-5`, `+1.5`) are left as they are, so numeric columns stay numeric.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let risky = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && s.parse::<f64>().is_err() {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_hold_any_visible_text() {
        for ok in ["plant-north", "Plant, North", "Zürich Süd", "工場 3", "a b"] {
            assert_eq!(first_forbidden(ok), None, "{ok}");
        }
        for (bad, c) in [
            ("esc\u{1b}[31m", '\u{1b}'),
            ("two\nlines", '\n'),
            ("tab\there", '\t'),
            ("del\u{7f}", '\u{7f}'),
            ("c1\u{85}", '\u{85}'),
            ("abc\u{202e}fed", '\u{202e}'),
            ("iso\u{2066}late", '\u{2066}'),
            ("zero\u{200b}width", '\u{200b}'),
            ("\u{feff}bom", '\u{feff}'),
        ] {
            assert_eq!(first_forbidden(bad), Some(c), "{bad:?}");
        }
    }

    #[test]
    fn printable_escapes_what_a_terminal_would_obey() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("red\u{1b}[31m"), "red\\u{1b}[31m");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert!(matches!(printable("Zürich"), Cow::Borrowed(_)));
    }

    #[test]
    fn formula_cells_are_quoted_and_numbers_are_not() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+cmd"), "'+cmd");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("-5"), "-5");
        assert_eq!(csv_cell("+1.5"), "+1.5");
        assert_eq!(csv_cell("plant-north"), "plant-north");
    }
}
