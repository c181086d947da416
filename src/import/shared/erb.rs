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

/// An `if`/`unless` of ERB control tags being walked.
struct Branch {
    /// Whether the text of the current branch is kept.
    keep: bool,
    /// A branch of this `if` was kept already.
    taken: bool,
    /// The text around it is kept (an enclosing branch is).
    outer: bool,
}

/// Replaces every ERB tag by text of the same length (so byte offsets, and lines, stay
/// those of the original): an evaluated `<%= %>` by its value padded with spaces, any
/// other tag by spaces (newlines kept), an unknown value by underscores. Control tags
/// (`<% if %>`, `<% elsif %>`, `<% else %>`, `<% end %>`, `<% unless %>`) are decided
/// in the environment of the run: the text of branches that do not run is blanked the
/// same way, so a file that switches its settings by environment reads as the one
/// that runs. A condition that cannot be decided keeps its first branch (the tag
/// carries why, as `error`).
pub fn strip_erb(text: &str, cx: &ruby::Context<'_>) -> (String, Vec<Erb>) {
    let mut out = String::with_capacity(text.len());
    let mut tags = Vec::new();
    let mut rest = 0;
    let mut branches: Vec<Branch> = Vec::new();
    let keeping = |branches: &[Branch]| branches.last().is_none_or(|b| b.keep && b.outer);
    let blank = |s: &str| s.chars().map(|c| if c == '\n' { "\n".to_string() } else { " ".repeat(c.len_utf8()) }).collect::<String>();
    while let Some(open) = text[rest..].find("<%") {
        let start = rest + open;
        let between = &text[rest..start];
        out.push_str(&if keeping(&branches) { between.to_string() } else { blank(between) });
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
        let width = end - start;
        let keep_now = keeping(&branches);
        let (replacement, value, error) = if output && !inner.contains('\n') && keep_now {
            match ruby::eval(&code, &HashMap::new(), cx) {
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
        } else if output && keep_now {
            (blank(&text[start..end]), None, Some("a multi-line ERB tag".into()))
        } else {
            let error = if inner.starts_with('#') { None } else { control(&code, &mut branches, cx) };
            (blank(&text[start..end]), None, error)
        };
        out.push_str(&replacement);
        tags.push(Erb { bytes: start..end, code, output, value, error });
        rest = end;
    }
    let tail = &text[rest..];
    out.push_str(&if keeping(&branches) { tail.to_string() } else { blank(tail) });
    (out, tags)
}

/// Applies a control tag to the branches being walked; Some(why) when its condition
/// could not be decided.
fn control(code: &str, branches: &mut Vec<Branch>, cx: &ruby::Context<'_>) -> Option<String> {
    let first = code.split_whitespace().next().unwrap_or("");
    let outer = branches.last().is_none_or(|b| b.keep && b.outer);
    let decide = |cond: &str, negate: bool| ruby::eval(cond, &HashMap::new(), cx).map(|e| e.value.truthy() != negate);
    match first {
        "if" | "unless" => {
            let cond = code[first.len()..].trim().trim_end_matches(" then");
            match decide(cond, first == "unless") {
                Ok(keep) => {
                    branches.push(Branch { keep, taken: keep, outer });
                    None
                }
                Err(why) => {
                    branches.push(Branch { keep: true, taken: true, outer });
                    Some(format!("the condition `{cond}` cannot be decided ({why}); its first branch is read"))
                }
            }
        }
        "elsif" => {
            let branch = branches.last_mut()?;
            if branch.taken {
                branch.keep = false;
                return None;
            }
            match decide(code["elsif".len()..].trim(), false) {
                Ok(keep) => {
                    branch.keep = keep;
                    branch.taken = keep;
                    None
                }
                Err(why) => {
                    branch.keep = true;
                    branch.taken = true;
                    Some(format!("the condition cannot be decided ({why}); this branch is read"))
                }
            }
        }
        "else" => {
            let branch = branches.last_mut()?;
            branch.keep = !branch.taken;
            branch.taken = true;
            None
        }
        "end" => {
            branches.pop();
            None
        }
        _ if code.ends_with(" do") || code.contains(" do |") => {
            // A loop: its text is read once.
            branches.push(Branch { keep: true, taken: true, outer });
            Some("a loop; its body is read once".into())
        }
        _ => None,
    }
}
