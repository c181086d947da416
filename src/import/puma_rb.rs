//! Reader for config/puma.rb: `workers`, `threads`, `port`, `bind`, `preload_app!`,
//! `worker_timeout`, with `ENV.fetch` defaults followed through local variables. Also
//! the small Ruby expression evaluator database.yml's ERB uses.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Value, json};

use super::args::{self, assumed_at};
use super::{FileId, ImportBuilder};

/// A Ruby value the evaluator knows.
#[derive(Clone, Debug, PartialEq)]
pub enum RValue {
    Int(i64),
    Str(String),
    Bool(bool),
    Nil,
}

impl RValue {
    fn to_i(&self) -> Option<i64> {
        match self {
            RValue::Int(i) => Some(*i),
            RValue::Str(s) => {
                let t = s.trim();
                let end = t.char_indices().find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))).map_or(t.len(), |(i, _)| i);
                Some(t[..end].parse().unwrap_or(0))
            }
            RValue::Nil => Some(0),
            RValue::Bool(_) => None,
        }
    }

    /// An integer, also from a numeric string (`"5"`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RValue::Int(i) => Some(*i),
            RValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// What evaluating an expression found.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub value: RValue,
    /// Environment variables whose default was used (not set in the files read).
    pub defaulted: Vec<String>,
    /// Environment variables whose value came from the files read.
    pub from_env: Vec<String>,
}

