//! Diagnostics: one error with the span it is about, a hint, and the places
//! that led to it (block calls), rendered rustc-style with ariadne.

use std::fmt;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    /// Secondary places, such as the block call a failing layer was expanded from.
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            label: String::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, span: Span, text: impl Into<String>) -> Self {
        self.notes.push((span, text.into()));
        self
    }

    /// Renders the error with the source line, the span underlined and the hint.
    pub fn render(&self, path: &str, source: &str, color: bool) -> String {
        use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
        // Spans from the parser can end inside a multi-byte character.
        let clamp = |s: Span| {
            let mut end = s.end.min(source.len());
            while !source.is_char_boundary(end) {
                end += 1;
            }
            let mut start = s.start.min(end);
            while !source.is_char_boundary(start) {
                start -= 1;
            }
            start..end
        };
        let mut report = Report::build(ReportKind::Error, (path, clamp(self.span)))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_message(&self.message)
            .with_label(Label::new((path, clamp(self.span))).with_message(&self.label));
        for (span, text) in &self.notes {
            report = report.with_label(Label::new((path, clamp(*span))).with_message(text));
        }
        if let Some(help) = &self.help {
            report = report.with_help(help);
        }
        let mut out = Vec::new();
        report
            .finish()
            .write((path, Source::from(source)), &mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `path:line:column: message`, for logs and tests.
    pub fn one_line(&self, path: &str, source: &str) -> String {
        let (line, col) = line_col(source, self.span.start);
        format!("{path}:{line}:{col}: error: {}", self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// 1-based line and column (in characters) of a byte offset. Scans the text
/// before it: for many offsets in one source, use `Lines`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char(source, offset);
    // Bytes, not chars: counting them vectorizes, and back ends ask this
    // for every layer of a model.
    let before = &source.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, source[start..offset].chars().count() + 1)
}

/// The start of every line of a source, so that each offset's line and
/// column costs a binary search, not a scan of the text before it.
pub struct Lines<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(source: &'a str) -> Self {
        let after_newlines = source
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1);
        Lines {
            source,
            starts: std::iter::once(0).chain(after_newlines).collect(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset, as `line_col`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char(self.source, offset);
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, self.source[start..offset].chars().count() + 1)
    }

    /// The text of 1-based line `n`, without its line break; empty past the end.
    pub fn line(&self, n: usize) -> &'a str {
        let Some(&start) = n.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return "";
        };
        let end = self
            .starts
            .get(n)
            .map_or(self.source.len(), |&next| next - 1);
        self.source[start..end].trim_end_matches('\r')
    }
}

/// `offset` within `source`, moved back to the start of its character.
fn floor_char(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

pub type Result<T> = std::result::Result<T, Diagnostic>;

/// `eprintln!` that cannot panic: a closed or full standard error (`2>&-`,
/// `2>/dev/full`) is ignored, since there is nowhere left to report it; exit
/// codes still tell. netc's progress notes and warnings go through this.
pub fn note(line: fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_inside_a_character_still_render() {
        let source = "model é {\n}\n";
        // One byte into the two-byte `é`.
        let d = Diagnostic::new(Span::new(7, 8), "bad")
            .label("here")
            .help("fix it");
        let text = d.render("x.net", source, false);
        assert!(text.contains("x.net:1:7"), "{text}");
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncé d", 0), (1, 1));
        assert_eq!(line_col("ab\ncé d", 3), (2, 1));
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        // Inside `é`: its own column.
        assert_eq!(line_col("ab\ncé d", 5), (2, 2));
    }

    #[test]
    fn the_line_index_agrees_with_line_col_everywhere() {
        let source = "model é {\n\n  conv 3x3 8 # ж\r\n}\nlast";
        let lines = Lines::new(source);
        for offset in 0..=source.len() + 2 {
            assert_eq!(lines.line_col(offset), line_col(source, offset), "{offset}");
        }
        assert_eq!(lines.line_col(source.len()), (5, 5));
        for n in 0..=6usize {
            let want = n.checked_sub(1).and_then(|i| source.lines().nth(i));
            assert_eq!(lines.line(n), want.unwrap_or(""), "line {n}");
        }
    }
}
