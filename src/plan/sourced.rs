//! A number together with where it came from: the spec path the user wrote, the
//! documented default of the program that reads it, or the formula that derived it.
//! Messages cite the origin so a reader can find and change every number.

use std::borrow::Cow;

use serde::Serialize;

/// Where a planned value came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum Origin {
    /// Written in the spec at this path.
    Spec { path: String },
    /// Not written; the program's documented default (`path` is where it would go).
    /// (Notes and formulas are mostly fixed text: borrowed, not copied, per value.)
    Default { path: String, note: Cow<'static, str> },
    /// Computed from other values.
    Derived { path: String, formula: Cow<'static, str> },
}

/// A value and its origin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    #[serde(flatten)]
    pub origin: Origin,
}

impl<T: Copy> Sourced<T> {
    pub fn get(&self) -> T {
        self.value
    }
}

impl<T> Sourced<T> {
    pub fn spec(value: T, path: impl Into<String>) -> Self {
        Self { value, origin: Origin::Spec { path: path.into() } }
    }
    pub fn default(value: T, path: impl Into<String>, note: impl Into<Cow<'static, str>>) -> Self {
        Self { value, origin: Origin::Default { path: path.into(), note: note.into() } }
    }
    pub fn derived(value: T, path: impl Into<String>, formula: impl Into<Cow<'static, str>>) -> Self {
        Self { value, origin: Origin::Derived { path: path.into(), formula: formula.into() } }
    }

    /// Takes the spec's value when written, the default otherwise.
    pub fn or_default(written: Option<T>, path: impl Into<String>, default: T, note: impl Into<Cow<'static, str>>) -> Self {
        match written {
            Some(v) => Self::spec(v, path),
            None => Self::default(default, path, note),
        }
    }

    /// The spec path the value lives at (or would, when defaulted).
    pub fn path(&self) -> &str {
        match &self.origin {
            Origin::Spec { path } | Origin::Default { path, .. } | Origin::Derived { path, .. } => path,
        }
    }

    pub fn is_default(&self) -> bool {
        matches!(self.origin, Origin::Default { .. })
    }

    pub fn is_written(&self) -> bool {
        matches!(self.origin, Origin::Spec { .. })
    }

    /// How a message cites the origin: `services.pgbouncer.max_client_conn`, or
    /// `services.pgbouncer.max_client_conn, default: PgBouncer's max_client_conn = 100`.
    pub fn cite(&self) -> String {
        match &self.origin {
            Origin::Spec { path } => path.clone(),
            Origin::Default { path, note } => [path, " not set; default: ", note].concat(),
            Origin::Derived { path, formula } => [path, " = ", formula].concat(),
        }
    }
}
