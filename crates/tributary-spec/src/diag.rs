//! Diagnostics: every problem found in a document, each pointing at the field (RFC 6901 JSON
//! pointer; for a missing field, the pointer the field would have).

use std::fmt;

/// How bad a problem is. Warnings never make a document invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the pointer is in (the document's label, or a referenced spec's path).
    pub file: String,
    /// RFC 6901 pointer into that file; `""` is the whole document.
    pub pointer: String,
    /// Lowercase, says what was expected and what was found.
    pub message: String,
    pub severity: Severity,
}

/// All problems of one validation, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostic {
    /// The pointer, or `(root)` for the whole document, as printed in `FILE: POINTER: MESSAGE`.
    pub fn display_pointer(&self) -> &str {
        if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        }
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE: /json/pointer: message`, with `warning: ` before warning messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(
            f,
            "{}: {}: {prefix}{}",
            self.file,
            self.display_pointer(),
            self.message
        )
    }
}

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn error(&mut self, file: &str, pointer: &str, message: impl Into<String>) {
        self.push(Diagnostic {
            file: file.to_owned(),
            pointer: pointer.to_owned(),
            message: message.into(),
            severity: Severity::Error,
        });
    }

    pub fn warning(&mut self, file: &str, pointer: &str, message: impl Into<String>) {
        self.push(Diagnostic {
            file: file.to_owned(),
            pointer: pointer.to_owned(),
            message: message.into(),
            severity: Severity::Warning,
        });
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|diag| diag.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|diag| diag.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diag in &self.items {
            writeln!(f, "{diag}")?;
        }
        Ok(())
    }
}

/// Escapes one reference token of a JSON pointer (`~` -> `~0`, `/` -> `~1`).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `parent` + `/` + escaped `token`.
pub fn child_pointer(parent: &str, token: &str) -> String {
    format!("{parent}/{}", escape_pointer_token(token))
}
