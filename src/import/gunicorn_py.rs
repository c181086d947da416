//! Reader for gunicorn.conf.py: top-level `name = value` assignments (numbers,
//! strings, lists, integer arithmetic, `os.environ.get` defaults) into the gunicorn
//! service that owns the file. Hooks, conditionals and CPU-derived values are noted,
//! never guessed.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::json;

use super::args::{self, assumed_at};
use super::{FileId, ImportBuilder};

#[derive(Clone, Debug, PartialEq)]
enum Py {
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Bool(bool),
    None,
}

/// Why an expression has no value here.
#[derive(Clone, Debug, PartialEq)]
enum Unknown {
    /// Depends on the machine's CPU count.
    Cpu,
    /// Reads an environment variable with no default.
    Env(String),
    /// Anything else.
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Py),
    Str(String, bool),
    Name(String),
    Op(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, Unknown> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            let t: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let n = if let Ok(v) = t.parse::<i64>() {
                Py::Int(v)
            } else if let Ok(f) = t.parse::<f64>() {
                Py::Float(f)
            } else {
                return Err(Unknown::Other(format!("the number `{t}`")));
            };
            out.push(Tok::Num(n));
            continue;
        }
        let prefix_f = (c == 'f' || c == 'F') && matches!(chars.get(i + 1), Some('"' | '\''));
        let prefix_r = (c == 'r' || c == 'b' || c == 'u' || c == 'R' || c == 'B' || c == 'U') && matches!(chars.get(i + 1), Some('"' | '\''));
        if c == '"' || c == '\'' || prefix_f || prefix_r {
            if prefix_f || prefix_r {
                i += 1;
            }
            let q = chars[i];
            let triple = chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
            i += if triple { 3 } else { 1 };
            let mut s = String::new();
            loop {
                let Some(&n) = chars.get(i) else { return Err(Unknown::Other("an unterminated string".into())) };
                if n == q && (!triple || (chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q))) {
                    i += if triple { 3 } else { 1 };
                    break;
                }
                if n == '\\' && !prefix_r {
                    if let Some(&e) = chars.get(i + 1) {
                        s.push(e);
                    }
                    i += 2;
                    continue;
                }
                s.push(n);
                i += 1;
            }
            out.push(Tok::Str(s, prefix_f));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(op) = ["//", "**"].into_iter().find(|o| *o == two) {
            out.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let op = match c {
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '%' => "%",
            '(' => "(",
            ')' => ")",
            '[' => "[",
            ']' => "]",
            ',' => ",",
            ':' => ":",
            '{' => "{",
            '}' => "}",
            _ => return Err(Unknown::Other(format!("`{c}`"))),
        };
        out.push(Tok::Op(op));
        i += 1;
    }
    Ok(out)
}

struct Eval<'a> {
    toks: Vec<Tok>,
    pos: usize,
    vars: &'a HashMap<String, Assigned>,
    env: &'a dyn Fn(&str) -> Option<String>,
    defaulted: Vec<String>,
}

