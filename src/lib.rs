//! headroom: a capacity compiler. One declarative spec in; the connection arithmetic
//! across every layer checked, the capacity plan explained, and every config file out.

pub mod diag;
pub mod schema;
pub mod source;
pub mod spec;
pub mod load;
pub mod plan;
pub mod rules;
pub mod analysis;
pub mod cli;
pub mod report;
pub mod targets;
pub mod observe;
pub mod output;
pub mod import;
pub mod scale;
