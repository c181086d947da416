//! Reader for nginx config: nginx.conf, conf.d files and `nginx -T` dumps.
//!
//! The tokenizer follows nginx's own (`ngx_conf_read_token`): words, single- and
//! double-quoted strings with `\"`, `\'`, `\\`, `\t`, `\r`, `\n` escapes, `#` comments at
//! the start of a word, `;`, `{`, `}`, and `${var}` inside words (a `}` does not end an
//! unquoted word, as in nginx). The parser builds a directive tree with byte spans;
//! `include` is expanded in place (relative to the including file, then to the main
//! file's directory; globs sorted), with loops, depth and size reported as errors. A
//! `nginx -T` dump is split at its `# configuration file PATH:` markers and its includes
//! are resolved against those paths. Then the keys headroom models are read into the
//! nginx service that owns the file; every other directive is skipped silently (nginx
//! has hundreds).
//!
//! The `common` module at the end holds what the other readers of this kind share
//! (notes, service lookup by host, include resolution with globs and budgets).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::import::shared::conf::*;
use crate::import::{FileId, ImportBuilder, Origin};
use crate::load::path::{self as spec_path, Segment};
use crate::spec::{ByteSize, Duration};

/// Blocks nested deeper than this are reported and dropped.
pub const MAX_NESTING: usize = 64;
/// `include` nested deeper than this is reported and not followed.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Syntax errors reported per file before the rest are summarised.
const MAX_ERRORS: usize = 10;

/// A word of a directive: its text (quotes removed, escapes applied) and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Range<usize>,
    pub quoted: bool,
}

/// One directive: `name args;` or `name args { block }`.
#[derive(Clone, Debug)]
pub struct Directive {
    pub file: FileId,
    pub name: Word,
    pub args: Vec<Word>,
    /// From the name to the closing `;` or `}`.
    pub span: Range<usize>,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    fn is(&self, name: &str) -> bool {
        self.name.text == name
    }
    /// `name arg1` (the part a message underlines).
    fn head(&self) -> Range<usize> {
        self.name.span.start..self.args.first().map_or(self.name.span.end, |a| a.span.end)
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|a| a.text.as_str())
    }
}

/// A syntax error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub bytes: Range<usize>,
    pub message: String,
}

enum Tok {
    Word(Word),
    Semi(usize),
    Open(usize),
    Close(usize),
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    end: usize,
    errors: Vec<SyntaxError>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, range: Range<usize>) -> Self {
        let end = range.end.min(text.len());
        Self { text, pos: range.start.min(end), end, errors: Vec::new() }
    }

    fn next(&mut self) -> Option<Tok> {
        let b = self.text.as_bytes();
        loop {
            while self.pos < self.end && is_space(b[self.pos]) {
                self.pos += 1;
            }
            if self.pos >= self.end {
                return None;
            }
            match b[self.pos] {
                b'#' => {
                    while self.pos < self.end && b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b';' => {
                    self.pos += 1;
                    return Some(Tok::Semi(self.pos - 1));
                }
                b'{' => {
                    self.pos += 1;
                    return Some(Tok::Open(self.pos - 1));
                }
                b'}' => {
                    self.pos += 1;
                    return Some(Tok::Close(self.pos - 1));
                }
                q @ (b'"' | b'\'') => return self.quoted(q),
                _ => return Some(self.word()),
            }
        }
    }

    fn unescape(out: &mut Vec<u8>, next: u8) {
        match next {
            b'"' | b'\'' | b'\\' => out.push(next),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }

    fn quoted(&mut self, quote: u8) -> Option<Tok> {
        let b = self.text.as_bytes();
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            if self.pos >= self.end {
                let kind = if quote == b'"' { "double" } else { "single" };
                self.errors.push(SyntaxError {
                    bytes: start..start + 1,
                    message: format!("unterminated quoted string: the {kind} quote opened here is never closed"),
                });
                return None;
            }
            let c = b[self.pos];
            if c == b'\\' && self.pos + 1 < self.end {
                Self::unescape(&mut out, b[self.pos + 1]);
                self.pos += 2;
                continue;
            }
            self.pos += 1;
            if c == quote {
                break;
            }
            out.push(c);
        }
        if self.pos < self.end {
            let c = b[self.pos];
            if !(is_space(c) || matches!(c, b';' | b'{' | b')')) {
                let ch = self.text[self.pos..].chars().next().unwrap_or('?');
                self.errors.push(SyntaxError {
                    bytes: self.pos..self.pos + ch.len_utf8(),
                    message: format!("unexpected `{}` after a quoted string (nginx needs a space, `;` or `{{` there)", ch.escape_debug()),
                });
            }
        }
        Some(Tok::Word(Word { text: String::from_utf8_lossy(&out).into_owned(), span: start..self.pos, quoted: true }))
    }

    fn word(&mut self) -> Tok {
        let b = self.text.as_bytes();
        let start = self.pos;
        let mut out = Vec::new();
        let mut variable = false;
        while self.pos < self.end {
            let c = b[self.pos];
            if c == b'{' && variable {
                out.push(c);
                self.pos += 1;
                variable = false;
                continue;
            }
            variable = false;
            if c == b'\\' && self.pos + 1 < self.end {
                Self::unescape(&mut out, b[self.pos + 1]);
                self.pos += 2;
                continue;
            }
            if is_space(c) || c == b';' || c == b'{' {
                break;
            }
            if c == b'$' {
                variable = true;
            }
            out.push(c);
            self.pos += 1;
        }
        Tok::Word(Word { text: String::from_utf8_lossy(&out).into_owned(), span: start..self.pos, quoted: false })
    }
}

/// Parses `text[range]` into directives (spans relative to `text`). Blocks deeper than
/// `max_nesting` are reported and dropped. With `first_only`, stops after the first
/// complete top-level directive.
pub fn parse(text: &str, range: Range<usize>, file: FileId, max_nesting: usize, first_only: bool) -> (Vec<Directive>, Vec<SyntaxError>) {
    struct Frame {
        words: Vec<Word>,
        open: usize,
        children: Vec<Directive>,
    }
    fn make(file: FileId, mut words: Vec<Word>, end: usize, block: Option<Vec<Directive>>) -> Directive {
        let name = words.remove(0);
        Directive { file, span: name.span.start..end, name, args: words, block }
    }
    let mut lexer = Lexer::new(text, range);
    let mut root: Vec<Directive> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut errors: Vec<SyntaxError> = Vec::new();
    let mut nesting_reported = false;
    let mut done = false;
    while !done {
        let Some(tok) = lexer.next() else { break };
        errors.append(&mut lexer.errors);
        match tok {
            Tok::Word(w) => words.push(w),
            Tok::Semi(at) => {
                if words.is_empty() {
                    errors.push(SyntaxError { bytes: at..at + 1, message: "unexpected `;`: no directive before it".into() });
                    continue;
                }
                let d = make(file, std::mem::take(&mut words), at + 1, None);
                match stack.last_mut() {
                    Some(frame) => frame.children.push(d),
                    None => {
                        root.push(d);
                        done = first_only;
                    }
                }
            }
            Tok::Open(at) => {
                if words.is_empty() {
                    errors.push(SyntaxError { bytes: at..at + 1, message: "unexpected `{`: no directive name before it".into() });
                }
                if stack.len() >= max_nesting && !nesting_reported {
                    nesting_reported = true;
                    errors.push(SyntaxError { bytes: at..at + 1, message: format!("blocks nested deeper than {max_nesting} levels; the deeper ones are not read") });
                }
                stack.push(Frame { words: std::mem::take(&mut words), open: at, children: Vec::new() });
            }
            Tok::Close(at) => {
                if let Some(first) = words.first() {
                    errors.push(SyntaxError {
                        bytes: first.span.start..at + 1,
                        message: format!("directive `{}` is not terminated by `;` before `}}`", first.text.escape_debug()),
                    });
                    words.clear();
                }
                match stack.pop() {
                    None => errors.push(SyntaxError { bytes: at..at + 1, message: "unexpected `}`: no block is open here (unbalanced braces)".into() }),
                    Some(frame) => {
                        if frame.words.is_empty() || stack.len() >= max_nesting {
                            continue;
                        }
                        let d = make(file, frame.words, at + 1, Some(frame.children));
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(d),
                            None => {
                                root.push(d);
                                done = first_only;
                            }
                        }
                    }
                }
            }
        }
        if errors.len() > MAX_ERRORS * 4 {
            break;
        }
    }
    errors.append(&mut lexer.errors);
    if !done {
        if let Some(first) = words.first() {
            errors.push(SyntaxError {
                bytes: first.span.start..first.span.end,
                message: format!("unexpected end of file: directive `{}` has no closing `;`", first.text.escape_debug()),
            });
        }
        while let Some(frame) = stack.pop() {
            if errors.len() > MAX_ERRORS * 4 {
                // report no more; still attach what parsed
                if !frame.words.is_empty() && stack.len() < max_nesting {
                    let d = make(file, frame.words, text.len().min(lexer.end), Some(frame.children));
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(d),
                        None => root.push(d),
                    }
                }
                continue;
            }
            let name = frame.words.first().map_or(String::new(), |w| format!(" `{}`", w.text.escape_debug()));
            errors.push(SyntaxError {
                bytes: frame.open..frame.open + 1,
                message: format!("unexpected end of file: the block{name} opened here is never closed (missing `}}`)"),
            });
            if frame.words.is_empty() || stack.len() >= max_nesting {
                continue;
            }
            let end = text.len().min(lexer.end);
            let d = make(file, frame.words, end, Some(frame.children));
            match stack.last_mut() {
                Some(parent) => parent.children.push(d),
                None => root.push(d),
            }
        }
    }
    (root, errors)
}

/// The files of an `nginx -T` dump: (path, byte range of its text), in dump order.
pub fn dump_segments(text: &str) -> Option<Vec<(String, Range<usize>)>> {
    let mut marks: Vec<(String, usize, usize)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end_matches(['\n', '\r']);
        if let Some(path) = t.strip_prefix("# configuration file ").and_then(|r| r.strip_suffix(':')) {
            marks.push((path.trim().to_string(), offset, offset + line.len()));
        } else if marks.is_empty() && !t.trim().is_empty() && !t.starts_with("nginx: ") {
            return None;
        }
        offset += line.len();
    }
    if marks.is_empty() {
        return None;
    }
    let mut segments = Vec::new();
    for (i, (path, _, body_start)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(text.len(), |m| m.1);
        segments.push((path.clone(), *body_start..end));
    }
    Some(segments)
}

/// Files nginx ships that configs include by habit; not finding them is no news.
fn bundled(pattern: &str) -> bool {
    let name = pattern.rsplit('/').next().unwrap_or(pattern);
    matches!(name, "mime.types" | "fastcgi.conf" | "koi-utf" | "koi-win" | "win-utf") || name.ends_with("_params") || name.ends_with("params.conf")
}

struct Dump {
    segments: Vec<(String, Range<usize>)>,
    main_dir: String,
}

/// Expands `include` directives in place.
struct Expander<'a> {
    b: &'a mut ImportBuilder,
    root: PathBuf,
    stack: Vec<String>,
    budget: Budget,
    dump: Option<(FileId, Dump)>,
}