/// Looks an environment variable up in what the files read say.
pub type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// An owned `EnvLookup`.
type BoxedEnv = Box<EnvLookup<'static>>;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Str(String, bool),
    Ident(String),
    Punct(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            let digits: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            if i < chars.len() && chars[i] == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                return Err("a decimal number".into());
            }
            out.push(Tok::Int(digits.parse().map_err(|_| "a number too large".to_string())?));
            continue;
        }
        if c == '"' || c == '\'' {
            let quote = c;
            let mut s = String::new();
            let mut interpolated = false;
            i += 1;
            loop {
                let Some(&n) = chars.get(i) else { return Err("an unterminated string".into()) };
                i += 1;
                if n == quote {
                    break;
                }
                if n == '\\' && quote == '"' {
                    if let Some(&e) = chars.get(i) {
                        s.push(e);
                        i += 1;
                    }
                    continue;
                }
                if n == '#' && quote == '"' && chars.get(i) == Some(&'{') {
                    interpolated = true;
                }
                s.push(n);
            }
            out.push(Tok::Str(s, interpolated));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '@' || c == ':' && chars.get(i + 1).is_some_and(|n| n.is_alphabetic()) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':' && chars.get(i + 1) == Some(&':') || (chars[i] == ':' && i > 0 && chars[i - 1] == ':')) {
                i += 1;
            }
            if i < chars.len() && (chars[i] == '!' || chars[i] == '?') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let punct = match two.as_str() {
            "||" => Some("||"),
            "&&" => Some("&&"),
            "==" => Some("=="),
            "!=" => Some("!="),
            _ => None,
        };
        if let Some(p) = punct {
            out.push(Tok::Punct(p));
            i += 2;
            continue;
        }
        let p = match c {
            '.' => ".",
            ',' => ",",
            '(' => "(",
            ')' => ")",
            '{' => "{",
            '}' => "}",
            '[' => "[",
            ']' => "]",
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '|' => "|",
            '=' => "=",
            '%' => "%",
            _ => return Err(format!("`{c}`")),
        };
        out.push(Tok::Punct(p));
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    vars: &'a HashMap<String, Evaluated>,
    env: &'a EnvLookup<'a>,
    defaulted: Vec<String>,
    from_env: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) { Ok(()) } else { Err(format!("`{p}` expected")) }
    }

    fn or(&mut self) -> Result<RValue, String> {
        let mut left = self.additive()?;
        while self.eat("||") {
            let right = self.additive()?;
            if matches!(left, RValue::Nil | RValue::Bool(false)) {
                left = right;
            }
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<RValue, String> {
        let mut left = self.term()?;
        loop {
            let op = if self.eat("+") {
                "+"
            } else if self.eat("-") {
                "-"
            } else {
                return Ok(left);
            };
            let right = self.term()?;
            left = arith(&left, &right, op)?;
        }
    }

    fn term(&mut self) -> Result<RValue, String> {
        let mut left = self.postfix()?;
        loop {
            let op = if self.eat("*") {
                "*"
            } else if self.eat("/") {
                "/"
            } else {
                return Ok(left);
            };
            let right = self.postfix()?;
            left = arith(&left, &right, op)?;
        }
    }

    fn postfix(&mut self) -> Result<RValue, String> {
        let mut v = self.primary()?;
        while self.eat(".") {
            match self.peek().cloned() {
                Some(Tok::Ident(m)) => {
                    self.pos += 1;
                    if self.eat("(") {
                        self.expect(")")?;
                    }
                    v = match m.as_str() {
                        "to_i" => RValue::Int(v.to_i().ok_or("`.to_i` of a non-number")?),
                        "to_s" => match v {
                            RValue::Int(i) => RValue::Str(i.to_string()),
                            other => other,
                        },
                        "presence" => v,
                        other => return Err(format!("`.{other}`")),
                    };
                }
                _ => return Err("a method name expected".into()),
            }
        }
        Ok(v)
    }

    fn primary(&mut self) -> Result<RValue, String> {
        let Some(tok) = self.peek().cloned() else { return Err("an expression expected".into()) };
        self.pos += 1;
        match tok {
            Tok::Int(i) => Ok(RValue::Int(i)),
            Tok::Str(_, true) => Err("a string with #{…} interpolation".into()),
            Tok::Str(s, false) => Ok(RValue::Str(s)),
            Tok::Punct("(") => {
                let v = self.or()?;
                self.expect(")")?;
                Ok(v)
            }
            Tok::Punct("-") => {
                let v = self.postfix()?;
                arith(&RValue::Int(0), &v, "-")
            }
            Tok::Ident(name) => match name.as_str() {
                "nil" => Ok(RValue::Nil),
                "true" => Ok(RValue::Bool(true)),
                "false" => Ok(RValue::Bool(false)),
                "Integer" => {
                    self.expect("(")?;
                    let v = self.or()?;
                    while self.eat(",") {
                        self.or()?;
                    }
                    self.expect(")")?;
                    v.as_int().map(RValue::Int).ok_or_else(|| "Integer() of a non-number".to_string())
                }
                "ENV" => self.env_access(),
                "Etc::nprocessors" | "Concurrent" | "Etc" => Err("the CPU count of the machine".into()),
                other => match self.vars.get(other) {
                    Some(e) => {
                        self.defaulted.extend(e.defaulted.iter().cloned());
                        self.from_env.extend(e.from_env.iter().cloned());
                        Ok(e.value.clone())
                    }
                    None => Err(format!("`{other}`")),
                },
            },
            Tok::Punct(p) => Err(format!("`{p}`")),
        }
    }

    fn env_access(&mut self) -> Result<RValue, String> {
        if self.eat("[") {
            let Some(Tok::Str(name, false)) = self.peek().cloned() else { return Err("ENV[…] of a non-literal".into()) };
            self.pos += 1;
            self.expect("]")?;
            return Ok(match (self.env)(&name) {
                Some(v) => {
                    self.from_env.push(name);
                    RValue::Str(v)
                }
                None => {
                    // `ENV["X"] || default`: the default is used.
                    if matches!(self.peek(), Some(Tok::Punct("||"))) {
                        self.defaulted.push(name);
                    }
                    RValue::Nil
                }
            });
        }
        self.expect(".")?;
        match self.peek().cloned() {
            Some(Tok::Ident(m)) if m == "fetch" => self.pos += 1,
            _ => return Err("ENV method other than fetch".into()),
        }
        self.expect("(")?;
        let Some(Tok::Str(name, false)) = self.peek().cloned() else { return Err("ENV.fetch of a non-literal".into()) };
        self.pos += 1;
        let mut default = None;
        if self.eat(",") {
            default = Some(self.or()?);
        }
        self.expect(")")?;
        if self.eat("{") {
            // `{ |key| default }` or `{ default }`
            if self.eat("|") {
                while !self.eat("|") {
                    if self.peek().is_none() {
                        return Err("unterminated block".into());
                    }
                    self.pos += 1;
                }
            }
            default = Some(self.or()?);
            self.expect("}")?;
        }
        match (self.env)(&name) {
            Some(v) => {
                self.from_env.push(name);
                Ok(RValue::Str(v))
            }
            None => match default {
                Some(d) => {
                    self.defaulted.push(name);
                    Ok(d)
                }
                None => Err(format!("ENV.fetch(\"{name}\") with no default, and {name} is not set in the files read")),
            },
        }
    }
}

fn arith(a: &RValue, b: &RValue, op: &str) -> Result<RValue, String> {
    let (Some(x), Some(y)) = (a.as_int(), b.as_int()) else { return Err(format!("`{op}` of non-numbers")) };
    let r = match op {
        "+" => x.checked_add(y),
        "-" => x.checked_sub(y),
        "*" => x.checked_mul(y),
        "/" => x.checked_div(y),
        _ => None,
    };
    r.map(RValue::Int).ok_or_else(|| "arithmetic overflow".to_string())
}

/// Evaluates a small Ruby expression: integers, strings, `+ - * /`, `||`, `.to_i`,
/// `Integer(…)`, `ENV.fetch("X") { d }`, `ENV.fetch("X", d)`, `ENV["X"]`, and local
/// variables already evaluated. Err says what could not be evaluated.
pub fn eval(expr: &str, vars: &HashMap<String, Evaluated>, env: &EnvLookup<'_>) -> Result<Evaluated, String> {
    let toks = tokenize(expr).map_err(|e| format!("cannot read {e}"))?;
    let mut p = Parser { toks, pos: 0, vars, env, defaulted: Vec::new(), from_env: Vec::new() };
    let value = p.or()?;
    if p.pos != p.toks.len() {
        return Err("more than one expression".into());
    }
    p.defaulted.dedup();
    p.from_env.dedup();
    Ok(Evaluated { value, defaulted: p.defaulted, from_env: p.from_env })
}

/// The environment a service's files set (`services.<name>.env.clear`).
pub fn service_env(builder: &ImportBuilder, service: &str) -> impl Fn(&str) -> Option<String> + 'static {
    let clear = builder.get(&format!("services.{service}.env.clear")).and_then(Value::as_object).cloned().unwrap_or_default();
    move |name: &str| clear.get(name).and_then(|v| v.as_str().map(str::to_string).or_else(|| Some(v.to_string())))
}