impl Eval<'_> {
    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), Unknown> {
        if self.eat(op) { Ok(()) } else { Err(Unknown::Other(format!("`{op}` expected"))) }
    }

    fn expr(&mut self) -> Result<Py, Unknown> {
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
            left = arith(left, right, op)?;
        }
    }

    fn term(&mut self) -> Result<Py, Unknown> {
        let mut left = self.unary()?;
        loop {
            let op = ["*", "//", "/", "%"].into_iter().find(|o| self.eat(o));
            let Some(op) = op else { return Ok(left) };
            let right = self.unary()?;
            left = arith(left, right, op)?;
        }
    }

    fn unary(&mut self) -> Result<Py, Unknown> {
        if self.eat("-") {
            let v = self.unary()?;
            return arith(Py::Int(0), v, "-");
        }
        self.atom()
    }

    fn args(&mut self) -> Result<Vec<Result<Py, Unknown>>, Unknown> {
        let mut out = Vec::new();
        if self.eat(")") {
            return Ok(out);
        }
        loop {
            let start = self.pos;
            let v = self.expr();
            if v.is_err() {
                // Skip to the next argument so a later default can still be read.
                let mut depth = 0;
                self.pos = start;
                while let Some(t) = self.toks.get(self.pos) {
                    match t {
                        Tok::Op("(" | "[" | "{") => depth += 1,
                        Tok::Op(")" | "]" | "}") if depth > 0 => depth -= 1,
                        Tok::Op(")" | ",") if depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            out.push(v);
            if self.eat(",") {
                if self.eat(")") {
                    return Ok(out);
                }
                continue;
            }
            self.expect(")")?;
            return Ok(out);
        }
    }

    fn atom(&mut self) -> Result<Py, Unknown> {
        let Some(tok) = self.toks.get(self.pos).cloned() else { return Err(Unknown::Other("an expression expected".into())) };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(n),
            Tok::Str(s, false) => Ok(Py::Str(s)),
            Tok::Str(s, true) => self.fstring(&s),
            Tok::Op("(") => {
                let v = self.expr()?;
                if self.eat(",") {
                    let mut items = vec![v];
                    while !self.eat(")") {
                        items.push(self.expr()?);
                        if !self.eat(",") {
                            self.expect(")")?;
                            break;
                        }
                    }
                    return Ok(Py::List(items));
                }
                self.expect(")")?;
                Ok(v)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat("]") {
                    items.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Ok(Py::List(items))
            }
            Tok::Name(name) => {
                if self.eat("(") {
                    return self.call(&name);
                }
                if name == "os.environ" && self.eat("[") {
                    let key = self.expr()?;
                    self.expect("]")?;
                    let Py::Str(key) = key else { return Err(Unknown::Other("os.environ[…] of a non-string".into())) };
                    return (self.env)(&key).map(Py::Str).ok_or(Unknown::Env(key));
                }
                match name.as_str() {
                    "True" => Ok(Py::Bool(true)),
                    "False" => Ok(Py::Bool(false)),
                    "None" => Ok(Py::None),
                    other => match self.vars.get(other) {
                        Some(a) => {
                            self.defaulted.extend(a.defaulted.iter().cloned());
                            a.value.clone()
                        }
                        None => Err(Unknown::Other(format!("`{other}`"))),
                    },
                }
            }
            Tok::Op(o) => Err(Unknown::Other(format!("`{o}`"))),
        }
    }

    fn call(&mut self, name: &str) -> Result<Py, Unknown> {
        let args = self.args()?;
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Err(Unknown::Other("a missing argument".into())));
        match name {
            "multiprocessing.cpu_count" | "os.cpu_count" | "cpu_count" | "psutil.cpu_count" => Err(Unknown::Cpu),
            "len" if name_is_affinity(&args) => Err(Unknown::Cpu),
            "int" => match arg(0)? {
                Py::Int(i) => Ok(Py::Int(i)),
                Py::Float(f) => Ok(Py::Int(f.trunc() as i64)),
                Py::Str(s) => s.trim().parse().map(Py::Int).map_err(|_| Unknown::Other(format!("int(\"{}\")", s.escape_debug()))),
                Py::Bool(b) => Ok(Py::Int(b as i64)),
                _ => Err(Unknown::Other("int() of a non-number".into())),
            },
            "float" => match arg(0)? {
                Py::Int(i) => Ok(Py::Float(i as f64)),
                Py::Float(f) => Ok(Py::Float(f)),
                Py::Str(s) => s.trim().parse().map(Py::Float).map_err(|_| Unknown::Other("float() of a non-number".into())),
                _ => Err(Unknown::Other("float() of a non-number".into())),
            },
            "str" => match arg(0)? {
                Py::Int(i) => Ok(Py::Str(i.to_string())),
                Py::Str(s) => Ok(Py::Str(s)),
                _ => Err(Unknown::Other("str() of a non-scalar".into())),
            },
            "max" | "min" => {
                let mut values = Vec::new();
                for a in &args {
                    match a.clone()? {
                        Py::Int(i) => values.push(i),
                        _ => return Err(Unknown::Other(format!("{name}() of non-integers"))),
                    }
                }
                let v = if name == "max" { values.iter().max() } else { values.iter().min() };
                v.copied().map(Py::Int).ok_or(Unknown::Other(format!("{name}() of nothing")))
            }
            "os.environ.get" | "os.getenv" => {
                let Py::Str(key) = arg(0)? else { return Err(Unknown::Other(format!("{name}() of a non-string"))) };
                match (self.env)(&key) {
                    Some(v) => Ok(Py::Str(v)),
                    None => match args.get(1) {
                        Some(default) => {
                            let d = default.clone()?;
                            self.defaulted.push(key);
                            Ok(d)
                        }
                        None => Err(Unknown::Env(key)),
                    },
                }
            }
            other => Err(Unknown::Other(format!("`{other}()`"))),
        }
    }

    fn fstring(&mut self, s: &str) -> Result<Py, Unknown> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let Some(end) = rest[i..].find('}') else { return Err(Unknown::Other("an f-string".into())) };
            let inner = &rest[i + 1..i + end];
            let value = eval(inner.split(':').next().unwrap_or(""), self.vars, self.env)?;
            self.defaulted.extend(value.defaulted);
            match value.value? {
                Py::Int(n) => out.push_str(&n.to_string()),
                Py::Str(t) => out.push_str(&t),
                _ => return Err(Unknown::Other("an f-string".into())),
            }
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        Ok(Py::Str(out))
    }
}