impl Expander<'_> {
    fn report(&mut self, file: FileId, errors: Vec<SyntaxError>) {
        let total = errors.len();
        for e in errors.into_iter().take(MAX_ERRORS) {
            self.b.unparsable(file, e.bytes, format!("nginx syntax: {}", e.message), "nginx -t rejects this file; fix the syntax at that line");
        }
        if total > MAX_ERRORS {
            self.b.unparsable(file, 0..0, format!("{} more nginx syntax errors not shown", total - MAX_ERRORS), "is this an nginx config file?");
        }
    }

    fn expand(&mut self, list: Vec<Directive>, nesting: usize) -> Vec<Directive> {
        let mut out = Vec::with_capacity(list.len());
        for mut d in list {
            if d.is("include") && d.block.is_none() {
                out.extend(self.include(&d, nesting));
                continue;
            }
            if let Some(children) = d.block.take() {
                d.block = Some(self.expand(children, nesting + 1));
            }
            out.push(d);
        }
        out
    }

    fn chain(&self, from: usize, next: &str) -> String {
        let name = |p: &str| Path::new(p).file_name().map_or(p.to_string(), |n| n.to_string_lossy().into_owned());
        self.stack[from..].iter().map(|p| name(p)).chain(std::iter::once(name(next))).collect::<Vec<_>>().join(" -> ")
    }

    fn include(&mut self, d: &Directive, nesting: usize) -> Vec<Directive> {
        let Some(pattern) = d.args.first().map(|a| a.text.clone()) else {
            self.b.unparsable(d.file, d.span.clone(), "`include` needs a file name", "write `include conf.d/*.conf;`");
            return Vec::new();
        };
        if d.args.len() > 1 {
            self.b.unparsable(d.file, d.span.clone(), "`include` takes exactly one file name or pattern", "one `include` per pattern");
        }
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            self.b.unparsable(
                d.file,
                d.head(),
                format!("include `{pattern}`: includes nested deeper than {MAX_INCLUDE_DEPTH} levels ({}); not followed", self.chain(0, &pattern)),
                "flatten the includes",
            );
            return Vec::new();
        }
        if self.dump.is_some() {
            return self.include_from_dump(d, &pattern, nesting);
        }
        let including = self.b.sources.get(d.file).map(|s| s.path.clone()).unwrap_or_default();
        let (paths, is_glob) = resolve_include(&including, &self.root, &pattern);
        if paths.is_empty() {
            if !is_glob && !bundled(&pattern) {
                self.b.ignored(d.file, d.head(), format!("include `{pattern}`: no such file next to {} (pass the included files too)", including.display()));
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for path in paths {
            let key = canonical(&path).display().to_string();
            if let Some(pos) = self.stack.iter().position(|p| *p == key) {
                let chain = self.chain(pos, &key);
                self.b.unparsable(d.file, d.head(), format!("include loop: {chain}"), "remove the include that leads back to a file already being read");
                continue;
            }
            // A file read before (passed on its own, or included twice) is parsed again
            // in this context, but keeps its source and its errors are not repeated.
            let known = self.b.sources.iter().position(|s| canonical(&s.path).display().to_string() == key && std::fs::read_to_string(&path).is_ok_and(|t| t == s.text));
            let id = match known {
                Some(id) => id,
                None => match open_include(self.b, &mut self.budget, d.file, d.head(), &path) {
                    Some(id) => id,
                    None => continue,
                },
            };
            let (tree, errors) = {
                let text = &self.b.sources[id].text;
                parse(text, 0..text.len(), id, MAX_NESTING.saturating_sub(nesting), false)
            };
            if known.is_none() {
                self.report(id, errors);
            }
            self.stack.push(key);
            out.extend(self.expand(tree, nesting));
            self.stack.pop();
        }
        out
    }

    fn include_from_dump(&mut self, d: &Directive, pattern: &str, nesting: usize) -> Vec<Directive> {
        let Some((file, dump)) = &self.dump else { return Vec::new() };
        let file = *file;
        let full = if pattern.starts_with('/') { pattern.to_string() } else { format!("{}/{}", dump.main_dir.trim_end_matches('/'), pattern) };
        let matches: Vec<(String, Range<usize>)> = dump.segments.iter().filter(|(p, _)| path_matches(&full, p)).cloned().collect();
        if matches.is_empty() {
            if !has_wildcard(pattern) && !bundled(pattern) {
                self.b.ignored(d.file, d.head(), format!("include `{pattern}`: not in the dump"));
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for (path, range) in matches {
            if let Some(pos) = self.stack.iter().position(|p| *p == path) {
                let chain = self.chain(pos, &path);
                self.b.unparsable(d.file, d.head(), format!("include loop: {chain}"), "remove the include that leads back to a file already being read");
                continue;
            }
            let (tree, errors) = {
                let text = &self.b.sources[file].text;
                parse(text, range, file, MAX_NESTING.saturating_sub(nesting), false)
            };
            self.report(file, errors);
            self.stack.push(path);
            out.extend(self.expand(tree, nesting));
            self.stack.pop();
        }
        out
    }
}

/// Whether a dump path matches an include pattern (wildcards within one component).
fn path_matches(pattern: &str, path: &str) -> bool {
    let pc: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let fc: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    pc.len() == fc.len() && pc.iter().zip(&fc).all(|(p, f)| wildcard(p, f))
}

/// Parses a file (with its includes, or the files of a dump) into one tree.
fn load_tree(b: &mut ImportBuilder, file: FileId) -> Vec<Directive> {
    let path = b.sources[file].path.clone();
    let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let segments = dump_segments(&b.sources[file].text);
    let mut expander = Expander { b, root, stack: Vec::new(), budget: Budget::default(), dump: None };
    match segments {
        Some(segments) => {
            let (main_path, main_range) = segments[0].clone();
            let main_dir = main_path.rsplit_once('/').map_or(String::from("/"), |(d, _)| if d.is_empty() { "/".into() } else { d.to_string() });
            expander.dump = Some((file, Dump { segments, main_dir }));
            let (tree, errors) = {
                let text = &expander.b.sources[file].text;
                parse(text, main_range, file, MAX_NESTING, false)
            };
            expander.report(file, errors);
            expander.stack.push(main_path);
            expander.expand(tree, 0)
        }
        None => {
            let (tree, errors) = {
                let text = &expander.b.sources[file].text;
                parse(text, 0..text.len(), file, MAX_NESTING, false)
            };
            expander.report(file, errors);
            expander.stack.push(canonical(&path).display().to_string());
            expander.expand(tree, 0)
        }
    }
}

/// The config a service mounts instead of this one, when no service mounts this file
/// (as a file or inside a mounted folder) and the service it would be read into mounts
/// another nginx config: `nginx_TLS.conf` beside the mounted `nginx.conf` is a variant
/// someone switches to, not more settings of the running nginx.
fn unmounted_alternative(builder: &ImportBuilder, file: FileId, owner: &str) -> Option<PathBuf> {
    if builder.file_owners.contains_key(&file) || builder.conventional_owner(file).is_some() {
        return None;
    }
    let path = std::fs::canonicalize(&builder.sources.get(file)?.path).ok()?;
    if builder.owners.keys().any(|mounted| path.starts_with(mounted)) {
        return None;
    }
    let looks_like_nginx = |p: &Path| {
        p.extension().is_some_and(|e| e == "conf") && p.components().any(|c| c.as_os_str().to_string_lossy().to_ascii_lowercase().contains("nginx"))
    };
    builder.owners.iter().filter(|(p, service)| service.as_str() == owner && p.is_file() && looks_like_nginx(p)).map(|(p, _)| p.clone()).min()
}

/// Reads an nginx config into the nginx service that owns the file.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    if file >= builder.sources.len() || already_read(builder, file) || reject_binary(builder, file) {
        return;
    }
    let owner = builder.owner_of(file, "nginx");
    if let Some(mounted) = unmounted_alternative(builder, file, &owner) {
        let path = builder.sources[file].path.clone();
        let shown = path.canonicalize().ok().and_then(|p| p.parent().and_then(|dir| mounted.strip_prefix(dir).ok()).map(Path::to_path_buf)).unwrap_or(mounted);
        builder.skip(path, format!("an alternative nginx config: `{owner}` mounts {} and not this file", shown.display()));
        return;
    }
    let tree = load_tree(builder, file);
    let first = tree.first().map_or(0..0, |d| d.head());
    let svc = match ensure_service(builder, &owner, "nginx", file, first.clone()) {
        Ensure::OtherKind(kind) => {
            let name = if owner == "nginx" { "nginx-lb".to_string() } else { "nginx".to_string() };
            note(builder, file, first.clone(), format!("`{owner}` is a {kind} service; this nginx config is read into service `{name}`"));
            ensure_service(builder, &name, "nginx", file, first);
            name
        }
        _ => owner,
    };
    main_context_check(builder, file, &tree);
    let mut reader = Extract { b: builder, svc: svc.clone(), upstreams: HashMap::new(), defined_here: Vec::new(), outside: HashMap::new(), listen_port: false, backlog: None, server_name: false, locations: None };
    reader.collect_upstreams(&tree, Level::Main);
    reader.walk(&tree, &Inherited::default(), Level::Main);
    let defined_here = std::mem::take(&mut reader.defined_here);
    reconcile_max_conns(builder, &svc, &defined_here);
}

/// Whether another file read (a compose file) mounts this file as nginx's main config.
fn mounted_as_main(b: &ImportBuilder, file: FileId) -> bool {
    let Some(name) = b.sources.get(file).and_then(|s| s.path.file_name()).map(|n| n.to_string_lossy().into_owned()) else { return false };
    const TARGET: &str = ":/etc/nginx/nginx.conf";
    b.sources.iter().enumerate().filter(|(i, _)| *i != file).any(|(_, s)| {
        s.text.match_indices(TARGET).any(|(at, _)| {
            let after = s.text[at + TARGET.len()..].chars().next();
            if after.is_some_and(|c| !(c == ':' || c == '"' || c == '\'' || c.is_whitespace() || c == ',' || c == ']')) {
                return false;
            }
            let before = &s.text[..at];
            let start = before.rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '[' | ',')).map_or(0, |i| i + 1);
            Path::new(&before[start..]).file_name().is_some_and(|n| n.to_string_lossy() == name)
        })
    })
}

/// A main nginx.conf must hold http-level directives inside `http {}` (and have
/// `events {}`); a conf.d file holds them at its top. Say which this file looks like.
fn main_context_check(b: &mut ImportBuilder, file: FileId, tree: &[Directive]) {
    if dump_segments(&b.sources[file].text).is_some() || tree.iter().any(|d| d.is("http")) {
        return;
    }
    let Some(first) = tree.iter().find(|d| d.file == file && matches!(d.name.text.as_str(), "upstream" | "server" | "location" | "limit_req_zone" | "map" | "proxy_pass")) else { return };
    let named_main = b.sources[file].path.file_name().is_some_and(|n| n == "nginx.conf");
    let events = tree.iter().any(|d| d.is("events"));
    let what = format!("`{}` is outside `http {{}}`{}", first.name.text, if events { "" } else { " and there is no `events {}`" });
    if mounted_as_main(b, file) {
        b.unparsable(
            file,
            first.head(),
            format!("this file is mounted as /etc/nginx/nginx.conf, nginx's main config, but {what}: nginx refuses to start (\"{}\" directive is not allowed here)", first.name.text),
            "wrap it in `events {} http { ... }`, or mount it into /etc/nginx/conf.d/ instead",
        );
    } else if named_main {
        note(
            b,
            file,
            first.head(),
            format!("read as a conf.d file included inside `http {{}}`: {what}, which nginx refuses in its main nginx.conf"),
        );
    }
}

