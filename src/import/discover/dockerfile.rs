//! The command an image built from a Dockerfile runs when the deployment gives none:
//! its `ENTRYPOINT` and `CMD` (exec or shell form), looking into an entrypoint script
//! of the build context: one that ends in `exec "$@"` hands over to `CMD`, one that
//! `exec`s a server is that server's command.

use std::path::{Path, PathBuf};

use crate::import::shared::argv::{self, Word};
use crate::import::shared::env::EnvVar;
use crate::import::{FileId, ImportBuilder};
use crate::source::SourceFile;

/// Largest Dockerfile or entrypoint script read.
const MAX_BYTES: u64 = 256 * 1024;

/// The default command of an image, with the file its words point into.
#[derive(Clone, Debug)]
pub struct DefaultCommand {
    pub words: Vec<Word>,
    pub file: FileId,
}

/// Reads `dockerfile` (a path in the build context) and returns the command its image
/// runs, or None when the file is missing or sets no CMD/ENTRYPOINT.
/// `target` is the stage built (compose `build.target`); without it, the final stage.
pub fn default_command(builder: &mut ImportBuilder, context: &Path, dockerfile: &Path, target: Option<&str>) -> Option<DefaultCommand> {
    let id = read(builder, dockerfile, "Dockerfile")?;
    let text = builder.sources[id].text.clone();
    let (entrypoint, cmd) = stage_command(&text, target);
    let mut words = entrypoint.clone().unwrap_or_default();
    // An entrypoint script: read what it runs.
    if let Some((script, _)) = entrypoint.as_ref().and_then(|e| e.first())
        && let Some(path) = find_in_context(context, script)
        && let Some(script_id) = read(builder, &path, "entrypoint script")
    {
        // A dispatcher (`case "$1" in web) exec puma ...`) runs the branch CMD names.
        if let Some((arg, _)) = cmd.as_ref().and_then(|c| c.first())
            && let Some(inner) = dispatch_branch(&builder.sources[script_id].text, arg)
        {
            return Some(DefaultCommand { words: inner, file: script_id });
        }
        // A script that only tests "$1" on the way (`if [ "$1" = uwsgi ]; then migrate; fi`)
        // and ends in `exec "$@"` runs a CMD that names its server.
        let runs_cmd = matches!(script_command(&builder.sources[script_id].text), Script::HandsOver) && cmd.as_deref().and_then(crate::import::interpret::classify).is_some();
        if is_dispatcher(&builder.sources[script_id].text) && !runs_cmd {
            return None;
        }
        match script_command(&builder.sources[script_id].text) {
            Script::HandsOver => {}
            Script::Runs(inner) => {
                return Some(DefaultCommand { words: inner, file: script_id });
            }
            Script::Unknown => {}
        }
        words = Vec::new();
    }
    words.extend(cmd.unwrap_or_default());
    (!words.is_empty()).then_some(DefaultCommand { words, file: id })
}

/// The ENTRYPOINT and CMD of the stage `target` (or the final stage), each inherited
/// from an earlier stage the built one starts `FROM`. As Docker does, an ENTRYPOINT
/// written in a stage clears the CMD it inherited.
fn stage_command(text: &str, target: Option<&str>) -> (Option<Vec<Word>>, Option<Vec<Word>>) {
    stage_state(text, target, |current: &mut (Option<Vec<Word>>, Option<Vec<Word>>), instruction, args, range| match instruction {
        "ENTRYPOINT" => *current = (Some(command_words(text, args, range)), None),
        "CMD" => current.1 = Some(command_words(text, args, range)),
        _ => {}
    })
}