/// Removes a `#` comment outside strings.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

/// One statement of a Ruby file: its text (comments removed, continuation lines
/// joined) and byte range.
struct Statement {
    text: String,
    bytes: Range<usize>,
}

fn depth_change(text: &str) -> i32 {
    let mut d = 0;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => d += 1,
                ')' | ']' | '}' => d -= 1,
                _ => {}
            },
        }
    }
    d
}

fn statements(text: &str) -> Vec<Statement> {
    let mut out: Vec<Statement> = Vec::new();
    let mut offset = 0;
    let mut pending: Option<Statement> = None;
    let mut depth = 0;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = strip_comment(raw.trim_end_matches(['\n', '\r']));
        let trimmed = line.trim();
        let lead = line.len() - line.trim_start().len();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed == "=begin" || trimmed == "__END__" {
            break;
        }
        let bytes = start + lead..start + lead + trimmed.len();
        let stmt = match pending.take() {
            Some(mut p) => {
                p.text.push(' ');
                p.text.push_str(trimmed);
                p.bytes.end = bytes.end;
                p
            }
            None => Statement { text: trimmed.to_string(), bytes },
        };
        depth += depth_change(trimmed);
        let continues = depth > 0 || trimmed.ends_with(',') || trimmed.ends_with('\\') || trimmed.ends_with("||") || trimmed.ends_with('+') || trimmed.ends_with('*');
        if continues && depth < 50 && offset < text.len() {
            pending = Some(Statement { text: stmt.text.trim_end_matches('\\').to_string(), bytes: stmt.bytes });
        } else {
            depth = 0;
            out.push(stmt);
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// Whether a statement opens a block that needs an `end`.
fn opens_block(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    if matches!(first, "if" | "unless" | "case" | "begin" | "def" | "class" | "module" | "while" | "until" | "for") {
        return true;
    }
    let t = text.trim_end();
    t.ends_with(" do") || t == "do" || (t.contains(" do |") && t.ends_with('|'))
}

/// `name args` -> (name, args).
fn call(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(text.len());
    let name = &text[..end];
    let mut rest = text[end..].trim();
    if rest.starts_with('(') && rest.ends_with(')') {
        rest = &rest[1..rest.len() - 1];
    }
    (name, rest.trim())
}

/// Splits call arguments at top-level commas.
fn split_args(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(text[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

struct Puma<'a> {
    builder: &'a mut ImportBuilder,
    file: FileId,
    service: String,
    vars: HashMap<String, Evaluated>,
    env: BoxedEnv,
}

impl Puma<'_> {
    /// Sets a key unless a command-line flag set it (flags win over puma.rb).
    fn put(&mut self, key: &str, value: Value, bytes: &Range<usize>) -> bool {
        let path = format!("services.{}.{key}", self.service);
        if let Some(flag) = args::set_by_flag(self.builder, &path) {
            if self.builder.get(&path) != Some(&value) {
                self.builder.ignored(self.file, bytes.clone(), format!("puma.rb `{key}` {value}: the command line's `{}` wins over it", flag.escape_debug()));
            }
            return false;
        }
        self.builder.set(&path, value, self.file, bytes.clone());
        true
    }

    fn eval(&mut self, expr: &str, bytes: &Range<usize>, what: &str) -> Option<Evaluated> {
        match eval(expr, &self.vars, &*self.env) {
            Ok(e) => Some(e),
            Err(why) => {
                self.builder.ignored(self.file, bytes.clone(), format!("puma `{what}`: {why} cannot be evaluated here"));
                None
            }
        }
    }

    /// Sets a key from an evaluated number: a literal or an `ENV.fetch` default
    /// (noted) is written; a value from the environment the files set is written only
    /// when nothing set the key from that environment already.
    fn set_number(&mut self, key: &str, e: &Evaluated, bytes: &Range<usize>, min: i64) {
        let path = format!("services.{}.{key}", self.service);
        let Some(n) = e.value.as_int().filter(|n| *n >= min) else {
            self.builder.ignored(self.file, bytes.clone(), format!("puma `{key}` is not a whole number ≥ {min} here"));
            return;
        };
        if !e.from_env.is_empty() && self.builder.get(&path).is_some() {
            return;
        }
        if !self.put(key, json!(n), bytes) {
            return;
        }
        if !e.defaulted.is_empty() {
            let vars = e.defaulted.join(", ");
            assumed_at(
                self.builder,
                self.file,
                bytes.clone(),
                format!("`{key}` {n} for `{}`: the default in puma.rb, because {vars} is not set in the files read", self.service),
                format!("if {vars} is set where puma runs, its value wins"),
            );
        }
    }

    fn port_of(&mut self, uri: &str, bytes: &Range<usize>) {
        if uri.starts_with("unix://") || uri.starts_with("unix:") {
            self.builder.ignored(self.file, bytes.clone(), "puma binds a unix socket (a proxy in front connects to it); no TCP port");
            return;
        }
        let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
        let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
        let port = host_port.rsplit_once(':').map(|(_, p)| p).and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
        match port {
            Some(p) => {
                self.put("port", json!(p), bytes);
            }
            None => self.builder.ignored(self.file, bytes.clone(), format!("puma bind `{}` has no port", uri.escape_debug())),
        }
        for kv in query.split('&') {
            if let Some(b) = kv.strip_prefix("backlog=").and_then(|b| b.parse::<u64>().ok()).filter(|b| *b >= 1) {
                self.put("backlog", json!(b), bytes);
            }
        }
    }

    fn statement(&mut self, text: &str, bytes: &Range<usize>) {
        // `x = expr`
        if let Some((lhs, rhs)) = text.split_once('=')
            && !rhs.starts_with('=')
            && !lhs.ends_with(['!', '<', '>', '='])
            && lhs.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !lhs.trim().is_empty()
        {
            let name = lhs.trim().to_string();
            match eval(rhs.trim(), &self.vars, &*self.env) {
                Ok(e) => {
                    self.vars.insert(name, e);
                }
                Err(_) => {
                    self.vars.remove(&name);
                }
            }
            return;
        }
        let (stmt, modifier) = match [" if ", " unless "].iter().find_map(|m| text.find(m).map(|i| (i, *m))) {
            Some((i, m)) => (&text[..i], Some((m.trim(), text[i + m.len()..].trim()))),
            None => (text, None),
        };
        let (name, rest) = call(stmt.trim());
        let applies = match name {
            "workers" | "threads" | "port" | "bind" | "preload_app!" | "worker_timeout" | "rackup" => true,
            "environment" | "plugin" | "pidfile" | "state_path" | "stdout_redirect" | "worker_boot_timeout" | "worker_shutdown_timeout"
            | "persistent_timeout" | "first_data_timeout" | "fork_worker" | "nakayoshi_fork" | "wait_for_less_busy_worker" | "max_fast_inline"
            | "queue_requests" | "tag" | "silence_single_worker_warning" | "activate_control_app" | "require" | "require_relative" | "directory"
            | "quiet" | "log_requests" | "lowlevel_error_handler" | "prune_bundler" | "extra_runtime_dependencies" | "early_hints" | "ssl_bind"
            | "worker_culling_strategy" | "worker_check_interval" | "out_of_band" | "supported_http_methods" | "set_remote_address" => {
                self.builder.ignored(self.file, bytes.clone(), format!("puma `{name}` does not change capacity"));
                false
            }
            _ => {
                self.builder.ignored(self.file, bytes.clone(), format!("puma.rb statement `{}` is not modelled", name.escape_debug()));
                false
            }
        };
        if !applies {
            return;
        }
        if let Some((kw, cond)) = modifier {
            assumed_at(
                self.builder,
                self.file,
                bytes.clone(),
                format!("puma `{name}` applies only {kw} `{cond}`; read as if it does"),
                "check the condition where puma runs",
            );
        }
        let args = split_args(rest);
        match name {
            "workers" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name)) {
                    self.set_number("workers", &e, bytes, 0);
                }
            }
            "threads" => {
                if args.len() != 2 {
                    self.builder.ignored(self.file, bytes.clone(), "puma `threads` takes min, max");
                    return;
                }
                let min = self.eval(args[0], bytes, "threads");
                let max = self.eval(args[1], bytes, "threads");
                if let Some(max) = max {
                    self.set_number("threads", &max, bytes, 1);
                }
                if let Some(min) = min {
                    self.set_number("min_threads", &min, bytes, 0);
                }
            }
            "port" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name)) {
                    self.set_number("port", &e, bytes, 1);
                }
            }
            "worker_timeout" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name)) {
                    match e.value.as_int().filter(|n| *n >= 0) {
                        Some(n) => {
                            self.put("timeout", json!(format!("{n}s")), bytes);
                        }
                        None => self.builder.ignored(self.file, bytes.clone(), "puma `worker_timeout` is not a number of seconds"),
                    }
                }
            }
            "bind" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name)) {
                    match e.value {
                        RValue::Str(uri) => self.port_of(&uri, bytes),
                        _ => self.builder.ignored(self.file, bytes.clone(), "puma `bind` of a non-string"),
                    }
                }
            }
            "rackup" => {
                if let Some(RValue::Str(app)) = args.first().and_then(|a| self.eval(a, bytes, name)).map(|e| e.value) {
                    self.put("app", json!(app), bytes);
                }
            }
            "preload_app!" => {
                let on = match args.first() {
                    None => Some(true),
                    Some(a) => self.eval(a, bytes, name).and_then(|e| match e.value {
                        RValue::Bool(b) => Some(b),
                        _ => None,
                    }),
                };
                if let Some(on) = on {
                    self.put("preload", json!(on), bytes);
                }
            }
            _ => {}
        }
    }
}