/// `len(os.sched_getaffinity(0))` counts CPUs too.
fn name_is_affinity(args: &[Result<Py, Unknown>]) -> bool {
    matches!(args.first(), Some(Err(Unknown::Other(why))) if why.contains("sched_getaffinity"))
}

fn arith(a: Py, b: Py, op: &str) -> Result<Py, Unknown> {
    match (a, b) {
        (Py::Int(x), Py::Int(y)) => {
            let r = match op {
                "+" => x.checked_add(y),
                "-" => x.checked_sub(y),
                "*" => x.checked_mul(y),
                "//" => x.checked_div_euclid(y),
                "%" => x.checked_rem_euclid(y),
                "/" if y != 0 => return Ok(Py::Float(x as f64 / y as f64)),
                _ => None,
            };
            r.map(Py::Int).ok_or(Unknown::Other("arithmetic overflow or division by zero".into()))
        }
        (Py::Str(x), Py::Str(y)) if op == "+" => Ok(Py::Str(x + &y)),
        (x, y) => {
            let f = |v: &Py| match v {
                Py::Int(i) => Some(*i as f64),
                Py::Float(f) => Some(*f),
                _ => None,
            };
            let (Some(x), Some(y)) = (f(&x), f(&y)) else { return Err(Unknown::Other(format!("`{op}` of non-numbers"))) };
            let r = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" if y != 0.0 => x / y,
                "//" if y != 0.0 => (x / y).floor(),
                _ => return Err(Unknown::Other("division by zero".into())),
            };
            Ok(Py::Float(r))
        }
    }
}

/// A top-level assignment's value, and the environment defaults it used.
#[derive(Clone, Debug)]
struct Assigned {
    value: Result<Py, Unknown>,
    defaulted: Vec<String>,
}

fn eval(expr: &str, vars: &HashMap<String, Assigned>, env: &dyn Fn(&str) -> Option<String>) -> Result<Assigned, Unknown> {
    let toks = tokenize(expr)?;
    let mut e = Eval { toks, pos: 0, vars, env, defaulted: Vec::new() };
    let value = e.expr();
    if value.is_ok() && e.pos != e.toks.len() {
        return Ok(Assigned { value: Err(Unknown::Other("more than one expression".into())), defaulted: e.defaulted });
    }
    e.defaulted.dedup();
    Ok(Assigned { value, defaulted: e.defaulted })
}

/// One logical line: its text (comments removed, bracketed continuations joined), its
/// byte range, and whether it is indented (inside a block).
struct Line {
    text: String,
    bytes: Range<usize>,
    indented: bool,
}