/// What the instructions of the stage `target` (or the final stage) build up through
/// `apply`, starting from what the stage it starts `FROM` built when that is an
/// earlier stage of this file (an outside image starts from nothing known).
fn stage_state<T: Clone + Default>(text: &str, target: Option<&str>, mut apply: impl FnMut(&mut T, &str, &str, std::ops::Range<usize>)) -> T {
    let mut stages: Vec<(String, T)> = Vec::new();
    let mut current = T::default();
    for (instruction, args, range) in instructions(text) {
        if instruction == "FROM" {
            let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            // Docker compares stage names case-insensitively.
            let name = match words.as_slice() {
                [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => name.to_ascii_lowercase(),
                _ => String::new(),
            };
            let base = words.first().map(|b| b.to_ascii_lowercase()).unwrap_or_default();
            current = stages.iter().rev().find(|(n, _)| !n.is_empty() && *n == base).map(|(_, s)| s.clone()).unwrap_or_default();
            stages.push((name, T::default()));
        } else {
            apply(&mut current, &instruction, &args, range);
        }
        if let Some(stage) = stages.last_mut() {
            stage.1 = current.clone();
        }
    }
    match target.map(str::to_ascii_lowercase) {
        Some(target) => stages.into_iter().find(|(n, _)| *n == target).map(|(_, s)| s).unwrap_or_default(),
        None => current,
    }
}

/// The environment the image's `ENV` instructions give every process run from it
/// (`ENV RAILS_ENV="production" WEB_CONCURRENCY=2`, or the one-pair `ENV KEY value`):
/// the final stage's (or the `target` stage's, compose `build.target`), with what it
/// inherits from an earlier stage it starts `FROM`. The lowest layer of a process's
/// environment: the deployment's own (compose `environment:`, Kamal `env:`) is written
/// after it and wins.
pub fn image_env(builder: &mut ImportBuilder, dockerfile: &Path, target: Option<&str>) -> Vec<EnvVar> {
    let Some(id) = read(builder, dockerfile, "Dockerfile") else { return Vec::new() };
    let text = builder.sources[id].text.clone();
    stage_state(&text, target, |current: &mut Vec<EnvVar>, instruction, args, range| {
        if instruction == "ENV" {
            current.extend(env_pairs(&text, args, range, id));
        }
    })
}

/// The variables of one `ENV` instruction, each pointing at its own `KEY=value` word
/// when the instruction is on one line, else at the whole instruction.
fn env_pairs(text: &str, args: &str, range: std::ops::Range<usize>, file: FileId) -> Vec<EnvVar> {
    let one_line = text.get(range.clone()).is_some_and(|t| t.trim_end() == args);
    let (words, _) = argv::split(args);
    let bytes_of = |r: &std::ops::Range<usize>| if one_line { range.start + r.start..range.start + r.end } else { range.clone() };
    if words.first().is_some_and(|(w, _)| !w.contains('=')) {
        // Legacy form: `ENV KEY the rest of the line`.
        let (name, r) = &words[0];
        let value = args[r.end..].trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        return vec![EnvVar { name: name.clone(), value: Some(value.to_string()), file, bytes: bytes_of(&(r.start..args.len())) }];
    }
    words
        .iter()
        .filter_map(|(w, r)| {
            let (name, value) = w.split_once('=')?;
            (!name.is_empty()).then(|| EnvVar { name: name.to_string(), value: Some(value.to_string()), file, bytes: bytes_of(r) })
        })
        .collect()
}

/// The command a deployment's argument (`command: worker`) runs through the image's
/// entrypoint script, when that script dispatches on its first argument.
pub fn dispatched_command(builder: &mut ImportBuilder, context: &Path, dockerfile: &Path, target: Option<&str>, arg: &str) -> Option<DefaultCommand> {
    let id = read(builder, dockerfile, "Dockerfile")?;
    let text = builder.sources[id].text.clone();
    let (entrypoint, _) = stage_command(&text, target);
    let (script, _) = entrypoint?.first()?.clone();
    let path = find_in_context(context, &script)?;
    let script_id = read(builder, &path, "entrypoint script")?;
    let words = dispatch_branch(&builder.sources[script_id].text, arg)?;
    Some(DefaultCommand { words, file: script_id })
}

/// Whether a script chooses what to run by its first argument.
fn is_dispatcher(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        (t.starts_with("case ") && (t.contains("$1") || t.contains("${1}") || t.contains("$@") || t.contains("${@}"))) || ((t.starts_with("if ") || t.starts_with("elif ")) && (t.contains("\"$1\"") || t.contains("\"${1}\"")))
    })
}

