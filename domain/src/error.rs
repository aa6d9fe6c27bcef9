//! Validation errors that name the offending field, so an API client learns exactly what
//! to fix.

use std::fmt;

/// One invalid field: a dotted path into the input (`location.lat`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the field in the request body, e.g. `customer.phone`.
    pub field: String,
    /// What is wrong with it, in lowercase prose.
    pub message: String,
}

impl FieldError {
    /// An error for `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, with its path nested under `parent` (`lat` → `location.lat`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every invalid field found in one input; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single error.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    /// The first error, the one an API message leads with.
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for error in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
            first = false;
        }
        Ok(())
    }
}

/// Collects field errors while parsing a larger value.
#[derive(Debug, Default)]
pub struct ErrorCollector {
    errors: Vec<FieldError>,
}

impl ErrorCollector {
    /// Keeps the value of `result`, or records its error and yields `None`.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// Like [`take`](Self::take) for a nested value whose errors are nested under `parent`.
    pub fn take_nested<T>(
        &mut self,
        parent: &str,
        result: Result<T, ValidationErrors>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                self.errors
                    .extend(errors.0.into_iter().map(|error| error.under(parent)));
                None
            }
        }
    }

    /// Records an error.
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}