fn logical_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start: Option<usize> = None;
    let mut indented = false;
    let mut depth: i32 = 0;
    let mut quote: Option<(char, bool)> = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut at_line_start = true;
    let mut last_end = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if at_line_start && start.is_none() && quote.is_none() {
            if c == ' ' || c == '\t' {
                indented = true;
                i += 1;
                continue;
            }
            if c == '\n' || c == '\r' {
                indented = false;
                i += 1;
                continue;
            }
        }
        at_line_start = false;
        if let Some((q, triple)) = quote {
            cur.push(c);
            if c == '\\' {
                if let Some(&(_, n)) = chars.get(i + 1) {
                    cur.push(n);
                }
                i += 2;
                continue;
            }
            if c == q {
                if !triple {
                    quote = None;
                } else if chars.get(i + 1).map(|x| x.1) == Some(q) && chars.get(i + 2).map(|x| x.1) == Some(q) {
                    cur.push(q);
                    cur.push(q);
                    i += 2;
                    quote = None;
                }
            }
            last_end = pos + c.len_utf8();
            i += 1;
            continue;
        }
        match c {
            '#' => {
                while i < chars.len() && chars[i].1 != '\n' {
                    i += 1;
                }
                continue;
            }
            '"' | '\'' => {
                start.get_or_insert(pos);
                let triple = chars.get(i + 1).map(|x| x.1) == Some(c) && chars.get(i + 2).map(|x| x.1) == Some(c);
                cur.push(c);
                if triple {
                    cur.push(c);
                    cur.push(c);
                    i += 2;
                }
                quote = Some((c, triple));
            }
            '\\' if chars.get(i + 1).map(|x| x.1) == Some('\n') => {
                cur.push(' ');
                i += 2;
                continue;
            }
            '\n' => {
                if depth > 0 {
                    cur.push(' ');
                } else {
                    if let Some(s) = start.take() {
                        out.push(Line { text: std::mem::take(&mut cur).trim().to_string(), bytes: s..last_end, indented });
                    }
                    cur.clear();
                    indented = false;
                    at_line_start = true;
                }
                i += 1;
                continue;
            }
            '(' | '[' | '{' => {
                depth += 1;
                start.get_or_insert(pos);
                cur.push(c);
            }
            ')' | ']' | '}' => {
                depth = (depth - 1).max(0);
                cur.push(c);
            }
            c => {
                if !c.is_whitespace() {
                    start.get_or_insert(pos);
                }
                cur.push(c);
            }
        }
        if !c.is_whitespace() {
            last_end = pos + c.len_utf8();
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push(Line { text: cur.trim().to_string(), bytes: s..last_end.max(s), indented });
    }
    out
}

/// Gunicorn settings that do not change capacity (noted when assigned).
const OTHER_SETTINGS: [&str; 40] = [
    "accesslog", "errorlog", "loglevel", "access_log_format", "capture_output", "logger_class", "logconfig", "logconfig_dict",
    "syslog", "statsd_host", "proc_name", "default_proc_name", "pythonpath", "chdir", "daemon", "raw_env", "pidfile",
    "worker_tmp_dir", "user", "group", "umask", "tmp_upload_dir", "secure_scheme_headers", "forwarded_allow_ips",
    "proxy_allow_ips", "proxy_protocol", "reload", "reload_engine", "reload_extra_files", "spew", "check_config",
    "print_config", "preload_app", "sendfile", "reuse_port", "limit_request_line", "limit_request_fields",
    "limit_request_field_size", "keyfile", "certfile",
];