// ---------------------------------------------------------------------------------
// Values

/// nginx time (`60s`, `5m`, `1h30m`, `500ms`, bare = seconds) in milliseconds.
pub fn time_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|c| c.is_ascii_digit()) {
        return text.parse::<u64>().ok()?.checked_mul(1000);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (factor, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                Some('s') => (1000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                Some('w') => (604_800_000, 1),
                Some('M') => (2_592_000_000, 1),
                Some('y') => (31_536_000_000, 1),
                None => (1000, 0),
                _ => return None,
            }
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// nginx size (`10m`, `512k`, `1g`, bare = bytes; all 1024-based) in bytes.
pub fn size_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, factor) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1024u64),
        'm' | 'M' => (&text[..text.len() - 1], 1024 * 1024),
        'g' | 'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

fn duration_text(ms: u64) -> String {
    Duration::from_millis(ms).to_string()
}

fn positive(text: &str) -> Option<u64> {
    text.parse::<u64>().ok()
}

/// `host:port`, `[v6]:port`, `host`, `unix:/path` -> (host, port); host None for sockets.
fn split_address(address: &str) -> (Option<String>, Option<u16>) {
    if address.starts_with("unix:") {
        return (None, None);
    }
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (Some(host.to_string()), after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (Some(host.to_string()), port.parse().ok()),
        _ => (Some(address.to_string()), None),
    }
}

// ---------------------------------------------------------------------------------
// Extraction

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The main context; also http-level directives of conf.d fragments.
    Main,
    Http,
    Server,
}

#[derive(Clone, Debug)]
struct Setting<T> {
    value: T,
    file: FileId,
    span: Range<usize>,
}

#[derive(Clone, Debug)]
struct LimitReq {
    zone: String,
    burst: Option<Setting<u64>>,
    file: FileId,
    span: Range<usize>,
}

/// What a level passes down to the levels inside it.
#[derive(Clone, Debug, Default)]
struct Inherited {
    read: Option<Setting<u64>>,
    send: Option<Setting<u64>>,
    connect: Option<Setting<u64>>,
    limit_req: Option<LimitReq>,
    /// `proxy_set_header Upgrade ...` in effect (proxy_set_header inherits as a set).
    upgrade: Option<(FileId, Range<usize>)>,
}

#[derive(Clone, Debug)]
struct Server {
    host: Option<String>,
    port: Option<u16>,
    address: Range<usize>,
    file: FileId,
    params: Vec<(String, String, Range<usize>)>,
}

impl Server {
    fn param(&self, key: &str) -> Option<&(String, String, Range<usize>)> {
        self.params.iter().find(|(k, _, _)| k == key)
    }
}

/// (path, upstream) -> index in `locations`.
type LocationIndex = HashMap<(String, String), usize>;

struct Extract<'a> {
    b: &'a mut ImportBuilder,
    svc: String,
    /// Upstream names as written -> spec names.
    upstreams: HashMap<String, String>,
    /// Upstreams read by this call (for the max_conns notes).
    defined_here: Vec<String>,
    /// Upstreams (as written) that send outside the modelled services -> why.
    outside: HashMap<String, String>,
    listen_port: bool,
    backlog: Option<u64>,
    server_name: bool,
    /// Locations of the service by (path, upstream) -> index, and how many there are.
    locations: Option<(LocationIndex, usize)>,
}

