//! One table type for every report: rows of text cells, rendered as a Markdown pipe table
//! (`make bench-report`, `report.md`, the terminal) or as an HTML table (the report's
//! `index.html`, through a tinytemplate template, cells escaped). A cell may mark words as
//! strong with `**…**`, which both renderings honour.

use serde::Serialize;
use std::fmt::Write;
use tinytemplate::TinyTemplate;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const HTML: &str = include_str!("../templates/table.html");

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len(), "row {row:?}");
        self.rows.push(row);
    }

    /// A Markdown pipe table: the first column left-aligned, the others right-aligned.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let aligns: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(s, "|{}|", aligns.join("|"));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }

    /// An HTML `<table>`, every cell escaped (`**…**` becomes `<b>…</b>`).
    pub fn html(&self) -> String {
        let mut tt = template_engine();
        tt.add_template("table", HTML)
            .expect("the table template parses");
        tt.render("table", self).expect("a table always renders")
    }
}

/// A template engine with the `inline` formatter (`{ x | inline }`: escaped text with
/// `**…**` as `<b>…</b>`), for the tables and the report page.
pub fn template_engine() -> TinyTemplate<'static> {
    let mut tt = TinyTemplate::new();
    tt.add_formatter("inline", |v, out| {
        out.push_str(&inline_html(v.as_str().unwrap_or_default()));
        Ok(())
    });
    tt
}

/// Text as HTML: escaped, with `**…**` as `<b>…</b>`.
pub fn inline_html(s: &str) -> String {
    let mut out = String::new();
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    for (i, part) in escaped.split("**").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<b>{part}</b>");
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["probe", "ns"]);
        t.push(vec!["a<b>".into(), "**1.50**".into()]);
        t.push(vec!["c & d".into(), "2".into()]);
        t
    }

    #[test]
    fn markdown_aligns_numbers_right() {
        assert_eq!(
            sample().markdown(),
            "| probe | ns |\n|---|---:|\n| a<b> | **1.50** |\n| c & d | 2 |\n"
        );
    }

    #[test]
    fn html_escapes_cells_and_keeps_strong_words() {
        let h = sample().html();
        assert!(h.contains("<th>probe</th><th>ns</th>"), "{h}");
        assert!(h.contains("<td>a&lt;b&gt;</td><td><b>1.50</b></td>"), "{h}");
        assert!(h.contains("<td>c &amp; d</td>"), "{h}");
        assert_eq!(h.matches("<tr>").count(), 3);
    }
}
