//! Located errors: every problem with a case names its file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a case file, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

impl Location {
    /// The position serde-saphyr recorded, or `None` when it has none (line 0).
    pub fn from_yaml(location: serde_saphyr::Location) -> Option<Location> {
        (location.line() > 0).then(|| Location {
            line: location.line(),
            column: location.column(),
        })
    }

    /// The position of the `offset`-th byte of `text` (the last position for offsets past its end).
    pub fn of_byte(text: &[u8], offset: usize) -> Location {
        let before = &text[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        // Columns count characters, like serde-saphyr's; only valid UTF-8 precedes `offset`
        // when the caller reports an encoding error, so a lossy count is exact there.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count() as u64
            + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in a case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{}:{at}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Why a case could not be turned into a plan.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but is not a valid case; holds every problem found, in file order.
    #[error("{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl CaseError {
    /// The diagnostics of an invalid case (none for an I/O error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            CaseError::Io { .. } => &[],
            CaseError::Invalid(diagnostics) => diagnostics,
        }
    }
}

fn lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects the diagnostics of one file, so validation can report all of them at once.
#[derive(Debug)]
pub struct Diagnostics {
    file: PathBuf,
    found: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Diagnostics {
        Diagnostics {
            file: file.to_path_buf(),
            found: Vec::new(),
        }
    }

    /// Records a problem at `at` (a YAML location; an unknown one is recorded without position).
    pub fn error(&mut self, at: serde_saphyr::Location, message: impl Into<String>) {
        self.error_at(Location::from_yaml(at), message);
    }

    /// Records a problem at an already converted position.
    pub fn error_at(&mut self, location: Option<Location>, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.clone(),
            location,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Every diagnostic in file order (a stable sort: the order found breaks ties).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| d.location);
        self.found
    }

    /// `Ok(())` when nothing was found, otherwise [`CaseError::Invalid`] with everything found.
    pub fn finish(self) -> Result<(), CaseError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(CaseError::Invalid(self.into_sorted()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_display_is_file_line_column_message() {
        let d = Diagnostic {
            file: PathBuf::from("cases/a.yaml"),
            location: Some(Location { line: 3, column: 7 }),
            message: "unknown pod `x`".into(),
        };
        assert_eq!(d.to_string(), "cases/a.yaml:3:7: unknown pod `x`");
        let d = Diagnostic {
            location: None,
            ..d
        };
        assert_eq!(d.to_string(), "cases/a.yaml: unknown pod `x`");
    }

    #[test]
    fn invalid_lists_one_diagnostic_per_line_in_file_order() {
        let mut found = Diagnostics::new(Path::new("c.yaml"));
        found.error_at(Some(Location { line: 9, column: 1 }), "second");
        found.error_at(Some(Location { line: 2, column: 5 }), "first");
        let err = found.finish().unwrap_err();
        assert_eq!(err.to_string(), "c.yaml:2:5: first\nc.yaml:9:1: second");
        assert_eq!(err.diagnostics().len(), 2);
    }

    #[test]
    fn location_of_byte_counts_lines_and_characters() {
        let text = "a: é\nbc: \u{ff}".as_bytes();
        assert_eq!(Location::of_byte(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of_byte(text, 6), Location { line: 2, column: 1 });
        assert_eq!(Location::of_byte(text, 10), Location { line: 2, column: 5 });
        assert_eq!(
            Location::of_byte(text, 1000),
            Location::of_byte(text, text.len())
        );
    }
}