impl Extract<'_> {
    fn path(&self, rest: &[&str]) -> String {
        let mut parts = vec!["services", self.svc.as_str()];
        parts.extend_from_slice(rest);
        p(&parts)
    }

    fn set(&mut self, rest: &[&str], value: Value, file: FileId, bytes: Range<usize>) {
        let path = self.path(rest);
        self.b.set(&path, value, file, bytes);
    }

    fn invalid(&mut self, d: &Directive, expected: &str) {
        let shown: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
        self.b.unparsable(
            d.file,
            d.span.clone(),
            format!("nginx rejects `{} {}`: expected {expected}", d.name.text, shown.join(" ")),
            format!("write {expected}"),
        );
    }

    fn one_number(&mut self, d: &Directive, key: &str, min: u64) {
        match d.arg(0).and_then(positive) {
            Some(n) if n >= min && d.args.len() == 1 => self.set(&[key], json!(n), d.file, d.span.clone()),
            _ => self.invalid(d, if min > 0 { "a positive number" } else { "a number" }),
        }
    }

    fn collect_upstreams(&mut self, list: &[Directive], level: Level) {
        for d in list {
            match (level, d.name.text.as_str()) {
                (Level::Main | Level::Http, "upstream") => self.upstream(d),
                (Level::Main, "http") => {
                    if let Some(block) = &d.block {
                        self.collect_upstreams(block, Level::Http);
                    }
                }
                _ => {}
            }
        }
    }

    /// The settings a level sets for itself and the levels inside it.
    fn level(&mut self, list: &[Directive], parent: &Inherited) -> Inherited {
        let mut ctx = parent.clone();
        let mut limit: Option<LimitReq> = None;
        let mut headers = false;
        let mut upgrade = None;
        for d in list {
            let name = d.name.text.as_str();
            match name {
                "proxy_read_timeout" | "proxy_send_timeout" | "proxy_connect_timeout" => match d.arg(0).and_then(time_ms) {
                    Some(ms) if d.args.len() == 1 => {
                        let s = Some(Setting { value: ms, file: d.file, span: d.span.clone() });
                        match name {
                            "proxy_read_timeout" => ctx.read = s,
                            "proxy_send_timeout" => ctx.send = s,
                            _ => ctx.connect = s,
                        }
                    }
                    _ => self.invalid(d, "a time such as `60s`"),
                },
                "limit_req" => {
                    if limit.is_some() {
                        self.b.ignored(d.file, d.head(), "a second `limit_req` at the same level: headroom models the first");
                        continue;
                    }
                    let mut zone = None;
                    let mut burst = None;
                    for a in &d.args {
                        if let Some(z) = a.text.strip_prefix("zone=") {
                            zone = Some(service_name(z));
                        } else if let Some(n) = a.text.strip_prefix("burst=") {
                            match positive(n) {
                                Some(n) => burst = Some(Setting { value: n, file: d.file, span: a.span.clone() }),
                                None => self.invalid(d, "`burst=N` with a number"),
                            }
                        }
                    }
                    match zone {
                        Some(zone) => limit = Some(LimitReq { zone, burst, file: d.file, span: d.span.clone() }),
                        None => self.invalid(d, "`zone=NAME`"),
                    }
                }
                "proxy_set_header" => {
                    headers = true;
                    if d.arg(0).is_some_and(|h| h.eq_ignore_ascii_case("upgrade")) {
                        upgrade = Some((d.file, d.span.clone()));
                    }
                }
                _ => {}
            }
        }
        if limit.is_some() {
            ctx.limit_req = limit;
        }
        if headers {
            ctx.upgrade = upgrade;
        }
        ctx
    }

    fn walk(&mut self, list: &[Directive], parent: &Inherited, level: Level) {
        let ctx = self.level(list, parent);
        for d in list {
            match (level, d.name.text.as_str()) {
                (Level::Main, "worker_processes") => match d.arg(0) {
                    Some("auto") if d.args.len() == 1 => self.set(&["worker_processes"], json!("auto"), d.file, d.span.clone()),
                    Some(n) if d.args.len() == 1 && positive(n).is_some_and(|n| n >= 1) => {
                        self.set(&["worker_processes"], json!(positive(n)), d.file, d.span.clone());
                    }
                    _ => self.invalid(d, "a number of processes or `auto`"),
                },
                (Level::Main, "worker_rlimit_nofile") => self.one_number(d, "worker_rlimit_nofile", 0),
                (Level::Main, "events") => {
                    for c in d.block.iter().flatten() {
                        if c.is("worker_connections") {
                            self.one_number(c, "worker_connections", 1);
                        }
                    }
                }
                (Level::Main, "http") => {
                    if let Some(block) = &d.block {
                        self.walk(block, &ctx, Level::Http);
                    }
                }
                (Level::Main | Level::Http, "limit_req_zone") => self.limit_req_zone(d),
                (Level::Main | Level::Http, "server") => {
                    if let Some(block) = &d.block {
                        self.server(block, &ctx);
                    }
                }
                (Level::Main, "stream") => self.b.ignored(d.file, d.head(), "`stream {}` (TCP/UDP proxying) is not modelled"),
                (Level::Server, "location") => self.location(d, &ctx),
                _ => {}
            }
        }
    }

    fn server(&mut self, list: &[Directive], parent: &Inherited) {
        for d in list {
            if d.is("listen") {
                self.listen(d);
            } else if d.is("server_name") && !self.server_name {
                let names: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
                let ok = !names.is_empty() && names.iter().all(|h| *h == "_" || crate::load::safe_host(h.trim_start_matches("*.")));
                if ok {
                    self.server_name = true;
                    if self.b.get(&self.path(&["server_name"])).is_none() {
                        self.set(&["server_name"], json!(names.join(" ")), d.file, d.span.clone());
                    }
                }
            }
        }
        self.walk(list, parent, Level::Server);
    }

    fn listen(&mut self, d: &Directive) {
        let Some(address) = d.args.first() else {
            self.invalid(d, "an address or port");
            return;
        };
        if !self.listen_port {
            self.listen_port = true;
            let port = if address.text.bytes().all(|c| c.is_ascii_digit()) { address.text.parse::<u16>().ok() } else { split_address(&address.text).1 };
            let port = port.or(if address.text.starts_with("unix:") { None } else { Some(80) });
            if let Some(port) = port.filter(|p| *p > 0)
                && self.b.get(&self.path(&["port"])).is_none()
            {
                self.set(&["port"], json!(port), d.file, address.span.clone());
            }
        }
        for a in &d.args[1..] {
            if let Some(n) = a.text.strip_prefix("backlog=") {
                match positive(n).filter(|n| *n >= 1) {
                    Some(n) => match self.backlog {
                        None => {
                            self.backlog = Some(n);
                            self.set(&["backlog"], json!(n), d.file, a.span.clone());
                        }
                        Some(first) if first != n => {
                            note(self.b, d.file, a.span.clone(), format!("listen backlog={n} differs from the first listen's backlog={first}; headroom checks the first"));
                        }
                        Some(_) => {}
                    },
                    None => self.invalid(d, "`backlog=N` with a positive number"),
                }
            }
        }
    }

    fn limit_req_zone(&mut self, d: &Directive) {
        let mut zone: Option<(String, u64, Range<usize>)> = None;
        let mut rate: Option<(String, Range<usize>)> = None;
        for a in d.args.iter().skip(1) {
            if let Some(z) = a.text.strip_prefix("zone=") {
                let (name, size) = z.split_once(':').unwrap_or((z, ""));
                match size_bytes(size) {
                    Some(bytes) => zone = Some((service_name(name), bytes, a.span.clone())),
                    None => {
                        self.invalid(d, "`zone=NAME:SIZE` such as `zone=general:10m`");
                        return;
                    }
                }
            } else if let Some(r) = a.text.strip_prefix("rate=") {
                rate = Some((r.to_string(), a.span.clone()));
            }
        }
        let (Some((name, bytes, zone_span)), Some((rate, rate_span))) = (zone, rate) else {
            self.invalid(d, "`limit_req_zone KEY zone=NAME:SIZE rate=Nr/s`");
            return;
        };
        let valid_rate = rate.strip_suffix("r/s").or_else(|| rate.strip_suffix("r/m")).is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
        if !valid_rate {
            self.b.ignored(d.file, rate_span, format!("limit_req_zone `{name}` rate `{rate}`: headroom models whole requests per second or minute (`10r/s`)"));
            return;
        }
        self.b.mark(&self.path(&["rate_limits", &name]), d.file, d.span.clone());
        self.set(&["rate_limits", &name, "rate"], json!(rate), d.file, rate_span);
        self.set(&["rate_limits", &name, "zone"], json!(ByteSize::from_bytes(bytes).to_string()), d.file, zone_span);
    }

    fn upstream(&mut self, d: &Directive) {
        let Some(raw) = d.args.first() else {
            self.invalid(d, "an upstream name");
            return;
        };
        let Some(block) = &d.block else {
            self.invalid(d, "a `{ server ...; }` block");
            return;
        };
        let name = service_name(&raw.text);
        if name != raw.text {
            note(self.b, d.file, raw.span.clone(), format!("upstream `{}` is named `{name}` in the spec (names are lowercase letters, digits, `-` and `_`)", raw.text));
        }
        self.upstreams.insert(raw.text.clone(), name.clone());
        let mut servers: Vec<Server> = Vec::new();
        let mut balance: Option<(&str, &Directive)> = None;
        let mut settings: Vec<(&str, Value, &Directive)> = Vec::new();
        for c in block {
            match c.name.text.as_str() {
                "server" => {
                    let Some(address) = c.args.first() else {
                        self.invalid(c, "a server address");
                        continue;
                    };
                    let (host, port) = split_address(&address.text);
                    let mut params = Vec::new();
                    for a in &c.args[1..] {
                        let (k, v) = a.text.split_once('=').unwrap_or((a.text.as_str(), ""));
                        params.push((k.to_string(), v.to_string(), a.span.clone()));
                    }
                    servers.push(Server { host, port, address: address.span.clone(), file: c.file, params });
                }
                "least_conn" => balance = Some(("least_conn", c)),
                "ip_hash" => balance = Some(("ip_hash", c)),
                "random" => balance = Some(("random", c)),
                "hash" => self.b.ignored(c.file, c.head(), format!("upstream `{name}`: `hash` balancing is not modelled (read as round robin)")),
                "keepalive" => match c.arg(0).and_then(positive) {
                    Some(n) => settings.push(("keepalive", json!(n), c)),
                    None => self.invalid(c, "a number of connections"),
                },
                "keepalive_requests" => match c.arg(0).and_then(positive) {
                    Some(n) => settings.push(("keepalive_requests", json!(n), c)),
                    None => self.invalid(c, "a number of requests"),
                },
                "keepalive_timeout" => match c.arg(0).and_then(time_ms) {
                    Some(ms) => settings.push(("keepalive_timeout", json!(duration_text(ms)), c)),
                    None => self.invalid(c, "a time such as `60s`"),
                },
                _ => {}
            }
        }
        let Some(first) = servers.first().cloned() else {
            self.b.ignored(d.file, d.head(), format!("upstream `{name}` has no `server` (nothing to model)"));
            return;
        };
        if let Some(why) = self.outside_target(first.host.as_deref()) {
            self.upstreams.remove(&raw.text);
            self.b.ignored(d.file, d.head(), format!("upstream `{name}` {why}: not an app server of these files, so not modelled"));
            self.outside.insert(raw.text.clone(), why);
            return;
        }
        self.defined_here.push(name.clone());
        let (app, _) = service_for_address(self.b, first.host.as_deref(), first.port, APP_KINDS, "app", true);
        let base = ["upstreams", name.as_str()];
        let pointer = spec_path::to_pointer(&self.path(&base));
        self.b.origins.insert(pointer, Origin { file: d.file, bytes: d.head() });
        self.set(&["upstreams", &name, "to"], json!(app), first.file, first.address.clone());
        if let Some((method, c)) = balance {
            self.set(&["upstreams", &name, "balance"], json!(method), c.file, c.span.clone());
        }
        for (key, value, c) in settings {
            self.set(&["upstreams", &name, key], value, c.file, c.span.clone());
        }
        // Per-server parameters: the first server's values.
        for key in ["max_fails", "fail_timeout", "max_conns", "weight"] {
            let Some((_, v, span)) = first.param(key) else { continue };
            let value = if key == "fail_timeout" { time_ms(v).map(|ms| json!(duration_text(ms))) } else { positive(v).map(|n| json!(n)) };
            match value {
                Some(value) if !(key == "weight" && value == json!(0)) => self.set(&["upstreams", &name, key], value, first.file, span.clone()),
                _ => self.b.unparsable(first.file, span.clone(), format!("nginx rejects `{key}={v}` in upstream `{name}`"), format!("write {key}= with a number")),
            }
        }
        let mut differing = Vec::new();
        for key in ["max_fails", "fail_timeout", "max_conns", "weight"] {
            let first_value = first.param(key).map(|(_, v, _)| v.as_str());
            if let Some(other) = servers.iter().find(|s| s.param(key).map(|(_, v, _)| v.as_str()) != first_value) {
                let shown = |v: Option<&str>| v.map_or("unset".to_string(), str::to_string);
                let label = |s: &Server| s.host.clone().unwrap_or_else(|| "unix socket".into());
                differing.push(format!(
                    "{key} {} on {} but {} on {}",
                    shown(first_value),
                    label(&first),
                    shown(other.param(key).map(|(_, v, _)| v.as_str())),
                    label(other)
                ));
            }
        }
        if !differing.is_empty() {
            note(self.b, d.file, d.head(), format!("upstream `{name}`: servers differ ({}); headroom uses the first server's values", differing.join("; ")));
        }
        if let Some(s) = servers.iter().find(|s| s.param("backup").is_some()) {
            note(self.b, s.file, s.address.clone(), format!("upstream `{name}` has backup servers; they are counted as replicas of `{app}`"));
        }
        let mut others: Vec<String> = Vec::new();
        let mut count = 0u64;
        let mut suffixed = false;
        for s in &servers {
            let (svc, _) = service_for_address(self.b, s.host.as_deref(), s.port, APP_KINDS, "app", true);
            if svc == app {
                count += 1;
                suffixed |= s.host.as_deref().is_some_and(|h| strip_replica_suffix(&host_label(h)) != host_label(h));
            } else if !others.contains(&svc) {
                others.push(svc);
            }
        }
        if !others.is_empty() {
            note(self.b, d.file, d.head(), format!("upstream `{name}` also lists servers of {}; headroom models it as pointing at `{app}` only", others.join(", ")));
        }
        self.app_service(&app, &first, count, suffixed, &name);
    }

    /// Makes sure the app service an upstream points at exists, with its replicas and port.
    fn app_service(&mut self, app: &str, first: &Server, count: u64, suffixed: bool, upstream: &str) {
        let created = matches!(ensure_service(self.b, app, "gunicorn", first.file, first.address.clone()), Ensure::Created);
        if created {
            let shown = first.host.clone().unwrap_or_else(|| "a unix socket".into());
            self.b.assumed(
                format!("upstream `{upstream}` sends to `{shown}` ({count} server(s)): created app service `{app}` as gunicorn, since nginx does not say what runs there"),
                format!("set `services.{app}.kind` (gunicorn or puma) and its workers, or pass the compose file / app server config too"),
            );
        }
        let replicas_path = p(&["services", app, "replicas"]);
        match self.b.get(&replicas_path).and_then(Value::as_u64) {
            None if count > 1 || suffixed => self.b.set(&replicas_path, json!(count), first.file, first.address.clone()),
            Some(existing) if existing != count && (count > 1 || suffixed) => {
                note(
                    self.b,
                    first.file,
                    first.address.clone(),
                    format!("upstream `{upstream}` lists {count} servers of `{app}`, but `{app}` has {existing} replicas; headroom keeps {existing}"),
                );
            }
            _ => {}
        }
        if let Some(port) = first.port {
            let port_path = p(&["services", app, "port"]);
            if self.b.get(&port_path).is_none() {
                self.b.set(&port_path, json!(port), first.file, first.address.clone());
            }
        }
    }

    /// Why a proxy target is not an app server of these files: a host outside them
    /// (`api.stripe.com`), or a service they declare that headroom does not model.
    fn outside_target(&self, host: Option<&str>) -> Option<String> {
        let host = host?;
        if is_external_host(self.b, host) {
            return Some(format!("sends to `{host}`, a host outside these files"));
        }
        let label = host_label(host);
        self.b.unmodelled.get(&label).map(|why| format!("sends to `{label}`, which {}", why.split(" (").next().unwrap_or(why)))
    }

    /// The upstream a `proxy_pass` target names (declaring an implicit one for a plain
    /// host:port), or None when it cannot be modelled.
    fn pass_target(&mut self, pass: &Directive, target: &Word) -> Option<String> {
        let text = target.text.as_str();
        let lower = text.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &text[7..]
        } else if lower.starts_with("https://") {
            &text[8..]
        } else {
            self.b.ignored(pass.file, pass.span.clone(), format!("proxy_pass `{text}`: not an http(s) URL"));
            return None;
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        if hostport.contains('$') {
            self.b.ignored(pass.file, pass.span.clone(), format!("proxy_pass `{text}` uses a variable; the upstream cannot be known statically"));
            return None;
        }
        if hostport.is_empty() {
            self.invalid(pass, "a URL such as `http://backend`");
            return None;
        }
        let (host, port) = if hostport.starts_with("unix:") { (None, None) } else { split_address(hostport) };
        let outside = match (&host, port) {
            (Some(h), None) if self.outside.contains_key(h) => self.outside.get(h).cloned(),
            (Some(h), _) if !self.upstreams.contains_key(h) => self.outside_target(Some(h)),
            _ => None,
        };
        if let Some(why) = outside {
            self.b.ignored(pass.file, pass.span.clone(), format!("proxy_pass `{text}` {why}: not an app server of these files; this location is not modelled"));
            return None;
        }
        if port.is_none()
            && let Some(h) = &host
        {
            if let Some(name) = self.upstreams.get(h) {
                return Some(name.clone());
            }
            let name = service_name(h);
            if self.b.get(&self.path(&["upstreams", &name])).is_some() {
                return Some(name);
            }
        }
        // A host (or host:port) without an upstream block: one implicit upstream.
        let (app, _) = service_for_address(self.b, host.as_deref(), port, APP_KINDS, "app", true);
        let name = match (&host, port) {
            (Some(h), None) if !is_ip(h) && !h.contains('.') => service_name(h),
            _ => app.clone(),
        };
        if self.b.get(&self.path(&["upstreams", &name])).is_none() {
            self.set(&["upstreams", &name, "to"], json!(app), pass.file, target.span.clone());
            note(self.b, pass.file, target.span.clone(), format!("proxy_pass `{text}` has no upstream block: modelled as upstream `{name}` to service `{app}`"));
            let server = Server { host: host.clone(), port, address: target.span.clone(), file: pass.file, params: Vec::new() };
            self.app_service(&app, &server, 1, false, &name);
        }
        Some(name)
    }

    fn location(&mut self, d: &Directive, parent: &Inherited) {
        let Some(block) = &d.block else { return };
        let ctx = self.level(block, parent);
        let path = location_path(&d.args);
        if let Some(pass) = block.iter().find(|c| c.is("proxy_pass")) {
            match &path {
                LocationPath::Path(word, text) if valid_location_path(text) => {
                    if let Some(target) = pass.args.first()
                        && let Some(upstream) = self.pass_target(pass, target)
                    {
                        self.add_location(d, word, text, pass, target, &upstream, &ctx);
                    }
                }
                LocationPath::Path(_, text) => self.b.ignored(d.file, d.head(), format!("location `{text}`: the path cannot be written in the spec")),
                LocationPath::Regex(text) => {
                    self.b.ignored(d.file, d.head(), format!("regex location `{text}` with proxy_pass: headroom models prefix and exact locations only"));
                }
                LocationPath::Named(text) => self.b.ignored(d.file, d.head(), format!("named location `{text}` is not modelled")),
                LocationPath::Invalid => self.invalid(d, "a location path"),
            }
        } else if let Some(other) = block.iter().find(|c| matches!(c.name.text.as_str(), "uwsgi_pass" | "fastcgi_pass" | "grpc_pass" | "scgi_pass")) {
            self.b.ignored(other.file, other.span.clone(), format!("`{}`: headroom models proxy_pass only", other.name.text));
        }
        for c in block {
            if c.is("location") {
                self.location(c, &ctx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_location(&mut self, d: &Directive, word: &Word, path: &str, pass: &Directive, target: &Word, upstream: &str, ctx: &Inherited) {
        if self.locations.is_none() {
            let list_path = self.path(&["locations"]);
            let existing = self.b.get(&list_path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let mut known = HashMap::new();
            for (i, l) in existing.iter().enumerate() {
                let key = (l.get("path").and_then(Value::as_str).unwrap_or_default().to_string(), l.get("upstream").and_then(Value::as_str).unwrap_or_default().to_string());
                known.entry(key).or_insert(i);
            }
            self.locations = Some((known, existing.len()));
        }
        let Some((known, count)) = self.locations.as_mut() else { return };
        let index = *known.entry((path.to_string(), upstream.to_string())).or_insert_with(|| {
            *count += 1;
            *count - 1
        });
        let svc = self.svc.clone();
        let at = |key: &str| spec_path::render(&[Segment::Key("services".into()), Segment::Key(svc.clone()), Segment::Key("locations".into()), Segment::Index(index), Segment::Key(key.into())]);
        let base = spec_path::render(&[Segment::Key("services".into()), Segment::Key(svc.clone()), Segment::Key("locations".into()), Segment::Index(index)]);
        self.b.set(&at("path"), json!(path), d.file, word.span.clone());
        self.b.origins.entry(spec_path::to_pointer(&base)).or_insert(Origin { file: d.file, bytes: d.name.span.start..word.span.end });
        self.b.set(&at("upstream"), json!(upstream), pass.file, target.span.clone());
        for (key, setting) in [("read_timeout", &ctx.read), ("send_timeout", &ctx.send), ("connect_timeout", &ctx.connect)] {
            if let Some(s) = setting {
                self.b.set(&at(key), json!(duration_text(s.value)), s.file, s.span.clone());
            }
        }
        if let Some((file, span)) = &ctx.upgrade {
            self.b.set(&at("websocket"), json!(true), *file, span.clone());
        }
        if let Some(limit) = &ctx.limit_req {
            self.b.set(&at("rate_limit"), json!(limit.zone), limit.file, limit.span.clone());
            if let Some(burst) = &limit.burst {
                self.b.set(&at("burst"), json!(burst.value), burst.file, burst.span.clone());
            }
        }
    }
}

enum LocationPath<'a> {
    Path(&'a Word, String),
    Regex(String),
    Named(String),
    Invalid,
}

fn location_path(args: &[Word]) -> LocationPath<'_> {
    match args {
        [modifier, path] => match modifier.text.as_str() {
            "=" | "^~" => LocationPath::Path(path, path.text.clone()),
            "~" | "~*" => LocationPath::Regex(path.text.clone()),
            _ => LocationPath::Invalid,
        },
        [path] => {
            let t = path.text.as_str();
            if let Some(rest) = t.strip_prefix("^~").or_else(|| t.strip_prefix('=')) {
                LocationPath::Path(path, rest.to_string())
            } else if t.starts_with('~') {
                LocationPath::Regex(t.to_string())
            } else if t.starts_with('@') {
                LocationPath::Named(t.to_string())
            } else {
                LocationPath::Path(path, t.to_string())
            }
        }
        _ => LocationPath::Invalid,
    }
}

fn valid_location_path(path: &str) -> bool {
    path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '#' | '\\'))
}

/// Without a shared `zone`, nginx counts `max_conns` per worker process: the limit a
/// server sees is `max_conns x worker_processes`. The spec's `max_conns` is the shared
/// limit (headroom renders a zone), so zoneless upstreams are written multiplied, with a
/// note. Run after every nginx file: worker_processes may come from another file.
fn reconcile_max_conns(b: &mut ImportBuilder, svc: &str, defined_here: &[String]) {
    let workers_path = p(&["services", svc, "worker_processes"]);
    let workers_origin = b.origins.get(&spec_path::to_pointer(&workers_path)).cloned();
    let workers: Option<(u64, String)> = match b.get(&workers_path) {
        None => Some((1, "worker_processes not set (nginx's default is 1)".into())),
        Some(Value::Number(n)) => n.as_u64().map(|n| (n, format!("worker_processes {n}"))),
        Some(_) => {
            let cpus = b
                .get(&p(&["services", svc, "resources", "cpus"]))
                .and_then(Value::as_f64)
                .or_else(|| {
                    let machine = b.get(&p(&["services", svc, "machine"]))?.as_str()?.to_string();
                    b.get(&p(&["machines", &machine, "cpus"]))?.as_f64()
                });
            cpus.map(|c| (c.ceil().max(1.0) as u64, format!("worker_processes auto = {} cpus", c.ceil())))
        }
    };
    let names: Vec<String> = b.get(&p(&["services", svc, "upstreams"])).and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for name in names {
        let mc_path = p(&["services", svc, "upstreams", &name, "max_conns"]);
        let Some(origin) = b.origins.get(&spec_path::to_pointer(&mc_path)).cloned() else { continue };
        let Some(raw) = b
            .sources
            .get(origin.file)
            .and_then(|s| s.text.get(origin.bytes.clone()))
            .and_then(|t| t.strip_prefix("max_conns="))
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        if raw == 0 {
            continue;
        }
        let Some(header) = b.origins.get(&spec_path::to_pointer(&p(&["services", svc, "upstreams", &name]))).cloned() else { continue };
        let Some(zone) = b.sources.get(header.file).and_then(|s| {
            let (tree, _) = parse(&s.text, header.bytes.start..s.text.len(), header.file, MAX_NESTING, true);
            let block = tree.into_iter().next()?.block?;
            Some(block.iter().any(|d| d.is("zone")))
        }) else {
            continue;
        };
        if zone {
            if b.get(&mc_path) != Some(&json!(raw)) {
                b.set(&mc_path, json!(raw), origin.file, origin.bytes.clone());
            }
            continue;
        }
        match &workers {
            Some((w, why)) => {
                let want = raw.saturating_mul(*w);
                if b.get(&mc_path) != Some(&json!(want)) {
                    b.set(&mc_path, json!(want), origin.file, origin.bytes.clone());
                    if *w > 1 {
                        let at = workers_origin.as_ref().and_then(|o| b.sources.get(o.file).map(|s| format!(", {}:{}", s.path.display(), s.line_col(o.bytes.start).line))).unwrap_or_default();
                        note(
                            b,
                            origin.file,
                            origin.bytes.clone(),
                            format!(
                                "upstream `{name}` has no shared `zone`, so max_conns={raw} is counted by each worker process: {raw} x {w} ({why}{at}) = {want} per server; the spec's max_conns is the shared limit"
                            ),
                        );
                    }
                }
            }
            None => {
                if defined_here.contains(&name) {
                    note(
                        b,
                        origin.file,
                        origin.bytes.clone(),
                        format!("upstream `{name}` has no shared `zone` and worker_processes is auto with unknown CPUs: max_conns={raw} is per worker, counted once"),
                    );
                }
            }
        }
    }
}

/// Kinds an upstream server can be.
const APP_KINDS: &[&str] = &["gunicorn", "puma"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("nginx-test-does-not-exist/nginx.conf", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, path: &str) -> usize {
        b.origin_line(path)
    }

    fn errors(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().filter(|d| d.rule == crate::import::UNPARSABLE).map(|d| format!("{}:{} {}", d.span.as_ref().map_or(String::new(), |s| s.file.clone()), d.span.as_ref().map_or(0, |s| s.line), d.message)).collect()
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().filter(|d| d.rule != crate::import::UNPARSABLE).map(|d| d.message.clone()).collect()
    }

    #[test]
    fn tokenizer_handles_quotes_escapes_comments_and_variables() {
        let text = "a \"b c\" 'd\\'e' f\\;g # comment ; {\nh ${host}x \"\\t\";";
        let (tree, errors) = parse(text, 0..text.len(), 0, MAX_NESTING, false);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(tree.len(), 1);
        let d = &tree[0];
        let words: Vec<&str> = d.args.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(d.name.text, "a");
        assert_eq!(words, vec!["b c", "d'e", "f\\;g", "h", "${host}x", "\t"]);
        assert_eq!(&text[d.args[0].span.clone()], "\"b c\"");
    }

    #[test]
    fn closing_brace_does_not_end_an_unquoted_word_as_in_nginx() {
        let text = "return 200 foo};";
        let (tree, errors) = parse(text, 0..text.len(), 0, MAX_NESTING, false);
        assert!(errors.is_empty());
        assert_eq!(tree[0].args[1].text, "foo}");
    }

    #[test]
    fn directive_tree_has_spans() {
        let text = "events {\n  worker_connections 1024;\n}\nhttp { server { listen 80; } }\n";
        let (tree, errors) = parse(text, 0..text.len(), 0, MAX_NESTING, false);
        assert!(errors.is_empty());
        assert_eq!(tree.len(), 2);
        let wc = &tree[0].block.as_ref().unwrap()[0];
        assert_eq!(&text[wc.span.clone()], "worker_connections 1024;");
        assert_eq!(&text[tree[1].span.clone()], "http { server { listen 80; } }");
    }

    #[test]
    fn reads_main_context_and_events() {
        let b = read_text("user nginx;\nworker_processes 16;\nworker_rlimit_nofile 65535;\nevents {\n    worker_connections 10000;\n    use epoll;\n}\n");
        assert_eq!(b.get("services.nginx.kind"), Some(&json!("nginx")));
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!(16)));
        assert_eq!(b.get("services.nginx.worker_rlimit_nofile"), Some(&json!(65535)));
        assert_eq!(b.get("services.nginx.worker_connections"), Some(&json!(10000)));
        assert_eq!(line(&b, "services.nginx.worker_connections"), 5);
        assert_eq!(line(&b, "services.nginx.worker_processes"), 2);
        assert!(errors(&b).is_empty());
    }

    #[test]
    fn worker_processes_auto() {
        let b = read_text("worker_processes auto;\n");
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!("auto")));
    }

    const LB: &str = "\
upstream django_backend {
    keepalive 128;
    keepalive_timeout 60s;
    keepalive_requests 1000;
    server web-1:8000 max_fails=3 fail_timeout=30s max_conns=300 weight=1;
    server web-2:8000 max_fails=3 fail_timeout=30s max_conns=300 weight=1;
    server web-3:8000 max_fails=3 fail_timeout=30s max_conns=300 weight=1;
}
upstream django_ws {
    ip_hash;
    zone django_ws 64k;
    server web-1:8000 max_conns=200;
    server web-2:8000 max_conns=100;
    server web-3:8000 max_conns=200;
}
limit_req_zone $binary_remote_addr zone=general_limit:10m rate=1000r/s;
server {
    listen 80 backlog=4096;
    server_name example.com;
    proxy_read_timeout 120s;
    limit_req zone=general_limit burst=50 nodelay;
    location / {
        proxy_pass http://django_backend;
        proxy_connect_timeout 5s;
    }
    location /ws/ {
        proxy_pass http://django_ws;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection \"upgrade\";
        proxy_read_timeout 300s;
    }
}
";

    #[test]
    fn reads_upstreams_servers_and_app_service() {
        let b = read_text(LB);
        let up = b.get("services.nginx.upstreams.django_backend").unwrap();
        assert_eq!(up["to"], json!("web"));
        assert_eq!(up["keepalive"], json!(128));
        assert_eq!(up["keepalive_timeout"], json!("1m"));
        assert_eq!(up["keepalive_requests"], json!(1000));
        assert_eq!(up["max_fails"], json!(3));
        assert_eq!(up["fail_timeout"], json!("30s"));
        assert_eq!(up["weight"], json!(1));
        // No zone, worker_processes unset (1): as written.
        assert_eq!(up["max_conns"], json!(300));
        assert_eq!(line(&b, "services.nginx.upstreams.django_backend.max_conns"), 5);
        assert_eq!(line(&b, "services.nginx.upstreams.django_backend.to"), 5);
        assert_eq!(b.get("services.nginx.upstreams.django_ws.balance"), Some(&json!("ip_hash")));
        assert_eq!(b.get("services.web.kind"), Some(&json!("gunicorn")));
        assert_eq!(b.get("services.web.replicas"), Some(&json!(3)));
        assert_eq!(b.get("services.web.port"), Some(&json!(8000)));
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::ASSUMED && d.message.contains("created app service `web`")));
        let ns = notes(&b);
        assert!(ns.iter().any(|n| n.contains("servers differ") && n.contains("max_conns 200 on web-1 but 100 on web-2")), "{ns:?}");
    }

    #[test]
    fn reads_locations_with_inherited_timeouts_websocket_and_rate_limits() {
        let b = read_text(LB);
        let locs = b.get("services.nginx.locations").unwrap().as_array().unwrap();
        assert_eq!(locs.len(), 2);
        assert_eq!(locs[0]["path"], json!("/"));
        assert_eq!(locs[0]["upstream"], json!("django_backend"));
        assert_eq!(locs[0]["read_timeout"], json!("2m"));
        assert_eq!(locs[0]["connect_timeout"], json!("5s"));
        assert_eq!(locs[0]["rate_limit"], json!("general_limit"));
        assert_eq!(locs[0]["burst"], json!(50));
        assert_eq!(line(&b, "services.nginx.locations[0].read_timeout"), 20, "inherited: points at the server-level directive");
        assert_eq!(line(&b, "services.nginx.locations[0].connect_timeout"), 24);
        assert_eq!(locs[1]["websocket"], json!(true));
        assert_eq!(locs[1]["read_timeout"], json!("5m"));
        assert_eq!(line(&b, "services.nginx.locations[1].read_timeout"), 31);
        assert_eq!(b.get("services.nginx.rate_limits.general_limit"), Some(&json!({"rate": "1000r/s", "zone": "10MiB"})));
        assert_eq!(b.get("services.nginx.backlog"), Some(&json!(4096)));
        assert_eq!(b.get("services.nginx.port"), Some(&json!(80)));
        assert_eq!(b.get("services.nginx.server_name"), Some(&json!("example.com")));
    }

    #[test]
    fn max_conns_without_zone_is_multiplied_by_worker_processes() {
        let b = read_text(&format!("worker_processes 4;\nhttp {{\n{LB}}}\n"));
        assert_eq!(b.get("services.nginx.upstreams.django_backend.max_conns"), Some(&json!(1200)));
        assert_eq!(line(&b, "services.nginx.upstreams.django_backend.max_conns"), 7);
        // With a zone the limit is shared: as written.
        assert_eq!(b.get("services.nginx.upstreams.django_ws.max_conns"), Some(&json!(200)));
        assert!(notes(&b).iter().any(|n| n.contains("max_conns=300 is counted by each worker process: 300 x 4")));
    }

    #[test]
    fn worker_processes_from_a_later_file_multiplies_earlier_upstreams() {
        let mut b = ImportBuilder::new("t");
        let lb = b.add_source(SourceFile::new("x/load-balancer.conf", LB.to_string()));
        read(&mut b, lb);
        assert_eq!(b.get("services.nginx.upstreams.django_backend.max_conns"), Some(&json!(300)));
        let main = b.add_source(SourceFile::new("x/nginx.conf", "worker_processes 16;\nevents { worker_connections 10000; }\n".to_string()));
        read(&mut b, main);
        assert_eq!(b.get("services.nginx.upstreams.django_backend.max_conns"), Some(&json!(4800)));
        // still pointing at the server line that says max_conns=300
        let origin = &b.origins[&spec_path::to_pointer("services.nginx.upstreams.django_backend.max_conns")];
        assert_eq!(origin.file, lb);
        // Reading again changes nothing and adds no second note.
        let before = b.diagnostics.len();
        let again = b.add_source(SourceFile::new("y/other.conf", "gzip on;\n".to_string()));
        read(&mut b, again);
        assert_eq!(b.diagnostics.len(), before);
    }

    #[test]
    fn proxy_pass_to_a_host_declares_an_implicit_upstream() {
        let b = read_text("server { location /api/ { proxy_pass http://api:9000/; } }\n");
        assert_eq!(b.get("services.nginx.upstreams.api.to"), Some(&json!("api")));
        assert_eq!(b.get("services.nginx.locations[0].upstream"), Some(&json!("api")));
        assert_eq!(b.get("services.api.port"), Some(&json!(9000)));
    }

    /// Reads `text` after services `web` (gunicorn, port 8000) and `api` (gunicorn,
    /// port 9000) and an unmodelled `frontend` are known, as a compose file read first
    /// would leave them.
    fn read_with_services(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("nginx-test-does-not-exist/nginx.conf", text.to_string()));
        for (name, port) in [("web", 8000), ("api", 9000)] {
            b.set(&format!("services.{name}.kind"), json!("gunicorn"), id, 0..0);
            b.set(&format!("services.{name}.port"), json!(port), id, 0..0);
        }
        b.unmodelled.insert("frontend".into(), "runs Node.js, which headroom does not model (listed)".into());
        read(&mut b, id);
        b
    }

    #[test]
    fn proxies_to_hosts_outside_the_files_are_not_app_servers() {
        let b = read_with_services(
            "upstream s3 { server assets.s3.amazonaws.com:443; }\nserver {\n  location /pay/ { proxy_pass https://api.stripe.com/v1/; }\n  location /assets/ { proxy_pass https://s3; }\n  location / { proxy_pass http://frontend:3000; }\n  location /app/ { proxy_pass http://web:8000; }\n}\n",
        );
        let services: Vec<&String> = b.value["services"].as_object().unwrap().keys().collect();
        assert_eq!(services, ["web", "api", "nginx"], "nothing invented: {services:?}");
        let locations = b.get("services.nginx.locations").and_then(Value::as_array).unwrap();
        assert_eq!(locations.len(), 1, "{locations:?}");
        assert_eq!(locations[0]["path"], json!("/app/"));
        let ns = notes(&b);
        assert!(ns.iter().any(|n| n.contains("proxy_pass `https://api.stripe.com/v1/` sends to `api.stripe.com`, a host outside these files")), "{ns:?}");
        assert!(ns.iter().any(|n| n.contains("upstream `s3` sends to `assets.s3.amazonaws.com`")), "{ns:?}");
        assert!(ns.iter().any(|n| n.contains("sends to `frontend`, which runs Node.js")), "{ns:?}");
    }

    #[test]
    fn upstream_servers_by_address_are_mapped_by_port() {
        // Both apps on the host nginx runs on: the port says which is which.
        let b = read_with_services("upstream a { server 127.0.0.1:9000; }\nupstream b { server localhost:8000; }\nserver { location /api/ { proxy_pass http://a; } location / { proxy_pass http://b; } }\n");
        assert_eq!(b.get("services.nginx.upstreams.a.to"), Some(&json!("api")));
        assert_eq!(b.get("services.nginx.upstreams.b.to"), Some(&json!("web")));
    }

    #[test]
    fn regex_and_variable_locations_are_notes() {
        let b = read_text("server { location ~ ^/x { proxy_pass http://a; } location /y { proxy_pass http://$b; } }\n");
        let ns = notes(&b);
        assert!(ns.iter().any(|n| n.contains("regex location")), "{ns:?}");
        assert!(ns.iter().any(|n| n.contains("uses a variable")), "{ns:?}");
        assert!(errors(&b).is_empty());
    }

    #[test]
    fn unknown_directives_are_ignored_silently() {
        let b = read_text("frobnicate on;\nhttp { gzip on; sendfile on; whatever 1 2 3; }\n");
        assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
    }

    #[test]
    fn unterminated_block_is_an_error_at_its_line() {
        let b = read_text("worker_processes 2;\nhttp {\n  server {\n    listen 80;\n  }\n");
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains(":2 ") && e[0].contains("block `http` opened here is never closed"), "{e:?}");
        // what parsed is still read
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!(2)));
    }

    #[test]
    fn unbalanced_brace_and_unterminated_quote_are_errors() {
        let b = read_text("events { }\n}\nworker_processes 1;\n");
        assert!(errors(&b).iter().any(|e| e.contains(":2 ") && e.contains("unexpected `}`")), "{:?}", errors(&b));
        let b = read_text("http {\n  add_header X \"abc;\n}\n");
        assert!(errors(&b).iter().any(|e| e.contains(":2 ") && e.contains("unterminated quoted string")), "{:?}", errors(&b));
        let b = read_text("worker_processes 2");
        assert!(errors(&b).iter().any(|e| e.contains(":1 ") && e.contains("no closing `;`")), "{:?}", errors(&b));
        let b = read_text("a \"b\"c;\n");
        assert!(errors(&b).iter().any(|e| e.contains("after a quoted string")));
    }

    #[test]
    fn invalid_values_are_errors_with_lines() {
        let b = read_text("worker_processes many;\nevents {\n worker_connections lots;\n}\n");
        let e = errors(&b);
        assert!(e.iter().any(|e| e.contains(":1 ") && e.contains("worker_processes")), "{e:?}");
        assert!(e.iter().any(|e| e.contains(":3 ") && e.contains("worker_connections")), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let text = "a {".repeat(100_000);
        let b = read_text(&text);
        let e = errors(&b);
        assert!(e.iter().any(|e| e.contains("nested deeper")), "{:?}", &e[..e.len().min(3)]);
        assert!(e.len() <= MAX_ERRORS + 1);
    }

    #[test]
    fn binary_data_is_an_error() {
        let b = read_text("\u{0}\u{1}\u{2}garbage{{{");
        let e = errors(&b);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("binary"), "{e:?}");
        let noise: String = (0..4000u32).map(|i| char::from_u32((i * 7919) % 0x7f).unwrap()).collect();
        let b = read_text(&noise);
        assert!(!errors(&b).is_empty());
    }

    #[test]
    fn fuzzish_inputs_never_panic() {
        for text in ["{", "}", ";", "\"", "'", "\\", "a\\", "$", "${", "a ${b", "location", "upstream x { server; }", "upstream { }", "server { listen; location; location / { proxy_pass; } }", "limit_req_zone a zone=b rate=1r/s;", "é { ü; }", "events { worker_connections 99999999999999999999999; }"] {
            let _ = read_text(text);
        }
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn read_path(path: &Path) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let text = std::fs::read_to_string(path).unwrap();
        let id = b.add_source(SourceFile::new(path, text));
        read(&mut b, id);
        b
    }

    #[test]
    fn includes_relative_and_glob() {
        let dir = temp();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), "worker_processes 4;\nhttp {\n  proxy_read_timeout 90s;\n  include conf.d/*.conf;\n  include mime.types;\n}\n").unwrap();
        std::fs::write(dir.path().join("conf.d/a.conf"), "upstream app { server web-1:8000 max_conns=10; server web-2:8000 max_conns=10; }\n").unwrap();
        std::fs::write(dir.path().join("conf.d/b.conf"), "server {\n  listen 8080;\n  location / { proxy_pass http://app; }\n}\n").unwrap();
        std::fs::write(dir.path().join("conf.d/.hidden.conf"), "this is not read\n").unwrap();
        let b = read_path(&dir.path().join("nginx.conf"));
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        assert_eq!(b.get("services.nginx.upstreams.app.max_conns"), Some(&json!(40)));
        assert_eq!(b.get("services.nginx.locations[0].read_timeout"), Some(&json!("90s")));
        assert_eq!(line(&b, "services.nginx.locations[0].read_timeout"), 3);
        assert_eq!(line(&b, "services.nginx.locations[0].upstream"), 3);
        let origin = &b.origins[&spec_path::to_pointer("services.nginx.locations[0].upstream")];
        assert!(b.sources[origin.file].path.ends_with("conf.d/b.conf"));
        assert_eq!(b.get("services.nginx.port"), Some(&json!(8080)));
        // Reading the included file again (a directory scan passes it too) adds nothing.
        let mut b = b;
        let again = b.add_source(SourceFile::new(dir.path().join("conf.d/b.conf"), std::fs::read_to_string(dir.path().join("conf.d/b.conf")).unwrap()));
        read(&mut b, again);
        assert_eq!(b.get("services.nginx.locations").unwrap().as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_file_passed_on_its_own_and_included_is_read_once() {
        let dir = temp();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), "http {\n  proxy_read_timeout 90s;\n  include conf.d/*.conf;\n  server { include snippets.conf; }\n  server { include snippets.conf; }\n}\n").unwrap();
        std::fs::write(dir.path().join("snippets.conf"), "location /x { proxy_pass http://app:80; }\nbroken {\n").unwrap();
        std::fs::write(dir.path().join("conf.d/app.conf"), "server { location / { proxy_pass http://app; } }\n").unwrap();
        let mut b = ImportBuilder::new("t");
        // the directory order: conf.d/app.conf first, on its own
        let app = dir.path().join("conf.d/app.conf");
        let id = b.add_source(SourceFile::new(&app, std::fs::read_to_string(&app).unwrap()));
        read(&mut b, id);
        let main = dir.path().join("nginx.conf");
        let id = b.add_source(SourceFile::new(&main, std::fs::read_to_string(&main).unwrap()));
        read(&mut b, id);
        let locs = b.get("services.nginx.locations").unwrap().as_array().unwrap();
        assert_eq!(locs.len(), 2, "{locs:?}");
        // read in context the second time: the http-level timeout applies
        assert_eq!(locs[0]["read_timeout"], json!("90s"));
        assert_eq!(b.sources.len(), 3, "{:?}", b.sources.iter().map(|s| s.path.clone()).collect::<Vec<_>>());
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn include_of_container_path_is_found_next_to_the_file() {
        let dir = temp();
        std::fs::create_dir_all(dir.path().join("nginx/conf.d")).unwrap();
        std::fs::write(dir.path().join("nginx/nginx.conf"), "http { include /etc/nginx/conf.d/*.conf; include /etc/nginx/missing.conf; }\n").unwrap();
        std::fs::write(dir.path().join("nginx/conf.d/default.conf"), "upstream u { server app:8000; }\n").unwrap();
        let b = read_path(&dir.path().join("nginx/nginx.conf"));
        assert_eq!(b.get("services.nginx.upstreams.u.to"), Some(&json!("app")));
        assert!(notes(&b).iter().any(|n| n.contains("include `/etc/nginx/missing.conf`: no such file")), "{:?}", notes(&b));
    }

    #[test]
    fn include_loop_is_an_error_not_a_crash() {
        let dir = temp();
        std::fs::write(dir.path().join("a.conf"), "worker_processes 2;\ninclude b.conf;\n").unwrap();
        std::fs::write(dir.path().join("b.conf"), "\n\ninclude a.conf;\n").unwrap();
        let b = read_path(&dir.path().join("a.conf"));
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("b.conf:3") && e[0].contains("include loop: a.conf -> b.conf -> a.conf"), "{e:?}");
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!(2)));
        // a file including itself
        std::fs::write(dir.path().join("self.conf"), "include self.conf;\n").unwrap();
        let b = read_path(&dir.path().join("self.conf"));
        assert!(errors(&b).iter().any(|e| e.contains("include loop: self.conf -> self.conf")));
    }

    #[test]
    fn include_depth_and_file_count_are_bounded() {
        let dir = temp();
        // a chain deeper than the limit
        for i in 0..40 {
            std::fs::write(dir.path().join(format!("d{i}.conf")), format!("include d{}.conf;\n", i + 1)).unwrap();
        }
        std::fs::write(dir.path().join("d40.conf"), "worker_processes 3;\n").unwrap();
        let b = read_path(&dir.path().join("d0.conf"));
        assert!(errors(&b).iter().any(|e| e.contains("nested deeper than 16")), "{:?}", errors(&b));
        // many files through one glob
        let many = dir.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..400 {
            std::fs::write(many.join(format!("f{i:03}.conf")), "gzip on;\n").unwrap();
        }
        std::fs::write(dir.path().join("main.conf"), "include many/*.conf;\ninclude many/*.conf;\n").unwrap();
        let b = read_path(&dir.path().join("main.conf"));
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("more than 256 files"), "{e:?}");
        assert!(b.sources.len() <= MAX_INCLUDED_FILES + 1);
    }

    #[test]
    fn huge_and_binary_includes_are_errors() {
        let dir = temp();
        let big = "gzip on;\n".repeat(1_000_000);
        std::fs::write(dir.path().join("big.conf"), &big).unwrap();
        std::fs::write(dir.path().join("bin.conf"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
        std::fs::write(dir.path().join("main.conf"), "include big.conf;\ninclude bin.conf;\nworker_processes 5;\n").unwrap();
        let b = read_path(&dir.path().join("main.conf"));
        let e = errors(&b);
        assert!(e.iter().any(|e| e.contains("larger than")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("bin.conf") && e.contains("not a text file") && e.contains("main.conf:2")), "{e:?}");
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!(5)));
    }

    #[test]
    fn nginx_t_dump_is_split_and_includes_resolved() {
        let dump = "\
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
worker_processes 8;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    include /etc/nginx/conf.d/*.conf;
}

# configuration file /etc/nginx/mime.types:
types {
    text/html html;
}

# configuration file /etc/nginx/conf.d/default.conf:
upstream backend {
    server app-1:3000 max_conns=5;
    server app-2:3000 max_conns=5;
}
server {
    location / { proxy_pass http://backend; }
}
";
        let b = read_text(dump);
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        assert_eq!(b.get("services.nginx.worker_processes"), Some(&json!(8)));
        assert_eq!(b.get("services.nginx.worker_connections"), Some(&json!(4096)));
        assert_eq!(b.get("services.nginx.upstreams.backend.max_conns"), Some(&json!(40)));
        assert_eq!(line(&b, "services.nginx.upstreams.backend.to"), 18);
        assert_eq!(b.get("services.app.replicas"), Some(&json!(2)));
        assert_eq!(b.get("services.nginx.locations[0].upstream"), Some(&json!("backend")));
    }

    #[test]
    fn top_level_upstream_in_a_mounted_main_config_is_an_error() {
        let conf = "upstream app {\n    server app-1:8000;\n}\nserver {\n    location / { proxy_pass http://app; }\n}\n";
        let mut b = ImportBuilder::new("t");
        b.add_source(SourceFile::new("x/docker-compose.yml", "services:\n  nginx:\n    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n".into()));
        let id = b.add_source(SourceFile::new("x/nginx.conf", conf.into()));
        read(&mut b, id);
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("nginx.conf:1 ") && e[0].contains("mounted as /etc/nginx/nginx.conf") && e[0].contains("no `events {}`"), "{e:?}");
        assert_eq!(b.get("services.nginx.upstreams.app.to"), Some(&json!("app")));
        // Not mounted: a note, since it may be a conf.d file.
        let b = read_text(conf);
        assert!(errors(&b).is_empty());
        assert!(notes(&b).iter().any(|n| n.contains("read as a conf.d file")), "{:?}", notes(&b));
        // Mounted into conf.d: nothing to say.
        let mut b = ImportBuilder::new("t");
        b.add_source(SourceFile::new("x/docker-compose.yml", "volumes: [\"./nginx.conf:/etc/nginx/conf.d/default.conf\"]\n".into()));
        let id = b.add_source(SourceFile::new("x/lb.conf", conf.into()));
        read(&mut b, id);
        assert!(errors(&b).is_empty());
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(rel)
    }

    fn add_fixture(b: &mut ImportBuilder, rel: &str) -> FileId {
        let path = fixture(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        b.add_source(SourceFile::new(path, text))
    }

    /// The builder's value validates as a spec (schema, types and references).
    fn validates(b: &ImportBuilder) -> Result<crate::spec::Spec, Vec<String>> {
        let mut value = b.value.clone();
        crate::load::validate_value(&mut value, &|_: &str, _: bool| None).map_err(|problems| problems.into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect())
    }

    #[test]
    fn django_compose_fixture() {
        let mut b = ImportBuilder::new("arena");
        // the order `read_paths` reads a directory in
        let lb = add_fixture(&mut b, "django-compose/nginx/load-balancer.conf");
        read(&mut b, lb);
        let main = add_fixture(&mut b, "django-compose/nginx/nginx.conf");
        read(&mut b, main);
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        let nginx = b.get("services.nginx").unwrap();
        assert_eq!(nginx["kind"], json!("nginx"));
        assert_eq!(nginx["worker_processes"], json!(16));
        assert_eq!(nginx["worker_connections"], json!(10000));
        assert_eq!(nginx["worker_rlimit_nofile"], json!(65535));
        assert_eq!(line(&b, "services.nginx.worker_processes"), 4);
        assert_eq!(line(&b, "services.nginx.worker_connections"), 14);
        assert_eq!(line(&b, "services.nginx.worker_rlimit_nofile"), 7);
        assert_eq!(
            nginx["upstreams"]["django_backend"],
            json!({"to": "web", "keepalive": 128, "keepalive_timeout": "1m", "keepalive_requests": 1000, "max_fails": 3, "fail_timeout": "30s", "max_conns": 4800, "weight": 1})
        );
        assert_eq!(
            nginx["upstreams"]["django_streaming"],
            json!({"to": "web", "balance": "least_conn", "keepalive": 64, "keepalive_timeout": "2m", "max_fails": 2, "fail_timeout": "1m", "max_conns": 2400, "weight": 1})
        );
        assert_eq!(nginx["upstreams"]["django_websocket"]["balance"], json!("ip_hash"));
        assert_eq!(nginx["upstreams"]["django_websocket"]["max_conns"], json!(3200));
        // max_conns points at `max_conns=300` on the first server line, in load-balancer.conf
        let origin = &b.origins[&spec_path::to_pointer("services.nginx.upstreams.django_backend.max_conns")];
        assert_eq!(origin.file, lb);
        assert_eq!(&b.sources[lb].text[origin.bytes.clone()], "max_conns=300");
        assert_eq!(line(&b, "services.nginx.upstreams.django_backend.max_conns"), 14);
        assert_eq!(b.get("services.web.kind"), Some(&json!("gunicorn")));
        assert_eq!(b.get("services.web.replicas"), Some(&json!(15)));
        assert_eq!(b.get("services.web.port"), Some(&json!(8000)));
        let paths: Vec<&str> = nginx["locations"].as_array().unwrap().iter().map(|l| l["path"].as_str().unwrap()).collect();
        assert_eq!(paths, vec!["/health/", "/api/auth/", "/api/stream/", "/ws/", "/"]);
        let stream = &nginx["locations"][2];
        assert_eq!(
            stream,
            &json!({"path": "/api/stream/", "upstream": "django_streaming", "read_timeout": "10m", "send_timeout": "10m", "connect_timeout": "10s", "rate_limit": "streaming_limit", "burst": 100})
        );
        assert_eq!(nginx["locations"][3]["websocket"], json!(true));
        assert_eq!(nginx["locations"][3]["read_timeout"], json!("1h"));
        assert_eq!(nginx["locations"][4]["rate_limit"], json!("general_limit"));
        assert_eq!(nginx["rate_limits"]["auth_limit"], json!({"rate": "100r/s", "zone": "10MiB"}));
        assert_eq!(nginx["backlog"], json!(4096));
        assert_eq!(nginx["port"], json!(80));
        assert_eq!(nginx["server_name"], json!("backend.arena.ai4bharat.org"));
        let ns = notes(&b);
        assert!(ns.iter().any(|n| n.contains("max_conns=300 is counted by each worker process: 300 x 16 (worker_processes 16, ") && n.contains("nginx.conf:4) = 4800 per server")), "{ns:?}");
        let spec = validates(&b).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(spec.services.len(), 2);
    }

    #[test]
    fn voiceassist_fixture() {
        let mut b = ImportBuilder::new("voiceassist");
        let id = add_fixture(&mut b, "voiceassist/nginx.conf");
        read(&mut b, id);
        let up = b.get("services.nginx.upstreams.voiceassist_backend").unwrap();
        assert_eq!(up, &json!({"to": "voiceassist-server", "balance": "least_conn", "keepalive": 32, "max_fails": 3, "fail_timeout": "30s"}));
        assert_eq!(line(&b, "services.nginx.upstreams.voiceassist_backend.to"), 4);
        assert_eq!(b.get("services.voiceassist-server.replicas"), Some(&json!(3)));
        let locs = b.get("services.nginx.locations").unwrap();
        assert_eq!(locs[0], json!({"path": "/", "upstream": "voiceassist_backend", "read_timeout": "1m", "send_timeout": "1m", "connect_timeout": "5s"}));
        assert_eq!(locs[1], json!({"path": "/health", "upstream": "voiceassist_backend"}));
        assert!(notes(&b).iter().any(|n| n.contains("read as a conf.d file")));
        validates(&b).unwrap_or_else(|p| panic!("{p:?}"));
        // With the compose file that mounts it as the main config: nginx would not start.
        let mut b = ImportBuilder::new("voiceassist");
        add_fixture(&mut b, "voiceassist/docker-compose.yml");
        let id = add_fixture(&mut b, "voiceassist/nginx.conf");
        read(&mut b, id);
        let e = errors(&b);
        assert!(e.iter().any(|e| e.contains("nginx.conf:2 ") && e.contains("mounted as /etc/nginx/nginx.conf")), "{e:?}");
    }

    #[test]
    fn fixtures_of_every_reader_validate_as_a_spec() {
        let mut b = ImportBuilder::new("arena");
        for rel in ["django-compose/nginx/load-balancer.conf", "django-compose/nginx/nginx.conf"] {
            let id = add_fixture(&mut b, rel);
            read(&mut b, id);
        }
        let id = add_fixture(&mut b, "django-compose/pgbouncer/pgbouncer.ini");
        super::super::pgbouncer_ini::read_pgbouncer(&mut b, id);
        let id = b.add_source(SourceFile::new("x/redis.conf", "maxmemory 8gb\nmaxmemory-policy allkeys-lru\nmaxclients 10000\n".into()));
        super::super::redis_conf::read(&mut b, id);
        let id = add_fixture(&mut b, "voiceassist/redis-sentinel.conf");
        super::super::redis_conf::read_sentinel(&mut b, id);
        let id = b.add_source(SourceFile::new("x/postgresql.conf", "max_connections = 200\nshared_buffers = 16384\n".into()));
        super::super::pgconf::read(&mut b, id);
        let id = b.add_source(SourceFile::new("x/99-sysctl.conf", "net.core.somaxconn = 4096\nfs.file-max = 200000\n".into()));
        super::super::sysctl_conf::read(&mut b, id);
        let spec = validates(&b).unwrap_or_else(|p| panic!("{p:?}\n{}", serde_json::to_string_pretty(&b.value).unwrap()));
        let kinds: Vec<(&str, &str)> = spec.services.iter().map(|(n, s)| (n.as_str(), s.kind())).collect();
        assert_eq!(
            kinds,
            vec![("nginx", "nginx"), ("web", "gunicorn"), ("pgbouncer", "pgbouncer"), ("arena-postgres", "postgres"), ("redis", "redis"), ("redis-master", "redis"), ("postgres", "postgres")]
        );
    }

    #[test]
    fn big_config_is_read_in_linear_time() {
        let mut text = String::from("worker_processes 4;\nhttp {\n");
        for u in 0..300 {
            text.push_str(&format!("upstream u{u} {{\n"));
            for s in 0..20 {
                text.push_str(&format!("  server 10.0.{}.{s}:8000 max_conns={};\n", u % 250, s + 1));
            }
            text.push_str("}\n");
        }
        text.push_str("server { listen 80;\n");
        for l in 0..5000 {
            text.push_str(&format!("  location /p{l}/ {{ proxy_pass http://u{}; proxy_read_timeout {}s; }}\n", l % 300, l % 100 + 1));
        }
        text.push_str("}}\n");
        let started = std::time::Instant::now();
        let b = read_text(&text);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
        assert!(errors(&b).is_empty(), "{:?}", &errors(&b)[..1]);
        assert_eq!(b.get("services.nginx.locations").unwrap().as_array().unwrap().len(), 5000);
        assert_eq!(b.get("services.nginx.upstreams.u7.max_conns"), Some(&json!(4)));
        assert_eq!(b.get("services.app.kind"), Some(&json!("gunicorn")));
    }

    /// Random text from the characters each format gives meaning to: no reader panics,
    /// and whatever they set still has the spec's shape where they set it.
    #[test]
    fn random_input_never_panics_any_reader() {
        const ALPHABET: &[&str] = &[
            " ", "\n", "\t", "\r", ";", "{", "}", "\"", "'", "\\", "#", "$", "=", "[", "]", "%include ", "include ", "upstream ", "server ", "location ", "/", "x", "é", "0", "9", "max_conns=",
            "listen ", "proxy_pass http://", "worker_processes ", "maxmemory ", "1gb", "sentinel monitor m h 1 2", "host=", "max_client_conn", "shared_buffers", "kB", "-", ":", "~", "*", "\u{0}",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..400 {
            let len = (next() % 60) as usize;
            let text: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
            let mut b = ImportBuilder::new("t");
            for (i, reader) in [read as fn(&mut ImportBuilder, FileId), super::super::pgbouncer_ini::read_pgbouncer, super::super::pgconf::read, super::super::redis_conf::read, super::super::redis_conf::read_sentinel, super::super::sysctl_conf::read]
                .into_iter()
                .enumerate()
            {
                let id = b.add_source(SourceFile::new(format!("fuzz-does-not-exist/f{i}"), text.clone()));
                reader(&mut b, id);
            }
        }
    }

    #[test]
    fn units() {
        assert_eq!(time_ms("60s"), Some(60_000));
        assert_eq!(time_ms("60"), Some(60_000));
        assert_eq!(time_ms("500ms"), Some(500));
        assert_eq!(time_ms("1h30m"), Some(5_400_000));
        assert_eq!(time_ms("2d"), Some(172_800_000));
        assert_eq!(time_ms("5x"), None);
        assert_eq!(time_ms(""), None);
        assert_eq!(size_bytes("10m"), Some(10 << 20));
        assert_eq!(size_bytes("64k"), Some(64 << 10));
        assert_eq!(size_bytes("1G"), Some(1 << 30));
        assert_eq!(size_bytes("100"), Some(100));
        assert_eq!(size_bytes("m"), None);
    }

    #[test]
    fn helpers() {
        assert_eq!(strip_replica_suffix("web-15"), "web");
        assert_eq!(strip_replica_suffix("voiceassist-server-3"), "voiceassist-server");
        assert_eq!(strip_replica_suffix("web"), "web");
        assert_eq!(strip_replica_suffix("web2"), "web2");
        assert_eq!(strip_replica_suffix("-1"), "-1");
        assert_eq!(service_name("Django.Backend"), "django-backend");
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.confx"));
        assert!(wildcard("f[0-9]?.c*", "f12.conf"));
        assert!(wildcard("[!a]*", "b"));
        assert!(!wildcard("[!a]*", "a"));
        assert!(wildcard("a[", "a["));
        assert_eq!(split_address("web-1:8000"), (Some("web-1".into()), Some(8000)));
        assert_eq!(split_address("[::1]:80"), (Some("::1".into()), Some(80)));
        assert_eq!(split_address("unix:/tmp/s.sock"), (None, None));
        assert_eq!(split_address("10.0.0.1"), (Some("10.0.0.1".into()), None));
    }
}