/// The server command of the branch a dispatcher script takes for `arg`: the first
/// line that runs a program headroom models after `arg)` (a `case` label, also in a
/// `a|b)` list) or after `if [ "$1" = "arg" ]` / `elif ...`, up to the branch's end.
fn dispatch_branch(text: &str, arg: &str) -> Option<Vec<Word>> {
    match branch_command(text, arg)? {
        Branch::Runs(words) => Some(words),
        Branch::Script(_) => None,
    }
}

/// What a dispatcher's branch runs: a program headroom knows, or another script
/// (`app-gunicorn) /usr/bin/run-server.sh`), by its path in the container.
enum Branch {
    Runs(Vec<Word>),
    Script(String),
}

fn branch_command(text: &str, arg: &str) -> Option<Branch> {
    if !is_dispatcher(text) || arg.is_empty() || arg.starts_with('-') {
        return None;
    }
    let lines = logical_lines(text);
    let is_label = |t: &str| {
        let Some(label) = t.split(')').next().filter(|_| t.contains(')') && !t.starts_with('#')) else { return false };
        label.split('|').any(|l| l.trim().trim_matches(['"', '\'']) == arg)
    };
    let is_test = |t: &str| (t.starts_with("if ") || t.starts_with("elif ")) && (t.contains(&format!("\"{arg}\"")) || t.contains(&format!("'{arg}'")) || t.contains(&format!("= {arg} ")) || t.contains(&format!("== {arg} ")));
    let start = lines.iter().position(|(s, e)| {
        let t = text[*s..*e].trim();
        is_label(t) || is_test(t)
    })?;
    for (s, e) in lines.iter().skip(start) {
        let line = &text[*s..*e];
        let t = line.trim();
        let (first, rest) = if (*s, *e) == lines[start] {
            // `web) exec puma ...` on the label's own line.
            match t.split_once(')') {
                Some((_, after)) if is_label(t) => (false, after.trim()),
                _ => (true, ""),
            }
        } else {
            (false, t)
        };
        if first || rest.is_empty() {
            continue;
        }
        if rest.starts_with(";;") || rest == "fi" || rest.starts_with("elif ") || rest == "else" || rest == "esac" {
            return None;
        }
        let body = rest.trim_end_matches(";;").trim();
        let body = body.strip_prefix("exec ").unwrap_or(body);
        let at = s + line.find(body).unwrap_or(0);
        let (words, _) = argv::words_in(text, &(at..at + body.len()), body);
        if crate::import::interpret::classify(&words).is_some() {
            return Some(Branch::Runs(words));
        }
        // `server)` calling a shell function `server() { ... exec gunicorn ... }`.
        if let [(name, _)] = words.as_slice()
            && let Some(inner) = function_command(text, &lines, name)
        {
            return Some(Branch::Runs(inner));
        }
        if let Some((script, _)) = words.first().filter(|(w, _)| w.ends_with(".sh") && w.contains('/')) {
            return Some(Branch::Script(script.clone()));
        }
    }
    None
}

/// What a command runs whose program is a script of the repository seen inside the
/// container (`command: ["/app/docker/docker-bootstrap.sh", "app-gunicorn"]` with
/// `./docker` mounted at /app/docker): `script` is that file here. A dispatcher runs
/// the branch `arg` picks; a branch that runs another script copied into the image
/// (`COPY docker/entrypoints/run-server.sh /usr/bin/`) is followed into it, once.
pub fn mounted_script_run(builder: &mut ImportBuilder, script: &Path, arg: Option<&str>, build: Option<(&Path, &Path)>) -> Option<DefaultCommand> {
    let id = read(builder, script, "entrypoint script")?;
    let text = builder.sources[id].text.clone();
    match arg.and_then(|a| branch_command(&text, a)) {
        Some(Branch::Runs(words)) => Some(DefaultCommand { words, file: id }),
        Some(Branch::Script(inner)) => {
            let (context, dockerfile) = build?;
            let path = copied_from(builder, context, dockerfile, &inner)?;
            let inner_id = read(builder, &path, "script")?;
            match script_command(&builder.sources[inner_id].text) {
                Script::Runs(words) => Some(DefaultCommand { words, file: inner_id }),
                _ => None,
            }
        }
        None => match script_command(&text) {
            Script::Runs(words) => Some(DefaultCommand { words, file: id }),
            _ => None,
        },
    }
}

