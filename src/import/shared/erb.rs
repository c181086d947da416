//! ERB tags in YAML files (database.yml, deploy.yml): each tag replaced by text of the
//! same length, its value when the Ruby inside can be evaluated.

use std::collections::HashMap;
use std::ops::Range;

use super::ruby::{self, RValue};

/// One ERB tag of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Erb {
    /// The tag, `<%= … %>`, in the original text.
    pub bytes: Range<usize>,
    /// The Ruby expression inside it.
    pub code: String,
    /// `<%= %>` (output) rather than `<% %>` / `<%# %>`.
    pub output: bool,
    /// Its value, when the expression could be evaluated.
    pub value: Option<ruby::Evaluated>,
    /// Why it could not be.
    pub error: Option<String>,
}

/// Replaces every ERB tag by text of the same length (so byte offsets, and lines, stay
/// those of the original): an evaluated `<%= %>` by its value padded with spaces, any
/// other tag by spaces (newlines kept), an unknown value by underscores.
pub fn strip_erb(text: &str, env: &ruby::EnvLookup<'_>) -> (String, Vec<Erb>) {
    let mut out = String::with_capacity(text.len());
    let mut tags = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("<%") {
        let start = rest + open;
        out.push_str(&text[rest..start]);
        if text[start..].starts_with("<%%") {
            out.push_str("<%%");
            rest = start + 3;
            continue;
        }
        let Some(close) = text[start + 2..].find("%>") else {
            // Unterminated: blank the rest of the line.
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            out.push_str(&" ".repeat(end - start));
            tags.push(Erb { bytes: start..end, code: String::new(), output: false, value: None, error: Some("an ERB tag with no closing %>".into()) });
            rest = end;
            continue;
        };
        let end = start + 2 + close + 2;
        let inner = &text[start + 2..end - 2];
        let output = inner.starts_with('=');
        let code = inner.trim_start_matches(['=', '#', '-']).trim_end_matches('-').trim().to_string();
        let blank = |s: &str| s.chars().map(|c| if c == '\n' { "\n".to_string() } else { " ".repeat(c.len_utf8()) }).collect::<String>();
        let width = end - start;
        let (replacement, value, error) = if output && !inner.contains('\n') {
            match ruby::eval(&code, &HashMap::new(), env) {
                Ok(e) => {
                    let shown = match &e.value {
                        RValue::Int(i) => i.to_string(),
                        RValue::Str(s) if !s.is_empty() && s.len() <= width && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c)) => s.clone(),
                        RValue::Bool(b) => b.to_string(),
                        _ => "_".repeat(width),
                    };
                    let shown = if shown.len() <= width { shown } else { "_".repeat(width) };
                    (format!("{shown}{}", " ".repeat(width - shown.len())), Some(e), None)
                }
                Err(why) => ("_".repeat(width), None, Some(why)),
            }
        } else if output {
            (blank(&text[start..end]), None, Some("a multi-line ERB tag".into()))
        } else {
            (blank(&text[start..end]), None, None)
        };
        out.push_str(&replacement);
        tags.push(Erb { bytes: start..end, code, output, value, error });
        rest = end;
    }
    out.push_str(&text[rest..]);
    (out, tags)
}

