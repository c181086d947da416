//! Command line (placeholder while the reports land).

use std::process::ExitCode;

pub fn main() -> ExitCode {
    let path = std::env::args().nth(2).unwrap_or_else(|| "capacity.yaml".into());
    match crate::analysis::analyze_file(std::path::Path::new(&path)) {
        Ok(a) => {
            println!("{}", serde_json::to_string_pretty(&a.diagnostics).unwrap());
            ExitCode::from(if a.diagnostics.is_empty() { 0 } else { 1 })
        }
        Err(f) => {
            println!("{}", serde_json::to_string_pretty(&f.diagnostics).unwrap());
            ExitCode::from(2)
        }
    }
}