/// What a command runs whose program is a wrapper script of the build context that
/// hands over to its arguments (`./deploy/wait-for-postgres.sh db bash
/// /app/deploy/start.sh`, which waits, then `exec $cmd`): the first of the remaining
/// words that starts a program headroom knows (`file` is where the words are), or a
/// script of the context they run, followed into the server it starts.
pub fn wrapped_command(builder: &mut ImportBuilder, context: &Path, file: FileId, words: &[Word]) -> Option<DefaultCommand> {
    let (first, _) = words.first()?;
    let wrapper = find_in_context(context, first)?;
    let id = read(builder, &wrapper, "entrypoint script")?;
    if !matches!(script_command(&builder.sources[id].text), Script::HandsOver) {
        return None;
    }
    for i in 1..words.len() {
        let rest = &words[i..];
        if crate::import::interpret::classify(rest).is_some() {
            return Some(DefaultCommand { words: rest.to_vec(), file });
        }
        let (word, _) = &rest[0];
        if matches!(word.as_str(), "bash" | "sh" | "/bin/sh" | "/bin/bash") {
            continue;
        }
        if let Some(path) = find_in_context(context, word).filter(|_| word.contains('/'))
            && let Some(script) = read(builder, &path, "script")
            && let Script::Runs(inner) = script_command(&builder.sources[script].text)
        {
            return Some(DefaultCommand { words: inner, file: script });
        }
    }
    None
}

/// The file of the build context a Dockerfile `COPY` / `ADD` puts at `target` (a
/// path in the image): `COPY docker/run.sh /usr/bin/run-server.sh`, or a copy into a
/// directory (`COPY docker/entrypoints/run-server.sh /usr/bin/`) of that file name.
fn copied_from(builder: &mut ImportBuilder, context: &Path, dockerfile: &Path, target: &str) -> Option<PathBuf> {
    let id = read(builder, dockerfile, "Dockerfile")?;
    let text = builder.sources[id].text.clone();
    let name = Path::new(target).file_name()?.to_str()?;
    for (instruction, args, _) in instructions(&text) {
        if !matches!(instruction.as_str(), "COPY" | "ADD") {
            continue;
        }
        let words: Vec<String> = argv::shell_words(&args).into_iter().map(|(w, _)| w).filter(|w| !w.starts_with("--")).collect();
        let Some((dest, sources)) = words.split_last() else { continue };
        for source in sources {
            let here = context.join(source.trim_start_matches("./"));
            let file_name = Path::new(source).file_name().and_then(|n| n.to_str());
            let into_dir = dest.ends_with('/') && format!("{dest}{}", file_name.unwrap_or("")) == target;
            if (dest == target || into_dir) && here.is_file() {
                return Some(here);
            }
            // A directory copied whole (`COPY docker/entrypoints /usr/bin`).
            if here.is_dir() && target.strip_prefix(dest.trim_end_matches('/')).is_some_and(|rest| rest.trim_start_matches('/') == name) && here.join(name).is_file() {
                return Some(here.join(name));
            }
        }
    }
    None
}

