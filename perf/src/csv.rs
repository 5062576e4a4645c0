//! A minimal CSV writer (RFC 4180 quoting): a header row, then rows of the same width.

use std::fmt::Write as _;

/// A CSV document being built in memory.
#[derive(Debug, Clone)]
pub struct Csv {
    width: usize,
    text: String,
}

impl Csv {
    /// A document whose first row is `header`.
    pub fn new(header: &[&str]) -> Csv {
        let mut csv = Csv {
            width: header.len(),
            text: String::new(),
        };
        csv.push_row(header.iter().map(|h| h.to_string()));
        csv
    }

    /// Append a row; panics if its width differs from the header's (a bug in the caller).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        let cells: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        assert_eq!(
            cells.len(),
            self.width,
            "CSV row width differs from the header"
        );
        self.push_row(cells);
    }

    fn push_row(&mut self, cells: impl IntoIterator<Item = String>) {
        for (i, c) in cells.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(&quote(&c));
        }
        self.text.push('\n');
    }

    /// The document.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A cell, quoted if it holds a comma, quote or line break.
pub fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// A float with `digits` decimals, or empty for `None`.
pub fn num(v: Option<f64>, digits: usize) -> String {
    let mut s = String::new();
    if let Some(v) = v {
        let _ = write!(s, "{v:.digits$}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rows_and_quoting() {
        let mut c = Csv::new(&["a", "b"]);
        c.row(["1", "x,y"]);
        c.row([2.5.to_string(), "say \"hi\"".to_string()]);
        assert_eq!(c.as_str(), "a,b\n1,\"x,y\"\n2.5,\"say \"\"hi\"\"\"\n");
    }

    #[test]
    #[should_panic(expected = "width")]
    fn rejects_ragged_rows() {
        Csv::new(&["a", "b"]).row(["1"]);
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(num(Some(1.23456), 2), "1.23");
        assert_eq!(num(None, 2), "");
    }
}