/// Reads a gunicorn.conf.py into the gunicorn service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let fallback = args::default_service(builder, &["gunicorn"], "web");
    let service = builder.owner_of(file, &fallback);
    let head = 0..text.find('\n').unwrap_or(text.len());
    if !args::ensure_kind(builder, &service, "gunicorn", file, head.clone()) {
        let kind = args::kind_of_service(builder, &service).unwrap_or_default();
        builder.ignored(file, head, format!("gunicorn config for `{service}`, which is a {kind} service; not read"));
        return;
    }
    builder.mark(&format!("services.{service}"), file, head);
    let env = super::puma_rb::service_env(builder, &service);
    let mut vars: HashMap<String, Assigned> = HashMap::new();
    let mut block: Option<Range<usize>> = None;
    let lines = logical_lines(&text);
    for line in &lines {
        if line.indented {
            if let Some(b) = &mut block {
                b.end = line.bytes.end;
            }
            continue;
        }
        if let Some(b) = block.take() {
            let first = text.get(b.clone()).and_then(|t| t.lines().next()).unwrap_or("").trim().trim_end_matches(':').to_string();
            builder.ignored(file, b, format!("gunicorn.conf.py `{}` block (hooks and conditionals are not evaluated)", first.escape_debug()));
        }
        let t = line.text.as_str();
        let first = t.split(|c: char| c.is_whitespace() || c == '(' || c == ':').next().unwrap_or("");
        if matches!(first, "import" | "from") || t.starts_with('"') || t.starts_with('\'') || t.starts_with('@') {
            continue;
        }
        if t.ends_with(':') && matches!(first, "def" | "if" | "elif" | "else" | "for" | "while" | "with" | "try" | "except" | "finally" | "class" | "async") {
            block = Some(line.bytes.clone());
            continue;
        }
        let Some((lhs, rhs)) = split_assignment(t) else {
            builder.ignored(file, line.bytes.clone(), "gunicorn.conf.py statement is not an assignment; not evaluated");
            continue;
        };
        let value = match eval(rhs, &vars, &env) {
            Ok(a) => a,
            Err(u) => Assigned { value: Err(u), defaulted: Vec::new() },
        };
        vars.insert(lhs.to_string(), value.clone());
        apply(builder, &service, file, lhs, &value, &line.bytes);
    }
    if let Some(b) = block {
        let first = text.get(b.clone()).and_then(|t| t.lines().next()).unwrap_or("").trim().trim_end_matches(':').to_string();
        builder.ignored(file, b, format!("gunicorn.conf.py `{}` block (hooks and conditionals are not evaluated)", first.escape_debug()));
    }
}

/// `name = expr` / `name: int = expr` -> (name, expr).
fn split_assignment(t: &str) -> Option<(&str, &str)> {
    let i = t.find('=')?;
    if t[i + 1..].starts_with('=') || i == 0 || t[..i].ends_with(['!', '<', '>', '+', '-', '*', '/']) {
        return None;
    }
    let lhs = t[..i].split(':').next()?.trim();
    (!lhs.is_empty() && lhs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| (lhs, t[i + 1..].trim()))
}

