//! Validation errors that name the object and the field at fault, so every message a person sees
//! says exactly what to fix.

use std::fmt;

/// One problem with one field of one object, e.g. `group "app::x": name: empty segment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The object at fault, e.g. `subject local:mchyzer` or `group app:duo:admins`.
    pub object: String,
    /// The field at fault, e.g. `name` or `login_id`.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl ValidationError {
    pub fn new(object: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { object: object.into(), field: field.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Several validation errors at once (an import reports every bad row, not just the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn push(&mut self, error: ValidationError) {
        self.0.push(error);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// `Ok(())` when nothing was collected, the collected errors otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} invalid {}", if n == 1 { "value" } else { "values" })?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl From<ValidationError> for ValidationErrors {
    fn from(e: ValidationError) -> Self {
        Self(vec![e])
    }
}