/// The command a shell function of the script runs (`server() {` ... `exec gunicorn
/// ...` ... `}`): its first line that starts a program headroom knows.
fn function_command(text: &str, lines: &[(usize, usize)], name: &str) -> Option<Vec<Word>> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    let opens = |t: &str| {
        let t = t.strip_prefix("function ").unwrap_or(t).trim_start();
        t.strip_prefix(name).is_some_and(|rest| {
            let rest = rest.trim_start();
            rest.starts_with("()") || (t != rest && rest.starts_with('{'))
        })
    };
    let start = lines.iter().position(|(s, e)| opens(text[*s..*e].trim()))?;
    for (s, e) in lines.iter().skip(start + 1) {
        let line = &text[*s..*e];
        let t = line.trim();
        if line.starts_with('}') {
            return None;
        }
        let body = t.strip_prefix("exec ").unwrap_or(t);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let at = s + line.find(body).unwrap_or(0);
        let (words, _) = argv::words_in(text, &(at..at + body.len()), body);
        if crate::import::interpret::classify(&words).is_some() {
            return Some(words);
        }
    }
    None
}

/// Reads a file of the build context once, as a source of the run.
fn read(builder: &mut ImportBuilder, path: &Path, format: &str) -> Option<FileId> {
    // `dir/./Dockerfile` (a build context of `.`) is named `dir/Dockerfile`, and
    // `docker/../docker/Dockerfile` (a context of `../docker` from docker/) `docker/Dockerfile`.
    let mut normal = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if matches!(normal.components().next_back(), Some(std::path::Component::Normal(_))) => {
                normal.pop();
            }
            c => normal.push(c),
        }
    }
    let path = normal;
    let path = path.as_path();
    if let Some(id) = builder.sources.iter().position(|s| s.path == path) {
        return Some(id);
    }
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(path).ok().filter(|t| !t.contains('\0'))?;
    let id = builder.add_source(SourceFile::new(path, text));
    builder.read_as(id, format);
    Some(id)
}

/// Instructions with their arguments (continuation lines joined) and the byte range of
/// the arguments in the file.
fn instructions(text: &str) -> Vec<(String, String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut pending: Option<(String, String, std::ops::Range<usize>)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let continued = body.trim_end().ends_with('\\');
        let content = body.trim_end().trim_end_matches('\\');
        match pending.as_mut() {
            Some((_, args, range)) => {
                if !trimmed.starts_with('#') {
                    args.push(' ');
                    args.push_str(content.trim());
                    range.end = start + body.len();
                }
            }
            None => {
                let lead = body.len() - trimmed.len();
                let word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
                let args_start = start + lead + word_end + (trimmed[word_end..].len() - trimmed[word_end..].trim_start().len());
                let args = content.get(lead + word_end..).unwrap_or("").trim().to_string();
                pending = Some((trimmed[..word_end].to_ascii_uppercase(), args, args_start..(start + body.len()).max(args_start)));
            }
        }
        if !continued && let Some(p) = pending.take() {
            out.push(p);
        }
    }
    out.extend(pending);
    out
}

/// `["gunicorn", "-w", "4"]` (exec form) or `gunicorn -w 4` (shell form, run by
/// `/bin/sh -c`), as words pointing into the file where they are written literally.
fn command_words(text: &str, args: &str, span: std::ops::Range<usize>) -> Vec<Word> {
    let offset = span.start;
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(args) {
        let written = text.get(span.clone()).is_some_and(|t| t.trim_end() == args);
        let mut from = 0;
        return items
            .iter()
            .filter_map(|v| v.as_str())
            .map(|w| {
                let quoted = format!("\"{w}\"");
                let range = match args[from..].find(&quoted) {
                    Some(i) if written => {
                        let start = offset + from + i;
                        from += i + quoted.len();
                        start..start + quoted.len()
                    }
                    _ => span.clone(),
                };
                (w.to_string(), range)
            })
            .collect();
    }
    // Shell form: split the text as written (a shell joins `\`-continued lines).
    let written = text.get(span.clone()).unwrap_or("");
    let (words, _) = argv::words_in(text, &span, written.trim_end());
    words
}