fn apply(builder: &mut ImportBuilder, service: &str, file: FileId, name: &str, a: &Assigned, bytes: &Range<usize>) {
    let key = match name {
        "workers" | "threads" | "worker_connections" | "max_requests" | "max_requests_jitter" | "backlog" | "timeout" | "graceful_timeout" | "keepalive" | "worker_class" => name,
        "bind" => "port",
        "wsgi_app" => "app",
        other if OTHER_SETTINGS.contains(&other) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{other}` does not change capacity"));
            return;
        }
        _ => return,
    };
    let value = match &a.value {
        Ok(v) => v.clone(),
        Err(Unknown::Cpu) => {
            let hint = if name == "workers" { " (`workers: auto` in an overlay means 2 x cpus + 1)" } else { "" };
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` depends on the CPU count of the machine; left unset{hint}"));
            return;
        }
        Err(Unknown::Env(var)) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` reads ${var}, which has no default here; left unset"));
            return;
        }
        Err(Unknown::Other(why)) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}`: {why} cannot be evaluated here"));
            return;
        }
    };
    let spec_value = match (key, &value) {
        ("worker_class", Py::Str(s)) => match args::worker_class(s) {
            Some(c) => json!(c),
            None => {
                builder.ignored(file, bytes.clone(), format!("gunicorn worker class `{}` is not modelled (sync, gthread, gevent, uvicorn)", s.escape_debug()));
                return;
            }
        },
        ("app", Py::Str(s)) => json!(s),
        ("port", v) => {
            let first = match v {
                Py::List(items) => items.first().cloned().unwrap_or(Py::None),
                other => other.clone(),
            };
            let Py::Str(addr) = first else {
                builder.ignored(file, bytes.clone(), "gunicorn `bind` is not an address");
                return;
            };
            if addr.starts_with("unix:") {
                builder.ignored(file, bytes.clone(), "gunicorn binds a unix socket; no TCP port");
                return;
            }
            match addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).filter(|p| *p > 0) {
                Some(p) => json!(p),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn bind `{}` has no port", addr.escape_debug()));
                    return;
                }
            }
        }
        ("timeout" | "graceful_timeout" | "keepalive", v) => {
            let secs = match v {
                Py::Int(i) if *i >= 0 => Some(format!("{i}s")),
                Py::Float(f) => args::seconds(&f.to_string()),
                Py::Str(s) => args::seconds(s),
                _ => None,
            };
            match secs {
                Some(s) => json!(s),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` is not a number of seconds"));
                    return;
                }
            }
        }
        (_, v) => {
            let n = match v {
                Py::Int(i) => Some(*i),
                Py::Str(s) => s.trim().parse().ok(),
                Py::Float(f) if f.fract() == 0.0 => Some(*f as i64),
                _ => None,
            };
            match n.filter(|n| *n >= 1) {
                Some(n) => json!(n),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` is not a positive whole number"));
                    return;
                }
            }
        }
    };
    let path = format!("services.{service}.{key}");
    if let Some(flag) = args::set_by_flag(builder, &path) {
        if builder.get(&path) != Some(&spec_value) {
            builder.ignored(file, bytes.clone(), format!("gunicorn.conf.py `{name}` {spec_value}: the command line's `{}` wins over it", flag.escape_debug()));
        }
        return;
    }
    builder.set(&path, spec_value.clone(), file, bytes.clone());
    if !a.defaulted.is_empty() {
        let vars = a.defaulted.join(", ");
        assumed_at(
            builder,
            file,
            bytes.clone(),
            format!("gunicorn `{name}` {spec_value}: the default in gunicorn.conf.py, because {vars} is not set in the files read"),
            format!("if {vars} is set where gunicorn runs, its value wins"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    const CONF: &str = r#""""Gunicorn config."""
import multiprocessing
import os

bind = "0.0.0.0:" + os.environ.get("PORT", "8000")
workers = multiprocessing.cpu_count() * 2 + 1
threads = int(os.getenv("GUNICORN_THREADS", 4))
worker_class = "gthread"
timeout = 2 * 60
keepalive = 5
max_requests = 1_000
max_requests_jitter = (
    100
)
accesslog = "-"
graceful_timeout = int(os.environ["GRACEFUL"])

def on_starting(server):
    server.log.info("starting")
    workers = 99

if os.environ.get("DEBUG"):
    reload = True
"#;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("gunicorn.conf.py", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    #[test]
    fn reads_top_level_assignments() {
        let b = read_text(CONF);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["port"], 8000);
        assert!(web.get("workers").is_none());
        assert_eq!(web["threads"], 4);
        assert_eq!(web["worker_class"], "gthread");
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["keepalive"], "5s");
        assert_eq!(web["max_requests"], 1000);
        assert_eq!(web["max_requests_jitter"], 100);
        assert!(web.get("graceful_timeout").is_none());
        assert_eq!(line(&b, "/services/web/threads"), 7);
        assert_eq!(line(&b, "/services/web/max_requests_jitter"), 12);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("CPU count") && n.contains("workers: auto")), "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("assumed: gunicorn `threads` 4") && n.contains("GUNICORN_THREADS")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("$GRACEFUL")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("def on_starting(server)")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("accesslog")), "{notes:?}");
    }

    #[test]
    fn command_line_flags_win() {
        let mut b = ImportBuilder::new("t");
        let cmd = "gunicorn --workers 8 --threads 2 app";
        let c = b.add_source(SourceFile::new("docker-compose.yml", cmd.to_string()));
        super::super::args::apply_command(&mut b, "web", &super::super::args::shell_words(cmd), c);
        let id = b.add_source(SourceFile::new("gunicorn.conf.py", "workers = 3\nthreads = 2\ntimeout = 30\n".to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["workers"], 8);
        assert_eq!(web["timeout"], "30s");
        assert!(b.diagnostics.iter().any(|d| d.message.contains("the command line's `--workers 8` wins")));
    }

    #[test]
    fn odd_python_is_noted_never_a_panic() {
        for odd in ["workers = ", "workers = (", "workers = 'x", "x = \"\"\"\nunterminated", "workers = 1 // 0", "bind = ['unix:/tmp/s']", "workers = 99999999999999999999", "\u{0}", "é = 1", "workers = max(2, 3)\nthreads = os.getenv('X')"] {
            let _ = read_text(odd);
        }
        let b = read_text("workers = max(2, 3)\nbind = ['0.0.0.0:9000', '[::]:9000']\n");
        assert_eq!(b.value["services"]["web"]["workers"], 3);
        assert_eq!(b.value["services"]["web"]["port"], 9000);
    }
}
