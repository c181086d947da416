//! Shell scripts that start a server: the variables a script assigns on its way to
//! the line that runs it. Entrypoint scripts often name a setting before using it
//! (`WORKERS=${WEB_CONCURRENCY:-4}` ... `exec gunicorn -w "$WORKERS"`, or
//! `local threads=...` inside the function that starts the server); the command's
//! `$WORKERS` then means what the assignment says, environment references included.
//!
//! Only straight-line code is followed: assignments at the top level and in the
//! blocks that contain the command (the function it is in, the `case` branch it is
//! in). An assignment inside a function or branch that ends before the command is
//! not taken (that code may never run), nor one whose value runs a command
//! (`$(nproc)`), which stays unknown.

use crate::import::shared::argv::Word;

/// One assignment: the variable and its value as text `interpolate` reads (quotes
/// removed, a single-quoted `$` doubled so it stays literal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: String,
}

/// A block the scan is inside; its assignments count only if the command is in it.
enum Block {
    Function,
    CaseBranch,
    Case,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name() {`, `function name {`, `function name() {`.
fn opens_function(line: &str) -> bool {
    let body = line.strip_prefix("function ").map(str::trim_start).unwrap_or(line);
    let Some(open) = body.find('{') else { return false };
    let head = body[..open].trim();
    let rest = body[open + 1..].trim();
    let name = head.strip_suffix("()").map(str::trim_end).unwrap_or(if line.starts_with("function ") { head } else { "" });
    is_name(name.trim_end_matches(|c: char| c.is_ascii_whitespace())) && !name.is_empty() && (rest.is_empty() || rest.starts_with('#'))
}

/// The value of an assignment written at the start of `rest`, and what follows it.
fn value_word(rest: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                for (_, d) in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                    value.push(d);
                }
            }
            '\'' => {
                for (_, d) in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    if d == '$' {
                        value.push('$');
                    }
                    value.push(d);
                }
            }
            c if c.is_ascii_whitespace() || c == ';' => return (value, &rest[i..]),
            c => value.push(c),
        }
    }
    (value, "")
}

/// The assignments of one line (`export A=1 B=2`, `local w="$x"`, `readonly A=1`,
/// `: "${A:=2}"`); none when the words after them run a command (`A=1 cmd` sets A
/// for that command only).
fn line_assignments(line: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    // `: ${VAR:=default}` and `: "${VAR:=default}"` give VAR its default when unset.
    if let Some(rest) = line.strip_prefix(": ") {
        let mut rest = rest.trim().trim_matches('"');
        while let Some(start) = rest.find("${") {
            let inner = &rest[start + 2..];
            let Some(end) = inner.find('}') else { break };
            let (name, default) = match inner[..end].split_once(":=") {
                Some(parts) => parts,
                None => match inner[..end].split_once('=') {
                    Some(parts) => parts,
                    None => break,
                },
            };
            if is_name(name) {
                out.push(Assignment { name: name.to_string(), value: format!("${{{name}:-{default}}}") });
            }
            rest = &inner[end + 1..];
        }
        return out;
    }
    let mut rest = line;
    for keyword in ["export ", "local ", "readonly ", "declare ", "typeset "] {
        if let Some(r) = rest.strip_prefix(keyword) {
            rest = r.trim_start();
            // `declare -i x=1`: the flags do not change the text.
            while let Some(r) = rest.strip_prefix('-') {
                rest = r.split_once(' ').map(|(_, r)| r.trim_start()).unwrap_or("");
            }
            break;
        }
    }
    while let Some((name, after)) = rest.split_once('=') {
        if !is_name(name) {
            break;
        }
        let (value, after) = value_word(after);
        out.push(Assignment { name: name.to_string(), value });
        rest = after.trim_start();
        if rest.is_empty() || rest.starts_with(';') || rest.starts_with('#') {
            return out;
        }
    }
    // Words left that are not assignments: a command run with these variables.
    if rest.is_empty() { out } else { Vec::new() }
}

/// The assignments that run before the byte `at` of `text` (where the server's
/// command is), in order, with references to earlier ones substituted.
pub fn assignments_before(text: &str, at: usize) -> Vec<Assignment> {
    let mut stack: Vec<(Block, usize)> = Vec::new();
    let mut taken: Vec<Assignment> = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        if start >= at {
            break;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let in_case = matches!(stack.last(), Some((Block::Case, _)));
        if opens_function(line) {
            stack.push((Block::Function, taken.len()));
        } else if line.starts_with('}') {
            if let Some((Block::Function, mark)) = stack.last() {
                // The command was not in this function (it ends before `at`).
                taken.truncate(*mark);
                stack.pop();
            }
        } else if line.starts_with("case ") && line.ends_with(" in") {
            stack.push((Block::Case, taken.len()));
        } else if line == "esac" || line.starts_with("esac ") || line.starts_with("esac;") {
            if let Some((Block::CaseBranch, mark)) = stack.last() {
                taken.truncate(*mark);
                stack.pop();
            }
            if let Some((Block::Case, _)) = stack.last() {
                stack.pop();
            }
        } else if in_case && let Some(close) = line.find(')').filter(|&i| !line[..i].contains(['=', '$', '"', '\''])) {
            // `web)` or `web|server) start_web ;;`
            stack.push((Block::CaseBranch, taken.len()));
            let body = line[close + 1..].trim();
            if body.ends_with(";;") {
                if offset <= at {
                    let (Block::CaseBranch, mark) = stack.pop().expect("pushed above") else { unreachable!() };
                    taken.truncate(mark);
                }
                continue;
            }
            for a in line_assignments(body) {
                push(&mut taken, a);
            }
        } else if line == ";;" || line.ends_with(";;") {
            if let Some((Block::CaseBranch, mark)) = stack.last() {
                if offset <= at {
                    taken.truncate(*mark);
                }
                stack.pop();
            }
        } else {
            for a in line_assignments(line) {
                push(&mut taken, a);
            }
        }
    }
    taken
}

/// Adds an assignment, its value written in terms of what was assigned before it.
fn push(taken: &mut Vec<Assignment>, a: Assignment) {
    if a.value.contains("$(") || a.value.contains('`') {
        // Runs a command: unknown here, and it hides any earlier value.
        taken.retain(|t| t.name != a.name);
        return;
    }
    let value = substitute(&a.value, taken);
    taken.push(Assignment { name: a.name, value });
}