/// A path the image runs, found in the build context: as written relative to the
/// context, else by its last components (`/rails/bin/docker-entrypoint` ->
/// `bin/docker-entrypoint`, `/docker-entrypoint.sh` -> `docker-entrypoint.sh`).
fn find_in_context(context: &Path, path: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = path.trim_start_matches("./").split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    (0..parts.len()).map(|i| context.join(parts[i..].join("/"))).find(|p| p.is_file())
}

/// What an entrypoint script runs.
enum Script {
    /// `exec "$@"`: the image's CMD.
    HandsOver,
    /// `exec <server> ...`: that command (words in the script).
    Runs(Vec<Word>),
    Unknown,
}

/// The last `exec` of a script that runs a program headroom models, or its hand-over
/// to the CMD; without either, the last line that runs such a program in the
/// foreground (`./bin/rails db:prepare` then `./bin/rails server`: the script waits
/// on the server as its last step).
fn script_command(text: &str) -> Script {
    let mut found = Script::Unknown;
    let mut last_foreground: Option<Vec<Word>> = None;
    // Variables holding the arguments (`cmd="$@"`, later `exec $cmd`).
    let mut argument_vars: Vec<String> = Vec::new();
    for (start, end) in logical_lines(text) {
        let line = &text[start..end];
        let trimmed = line.trim_start();
        if let Some((name, value)) = trimmed.split_once('=')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && matches!(value.trim().trim_matches('"'), "$@" | "${@}" | "$*")
        {
            argument_vars.push(name.to_string());
        }
        let exec = trimmed.starts_with("exec ");
        let rest_start = start + (line.len() - trimmed.len()) + if exec { "exec ".len() } else { 0 };
        let rest = text[rest_start..end].trim_end();
        let var = rest.trim_matches('"').trim_start_matches('$').trim_start_matches('{').trim_end_matches('}');
        if exec && (matches!(rest.trim_matches('"'), "$@" | "${@}") || (rest.starts_with('$') || rest.starts_with("\"$")) && argument_vars.iter().any(|v| v == var)) {
            found = Script::HandsOver;
            continue;
        }
        if rest.starts_with('#') || rest.ends_with('&') {
            continue;
        }
        let (words, _) = argv::words_in(text, &(rest_start..rest_start + rest.len()), rest);
        if crate::import::interpret::classify(&words).is_some() {
            if exec {
                return Script::Runs(words);
            }
            last_foreground = Some(words);
        }
    }
    match (found, last_foreground) {
        (Script::Unknown, Some(words)) => Script::Runs(words),
        (found, _) => found,
    }
}

/// What a command runs when its program is a script of the repository
/// (`bundle exec thrust bin/start-app`, `bin/web`): the server the script starts,
/// with the script as the file its words point into. `dir` is where the command runs.
pub fn script_run(builder: &mut ImportBuilder, dir: &Path, words: &[Word]) -> Option<DefaultCommand> {
    let (script, _) = words.iter().find(|(w, _)| w.contains('/') && !w.starts_with('-') && !w.starts_with('/') && !w.contains('='))?;
    let path = find_in_context(dir, script)?;
    let head = std::fs::read(&path).ok()?;
    if !head.starts_with(b"#!") || !head.split(|b| *b == b'\n').next().is_some_and(|l| l.ends_with(b"sh") || l.ends_with(b"bash") || l.ends_with(b"sh -e") || l.ends_with(b"bash -e")) {
        return None;
    }
    let id = read(builder, &path, "script")?;
    match script_command(&builder.sources[id].text) {
        Script::Runs(inner) => Some(DefaultCommand { words: inner, file: id }),
        _ => None,
    }
}

