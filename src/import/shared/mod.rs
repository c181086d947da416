//! Pieces every reader and interpreter shares, with no knowledge of any deployment
//! format or program: YAML spans, command-line words, environment references, units,
//! names, and small evaluators for the Ruby and Python that config files are written
//! in.

pub mod argv;
pub mod conf;
pub mod env;
pub mod erb;
pub mod facts;
pub mod names;
pub mod python;
pub mod ruby;
pub mod shell;
pub mod units;
pub mod urls;
pub mod yaml;
