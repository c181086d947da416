//! Source text of an input file and the byte-offset -> line:column arithmetic every
//! message uses.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// One input file held in memory.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Path as the user named it (shown in messages).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { path: path.into(), text, line_starts }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line_index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line_index];
        let column = self.text.get(line_start..offset).map_or(offset - line_start, |s| s.chars().count()) + 1;
        LineCol { line: line_index + 1, column }
    }

    /// Byte offset of a 1-based line and column (clamped).
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// A span clamped to the text and widened to a char boundary.
    pub fn clamp(&self, span: Range<usize>) -> Range<usize> {
        let mut start = span.start.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, self.text.len());
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = SourceFile::new("a.yaml", "a: 1\nbé: 2\n".to_string());
        assert_eq!(src.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(src.line_col(5), LineCol { line: 2, column: 1 });
        // the byte after "bé" is column 3: columns count characters
        assert_eq!(src.line_col(8), LineCol { line: 2, column: 3 });
        assert_eq!(src.offset_of(2, 3), 8);
    }
}