/// Byte ranges of a script's lines, a line ending in `\\` joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut start: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let body_end = line_start + line.trim_end_matches(['\n', '\r']).len();
        let first = *start.get_or_insert(line_start);
        if !text[line_start..body_end].ends_with('\\') {
            out.push((first, body_end));
            start = None;
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_stage_runs_its_own_or_its_base_stages_command() {
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        let text = "FROM python:3.12 AS base\nCMD [\"gunicorn\", \"app:app\", \"-w\", \"4\"]\n\nFROM base AS dev\nCMD [\"flask\", \"run\"]\n\nFROM base AS prod\nENV X=1\n\nFROM base AS entry\nENTRYPOINT [\"uwsgi\", \"--ini\", \"app.ini\"]\n\nFROM nginx:1.27 AS static\n";
        std::fs::write(&df, text).unwrap();
        let command = |target: Option<&str>| {
            let mut b = ImportBuilder::new("t");
            default_command(&mut b, dir.path(), &df, target).map(|c| c.words.iter().map(|(w, _)| w.clone()).collect::<Vec<_>>().join(" "))
        };
        assert_eq!(command(Some("dev")).as_deref(), Some("flask run"));
        // A stage built FROM an earlier one inherits its CMD.
        assert_eq!(command(Some("prod")).as_deref(), Some("gunicorn app:app -w 4"));
        assert_eq!(command(Some("PROD")).as_deref(), Some("gunicorn app:app -w 4"));
        // An ENTRYPOINT written in a stage clears the CMD it inherited.
        assert_eq!(command(Some("entry")).as_deref(), Some("uwsgi --ini app.ini"));
        // The final stage starts from another image: its command is not in this file.
        assert_eq!(command(None), None);
        assert_eq!(command(Some("missing")), None);
    }

    #[test]
    fn cmd_and_entrypoint_in_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "FROM ruby:3.3 AS build\nCMD [\"echo\", \"build\"]\n\nFROM ruby:3.3\nENTRYPOINT [\"/rails/bin/docker-entrypoint\"]\n# Start the server\nCMD [\"./bin/thrust\", \"./bin/rails\", \"server\"]\n").unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/docker-entrypoint"), "#!/bin/bash -e\nif [ \"${@: -2:1}\" == \"./bin/rails\" ]; then\n  ./bin/rails db:prepare\nfi\nexec \"${@}\"\n").unwrap();
        let mut b = ImportBuilder::new("t");
        let c = default_command(&mut b, dir.path(), &df, None).expect("a command");
        let words: Vec<&str> = c.words.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["./bin/thrust", "./bin/rails", "server"]);
        assert_eq!(&b.sources[c.file].text[c.words[1].1.clone()], "\"./bin/rails\"");
        assert_eq!(crate::import::interpret::classify(&c.words).map(|k| k.0), Some("puma"));

        std::fs::write(&df, "FROM python:3.12\nCOPY . /app\nENTRYPOINT [\"/app/docker/start.sh\"]\n").unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::write(dir.path().join("docker/start.sh"), "#!/bin/sh\nset -e\npython manage.py migrate\nexec gunicorn config.wsgi \\\n  --workers 4 --bind 0.0.0.0:8000\n").unwrap();
        let mut b = ImportBuilder::new("t");
        let c = default_command(&mut b, dir.path(), &df, None).expect("a command");
        assert!(b.sources[c.file].path.ends_with("docker/start.sh"));
        let workers = c.words.iter().position(|(w, _)| w == "--workers").unwrap();
        assert_eq!(b.sources[c.file].line_col(c.words[workers].1.start).line, 5);

        std::fs::write(&df, "FROM python:3.12\nCMD gunicorn app:app \\\n    -w 3\n").unwrap();
        let mut b = ImportBuilder::new("t");
        let c = default_command(&mut b, dir.path(), &df, None).expect("a command");
        let words: Vec<&str> = c.words.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["gunicorn", "app:app", "-w", "3"]);
        for odd in ["", "CMD", "CMD [", "FROM x\nCMD [\"a\" \\\n", "ENTRYPOINT [\"../../etc/passwd\"]", "\\"] {
            std::fs::write(&df, odd).unwrap();
            let mut b = ImportBuilder::new("t");
            let _ = default_command(&mut b, dir.path(), &df, None);
        }
    }

    #[test]
    fn dispatcher_scripts_run_the_branch_of_their_argument() {
        let case = "#!/bin/sh\nset -e\ncase \"$1\" in\n  worker)\n    exec bundle exec sidekiq -C config/sidekiq.yml\n    ;;\n  web|server)\n    bundle exec rails db:migrate\n    exec bundle exec puma -C config/puma.rb\n    ;;\n  *)\n    exec \"$@\"\n    ;;\nesac\n";
        let words = |w: Option<Vec<Word>>| w.map(|w| w.into_iter().map(|(w, _)| w).collect::<Vec<_>>().join(" "));
        assert_eq!(words(dispatch_branch(case, "web")).as_deref(), Some("bundle exec puma -C config/puma.rb"));
        assert_eq!(words(dispatch_branch(case, "worker")).as_deref(), Some("bundle exec sidekiq -C config/sidekiq.yml"));
        assert_eq!(dispatch_branch(case, "console"), None);
        let iffy = "#!/bin/sh\nif [ \"$1\" = \"worker\" ]; then\n  exec celery -A app worker -c 4\nelif [ \"$1\" = \"web\" ]; then\n  exec gunicorn app.wsgi -w 3\nelse\n  exec \"$@\"\nfi\n";
        assert_eq!(words(dispatch_branch(iffy, "web")).as_deref(), Some("gunicorn app.wsgi -w 3"));
        assert_eq!(words(dispatch_branch(iffy, "worker")).as_deref(), Some("celery -A app worker -c 4"));
        // A branch that calls a shell function of the script runs that function's server.
        let functions = "#!/bin/bash
server() {
  TIMEOUT=${APP_TIMEOUT:-60}
  exec /usr/local/bin/gunicorn -b 0.0.0.0:5000 -w${APP_WORKERS:-4} app.wsgi:app
}
function worker {
  exec ./manage.py rq worker default
}
case \"$1\" in
  server)
    shift
    server
    ;;
  worker)
    shift
    worker
    ;;
  shell)
    shift
    missing
    ;;