/// Reads a puma.rb (workers, threads, ENV.fetch defaults).
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let fallback = args::default_service(builder, &["puma"], "web");
    let service = builder.owner_of(file, &fallback);
    let head = 0..text.find('\n').unwrap_or(text.len()).min(text.len());
    if !args::ensure_kind(builder, &service, "puma", file, head.clone()) {
        let kind = args::kind_of_service(builder, &service).unwrap_or_default();
        builder.ignored(file, head, format!("puma.rb for `{service}`, which is a {kind} service; not read"));
        return;
    }
    builder.mark(&format!("services.{service}"), file, head);
    let env: BoxedEnv = Box::new(service_env(builder, &service));
    let mut puma = Puma { builder, file, service, vars: HashMap::new(), env };
    let mut block: Option<(String, Range<usize>, i32)> = None;
    for st in statements(&text) {
        let t = st.text.trim();
        if let Some((what, start, depth)) = &mut block {
            if opens_block(t) {
                *depth += 1;
            } else if t == "end" || t.starts_with("end ") || t.starts_with("end.") {
                *depth -= 1;
                if *depth == 0 {
                    let bytes = start.start..st.bytes.end;
                    let what = what.clone();
                    puma.builder.ignored(file, bytes, format!("puma.rb `{what}` block (hooks and conditionals are not evaluated)"));
                    block = None;
                }
            }
            continue;
        }
        if opens_block(t) {
            let what = t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            let what = what.trim_end_matches(" do").to_string();
            block = Some((what, st.bytes.clone(), 1));
            continue;
        }
        puma.statement(t, &st.bytes);
    }
    if let Some((what, start, _)) = block {
        puma.builder.unparsable(file, start, format!("puma.rb: `{what}` has no matching `end`"), "close the block with `end`");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    const SEED: &str = r#"# Optimized for production scaling
max_threads_count = ENV.fetch("RAILS_MAX_THREADS") { 5 }
min_threads_count = ENV.fetch("RAILS_MIN_THREADS") { max_threads_count }
threads min_threads_count, max_threads_count

# Workers based on CPU cores (2-4 per core)
worker_count = ENV.fetch("WEB_CONCURRENCY") { 4 }
workers worker_count

# Preload app for memory efficiency (Copy-on-Write)
preload_app!

# Set up socket location
bind "unix://#{Rails.root.join('tmp/sockets/puma.sock')}"

# Worker lifecycle hooks
on_worker_boot do
  ActiveRecord::Base.establish_connection if defined?(ActiveRecord)
end

before_fork do
  ActiveRecord::Base.connection_pool.disconnect! if defined?(ActiveRecord)
end

# Phased restarts for zero-downtime deployments
nakayoshi_fork: true if ENV.fetch("RAILS_ENV") { "development" } == "production"
"#;

    fn read_text(text: &str, env: Option<(&str, &str)>) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("config/puma.rb", text.to_string()));
        if let Some((k, v)) = env {
            b.set(&format!("services.web.env.clear.{k}"), json!(v), id, 0..0);
            b.set("services.web.workers", json!(v.parse::<u64>().unwrap()), id, 0..0);
        }
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    #[test]
    fn evaluates_env_fetch_defaults_and_arithmetic() {
        let none = |_: &str| None;
        let vars = HashMap::new();
        let e = eval(r#"ENV.fetch("RAILS_MAX_THREADS") { 5 }.to_i * ENV.fetch("WEB_CONCURRENCY") { 4 }.to_i + 5"#, &vars, &none).unwrap();
        assert_eq!(e.value, RValue::Int(25));
        assert_eq!(e.defaulted, vec!["RAILS_MAX_THREADS", "WEB_CONCURRENCY"]);
        let env = |k: &str| (k == "WEB_CONCURRENCY").then(|| "3".to_string());
        let e = eval(r#"Integer(ENV.fetch("WEB_CONCURRENCY", 2))"#, &vars, &env).unwrap();
        assert_eq!((e.value, e.from_env), (RValue::Int(3), vec!["WEB_CONCURRENCY".to_string()]));
        assert_eq!(eval(r#"(ENV["X"] || 7).to_i"#, &vars, &none).unwrap().value, RValue::Int(7));
        assert!(eval("Etc.nprocessors * 2", &vars, &none).unwrap_err().contains("CPU"));
        assert!(eval(r#"ENV.fetch("X")"#, &vars, &none).is_err());
        assert!(eval("\"unterminated", &vars, &none).is_err());
        assert!(eval("99999999999999999999", &vars, &none).is_err());
        assert!(eval("1 / 0", &vars, &none).is_err());
    }

    #[test]
    fn reads_the_seed_puma_rb() {
        let b = read_text(SEED, None);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "puma");
        assert_eq!(web["threads"], 5);
        assert_eq!(web["min_threads"], 5);
        assert_eq!(web["workers"], 4);
        assert_eq!(web["preload"], true);
        assert_eq!(line(&b, "/services/web/threads"), 4);
        assert_eq!(line(&b, "/services/web/workers"), 8);
        assert_eq!(line(&b, "/services/web/preload"), 11);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.starts_with("assumed: `workers` 4") && n.contains("WEB_CONCURRENCY")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("on_worker_boot")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("interpolation")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("nakayoshi_fork")), "{notes:?}");
    }

    #[test]
    fn the_environment_the_files_set_wins_over_defaults() {
        let b = read_text(SEED, Some(("WEB_CONCURRENCY", "6")));
        assert_eq!(b.value["services"]["web"]["workers"], 6);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(!notes.iter().any(|n| n.contains("`workers` 4")), "{notes:?}");
    }

    #[test]
    fn literal_settings_and_tcp_binds() {
        let b = read_text("workers 3\nthreads 2, 8\nport ENV.fetch(\"PORT\") { 3000 }\nworker_timeout 90\nbind 'tcp://0.0.0.0:9292?backlog=2048'\n", None);
        let web = &b.value["services"]["web"];
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["min_threads"].clone()), (json!(3), json!(8), json!(2)));
        assert_eq!(web["timeout"], "90s");
        assert_eq!(web["port"], 9292);
        assert_eq!(web["backlog"], 2048);
    }

    #[test]
    fn broken_ruby_is_noted_never_a_panic() {
        let b = read_text("on_worker_boot do\n  x\n", None);
        assert!(b.diagnostics.iter().any(|d| d.rule == super::super::UNPARSABLE));
        for odd in ["workers \"", "threads", "threads 1, 2, 3", "workers (((", "x = = 3\nworkers x", "\u{0}\u{1}", "workers 1 +", "é = 3", "bind"] {
            let _ = read_text(odd, None);
        }
    }
}
