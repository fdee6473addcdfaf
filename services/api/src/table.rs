//! One flat view of every answer, rendered as CSV (API, `--format csv`) or as an
//! aligned text table (CLI default).

use sitetally_core::text::{csv_cell, printable};
use std::fmt::Write as _;

/// An answer that flattens into rows.
pub trait Tabular {
    fn header(&self) -> Vec<&'static str>;
    fn rows(&self) -> Vec<Vec<String>>;
}

/// RFC 4180 CSV with a header line. Cells that a spreadsheet would run as a formula
/// (tenant and site names come from sensors) get a leading `'`
/// ([`sitetally_core::text::csv_cell`]).
pub fn to_csv(t: &dyn Tabular) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    w.write_record(t.header()).expect("csv to memory");
    for r in t.rows() {
        w.write_record(r.iter().map(|c| csv_cell(c).into_owned()))
            .expect("csv to memory");
    }
    String::from_utf8(w.into_inner().expect("csv to memory")).expect("csv of strings is UTF-8")
}

/// Columns padded to their widest cell; the last column is not padded. Control, bidi and
/// invisible characters in cells are shown escaped ([`sitetally_core::text::printable`]),
/// so a name cannot rewrite the terminal or reorder the line.
pub fn to_table(t: &dyn Tabular) -> String {
    let header: Vec<String> = t.header().iter().map(|h| h.to_uppercase()).collect();
    let mut rows = vec![header];
    rows.extend(t.rows().into_iter().map(|r| {
        r.iter()
            .map(|c| printable(c).into_owned())
            .collect::<Vec<_>>()
    }));
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `Some(x)` as text, `None` as empty.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T;
    impl Tabular for T {
        fn header(&self) -> Vec<&'static str> {
            vec!["site", "note"]
        }
        fn rows(&self) -> Vec<Vec<String>> {
            vec![
                vec!["a,b".into(), "say \"hi\"".into()],
                vec!["long-site".into(), "".into()],
            ]
        }
    }

    #[test]
    fn csv_quotes_and_table_aligns() {
        assert_eq!(
            to_csv(&T),
            "site,note\n\"a,b\",\"say \"\"hi\"\"\"\nlong-site,\n"
        );
        assert_eq!(
            to_table(&T),
            "SITE       NOTE\na,b        say \"hi\"\nlong-site\n"
        );
    }

    struct Hostile;
    impl Tabular for Hostile {
        fn header(&self) -> Vec<&'static str> {
            vec!["site", "devices"]
        }
        fn rows(&self) -> Vec<Vec<String>> {
            vec![
                vec!["=HYPERLINK(\"http://x\")".into(), "-4".into()],
                vec!["red\u{1b}[31m".into(), "7".into()],
            ]
        }
    }

    #[test]
    fn hostile_names_neither_run_in_spreadsheets_nor_rewrite_terminals() {
        let csv = to_csv(&Hostile);
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"http://x\"\")\",-4\n"),
            "{csv}"
        );
        let table = to_table(&Hostile);
        assert!(!table.contains('\u{1b}'), "{table:?}");
        assert!(table.contains("red\\u{1b}[31m"), "{table:?}");
    }
}