esac
";
        assert_eq!(words(dispatch_branch(functions, "server")).as_deref(), Some("/usr/local/bin/gunicorn -b 0.0.0.0:5000 -w${APP_WORKERS:-4} app.wsgi:app"));
        assert_eq!(words(dispatch_branch(functions, "worker")).as_deref(), Some("./manage.py rq worker default"));
        assert_eq!(dispatch_branch(functions, "shell"), None);
        // A test of "$1" on the way to `exec "$@"` is no dispatcher: the CMD runs.
        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "FROM python:3.12\nENTRYPOINT [\"/code/docker-entrypoint.sh\"]\nCMD [\"uwsgi\", \"/code/etc/uwsgi.ini\"]\n").unwrap();
        std::fs::write(dir.path().join("docker-entrypoint.sh"), "#!/bin/sh\nset -e\nif [ \"$1\" = '/venv/bin/uwsgi' ]; then\n    python manage.py migrate --noinput\nfi\nexec \"$@\"\n").unwrap();
        let mut b = ImportBuilder::new("t");
        let c = default_command(&mut b, dir.path(), &df, None).expect("the CMD");
        assert_eq!(words(Some(c.words)).as_deref(), Some("uwsgi /code/etc/uwsgi.ini"));

        let dir = tempfile::tempdir().unwrap();
        let df = dir.path().join("Dockerfile");
        std::fs::write(&df, "FROM ruby:3.3\nENTRYPOINT [\"./entrypoint.sh\"]\nCMD [\"web\"]\n").unwrap();
        std::fs::write(dir.path().join("entrypoint.sh"), case).unwrap();
        let mut b = ImportBuilder::new("t");
        let c = default_command(&mut b, dir.path(), &df, None).expect("the CMD's branch");
        assert_eq!(crate::import::interpret::classify(&c.words).map(|k| k.0), Some("puma"));
        assert_eq!(b.sources[c.file].line_col(c.words[0].1.start).line, 9);
        let c = dispatched_command(&mut b, dir.path(), &df, None, "worker").expect("the worker branch");
        assert_eq!(crate::import::interpret::classify(&c.words).map(|k| k.0), Some("sidekiq"));
    }
}