/// `text` with `$NAME` and `${NAME}` of assigned variables replaced by their values;
/// `${NAME:-x}` takes the value when it is not empty. Other references are kept.
pub fn substitute(text: &str, assigned: &[Assignment]) -> String {
    if !text.contains('$') || assigned.is_empty() {
        return text.to_string();
    }
    let value_of = |name: &str| assigned.iter().rev().find(|a| a.name == name).map(|a| a.value.as_str());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(braced) = after.strip_prefix('{')
            && let Some(end) = braced.find('}')
        {
            let inner = &braced[..end];
            let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_len);
            match value_of(name) {
                Some(v) if op.is_empty() || ((op.starts_with(":-") || op.starts_with('-')) && !v.is_empty()) => out.push_str(v),
                _ => out.push_str(&rest[dollar..dollar + 2 + end + 1]),
            }
            rest = &braced[end + 1..];
            continue;
        }
        if let Some(literal) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = literal;
            continue;
        }
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        match value_of(&after[..name_len]) {
            Some(v) if name_len > 0 => out.push_str(v),
            _ => out.push_str(&rest[dollar..dollar + 1 + name_len]),
        }
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// The words of a script's command with the script's own variables substituted.
pub fn resolve_words(script: &str, words: &[Word]) -> Vec<Word> {
    let Some(at) = words.first().map(|(_, r)| r.start) else { return words.to_vec() };
    let assigned = assignments_before(script, at);
    words.iter().map(|(w, r)| (substitute(w, &assigned), r.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_exec(script: &str) -> Vec<(String, String)> {
        let at = script.find("exec gunicorn").expect("the script runs gunicorn");
        assignments_before(script, at).into_iter().map(|a| (a.name, a.value)).collect()
    }

    #[test]
    fn top_level_and_enclosing_function_assignments_are_taken() {
        let script = "#!/bin/sh\nset -e\nWORKERS=\"${WEB_CONCURRENCY:-3}\"\nexport TIMEOUT=30\nstart_web() {\n  local threads=${THREADS:-4} keep=2\n  exec gunicorn -w \"$WORKERS\" --threads \"$threads\"\n}\n";
        assert_eq!(
            at_exec(script),
            vec![
                ("WORKERS".into(), "${WEB_CONCURRENCY:-3}".into()),
                ("TIMEOUT".into(), "30".into()),
                ("threads".into(), "${THREADS:-4}".into()),
                ("keep".into(), "2".into()),
            ]
        );
    }

    #[test]
    fn other_functions_and_branches_and_command_prefixes_are_not_taken() {
        let script = "#!/bin/bash\nstart_worker() {\n  WORKERS=1\n}\ncase \"$1\" in\n  worker)\n    WORKERS=2\n    ;;\n  web)\n    THREADS=8\n    exec gunicorn -w \"$WORKERS\"\n    ;;\nesac\n";
        assert_eq!(at_exec(script), vec![("THREADS".into(), "8".into())]);
        assert_eq!(at_exec("PORT=1 ./migrate.sh\nexec gunicorn app\n"), vec![]);
    }

    #[test]
    fn defaults_by_colon_equals_and_values_that_run_commands() {
        let script = ": \"${WORKERS:=4}\"\nCPUS=$(nproc)\nexec gunicorn -w $WORKERS\n";
        assert_eq!(at_exec(script), vec![("WORKERS".into(), "${WORKERS:-4}".into())]);
        let words = vec![("-w".to_string(), 0..2), ("$CPUS".to_string(), 3..8)];
        assert_eq!(resolve_words(script, &words)[1].0, "$CPUS", "a value that runs a command stays unknown");
    }

    #[test]
    fn references_resolve_through_earlier_assignments_and_single_quotes_stay_literal() {
        let assigned = assignments_before("BASE=${WEB_CONCURRENCY:-2}\nWORKERS=$BASE\nNAME='$HOME'\n", 100);
        assert_eq!(substitute("-w${WORKERS}", &assigned), "-w${WEB_CONCURRENCY:-2}");
        assert_eq!(substitute("${WORKERS:-9} $NAME $OTHER", &assigned), "${WEB_CONCURRENCY:-2} $$HOME $OTHER");
    }
}
