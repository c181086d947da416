//! A small evaluator for the Python that config files hold (gunicorn.conf.py):
//! numbers, strings, lists, arithmetic, `os.environ.get` defaults, and logical lines
//! with their byte ranges.

use std::collections::HashMap;

use super::facts::Facts;
use std::ops::Range;

#[derive(Clone, Debug, PartialEq)]
pub enum Py {
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Bool(bool),
    None,
}

/// Why an expression has no value here.
#[derive(Clone, Debug, PartialEq)]
pub enum Unknown {
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
        if let Some(op) = ["//", "**", "==", "!=", "<=", ">="].into_iter().find(|o| *o == two) {
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
            '<' => "<",
            '>' => ">",
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
    facts: &'a Facts,
    defaulted: Vec<String>,
    assumed: Vec<String>,
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

    fn eat_name(&mut self, name: &str) -> bool {
        if matches!(self.toks.get(self.pos), Some(Tok::Name(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `a if cond else b`
    fn test(&mut self) -> Result<Py, Unknown> {
        let value = self.or_test()?;
        if !self.eat_name("if") {
            return Ok(value);
        }
        let cond = self.or_test()?;
        if !self.eat_name("else") {
            return Err(Unknown::Other("`if` without `else`".into()));
        }
        let other = self.test()?;
        Ok(if truthy(&cond) { value } else { other })
    }

    fn or_test(&mut self) -> Result<Py, Unknown> {
        let mut left = self.and_test()?;
        while self.eat_name("or") {
            let right = self.and_test()?;
            if !truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn and_test(&mut self) -> Result<Py, Unknown> {
        let mut left = self.not_test()?;
        while self.eat_name("and") {
            let right = self.not_test()?;
            if truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn not_test(&mut self) -> Result<Py, Unknown> {
        if self.eat_name("not") {
            return Ok(Py::Bool(!truthy(&self.not_test()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Py, Unknown> {
        let left = self.expr()?;
        let op = ["==", "!=", "<=", ">=", "<", ">"].into_iter().find(|o| self.eat(o));
        let negated_in = op.is_none() && self.toks.get(self.pos) == Some(&Tok::Name("not".into())) && self.toks.get(self.pos + 1) == Some(&Tok::Name("in".into()));
        if negated_in {
            self.pos += 2;
        }
        let is_in = negated_in || (op.is_none() && self.eat_name("in"));
        if op.is_none() && !is_in {
            return Ok(left);
        }
        if is_in && self.toks.get(self.pos) == Some(&Tok::Name("os.environ".into())) && !matches!(self.toks.get(self.pos + 1), Some(Tok::Op("[" | "("))) {
            self.pos += 1;
            let Py::Str(name) = &left else { return Err(Unknown::Other("`in os.environ` of a non-string".into())) };
            return Ok(Py::Bool((self.env)(name).is_some() != negated_in));
        }
        let right = self.expr()?;
        if is_in {
            let found = match &right {
                Py::List(items) => items.contains(&left),
                Py::Str(s) => matches!(&left, Py::Str(x) if s.contains(x.as_str())),
                _ => return Err(Unknown::Other("`in` of a non-sequence".into())),
            };
            return Ok(Py::Bool(found != negated_in));
        }
        let op = op.unwrap_or("==");
        let number = |v: &Py| match v {
            Py::Int(i) => Some(*i as f64),
            Py::Float(f) => Some(*f),
            Py::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        };
        Ok(Py::Bool(match op {
            "==" => left == right || number(&left).is_some_and(|a| number(&right) == Some(a)),
            "!=" => !(left == right || number(&left).is_some_and(|a| number(&right) == Some(a))),
            _ => {
                let (Some(a), Some(b)) = (number(&left), number(&right)) else { return Err(Unknown::Other(format!("`{op}` of non-numbers"))) };
                match op {
                    "<=" => a <= b,
                    ">=" => a >= b,
                    "<" => a < b,
                    _ => a > b,
                }
            }
        }))
    }

    /// The CPUs a process sees: the machine's when known, else the assumed count.
    fn cpus(&mut self, what: &str) -> Result<Py, Unknown> {
        if !self.facts.cpus_known {
            self.assumed.push(format!("{} CPUs for `{what}` (the machine's CPU count is not in the files; pass --cpus)", self.facts.cpus));
        }
        Ok(Py::Int(self.facts.cpus as i64))
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
            let v = self.test();
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
                let v = self.test()?;
                if self.eat(",") {
                    let mut items = vec![v];
                    while !self.eat(")") {
                        items.push(self.test()?);
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
                    items.push(self.test()?);
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
                    let key = self.test()?;
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
                            self.assumed.extend(a.assumed.iter().cloned());
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
            "multiprocessing.cpu_count" | "os.cpu_count" | "cpu_count" | "psutil.cpu_count" => self.cpus(&format!("{name}()")),
            "len" if name_is_affinity(&args) => self.cpus("len(os.sched_getaffinity(0))"),
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
            let value = eval(inner.split(':').next().unwrap_or(""), self.vars, self.env, self.facts)?;
            self.assumed.extend(value.assumed);
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

/// A top-level assignment's value, the environment defaults it used, and the facts of
/// the run it rests on when the files did not say them (an assumed CPU count).
#[derive(Clone, Debug)]
pub struct Assigned {
    pub value: Result<Py, Unknown>,
    pub defaulted: Vec<String>,
    pub assumed: Vec<String>,
}

/// Python truthiness.
pub fn truthy(v: &Py) -> bool {
    match v {
        Py::Int(i) => *i != 0,
        Py::Float(f) => *f != 0.0,
        Py::Str(s) => !s.is_empty(),
        Py::List(items) => !items.is_empty(),
        Py::Bool(b) => *b,
        Py::None => false,
    }
}

/// Evaluates a Python expression: numbers, strings, lists, arithmetic, comparisons,
/// `and`/`or`/`not`, `in`, `a if c else b`, `int()`/`float()`/`str()`/`min()`/`max()`,
/// `os.environ.get` / `os.getenv` with defaults, and `multiprocessing.cpu_count()`
/// (the CPUs of the run).
pub fn eval(expr: &str, vars: &HashMap<String, Assigned>, env: &dyn Fn(&str) -> Option<String>, facts: &Facts) -> Result<Assigned, Unknown> {
    let toks = tokenize(expr)?;
    let mut e = Eval { toks, pos: 0, vars, env, facts, defaulted: Vec::new(), assumed: Vec::new() };
    let value = e.test();
    if value.is_ok() && e.pos != e.toks.len() {
        return Ok(Assigned { value: Err(Unknown::Other("more than one expression".into())), defaulted: e.defaulted, assumed: e.assumed });
    }
    e.defaulted.dedup();
    e.assumed.dedup();
    Ok(Assigned { value, defaulted: e.defaulted, assumed: e.assumed })
}

/// One logical line: its text (comments removed, bracketed continuations joined), its
/// byte range, and whether it is indented (inside a block).
pub struct Line {
    pub text: String,
    pub bytes: Range<usize>,
    pub indented: bool,
}

pub fn logical_lines(text: &str) -> Vec<Line> {
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

/// `name = expr` / `name: int = expr` -> (name, expr).
pub fn split_assignment(t: &str) -> Option<(&str, &str)> {
    let i = t.find('=')?;
    if t[i + 1..].starts_with('=') || i == 0 || t[..i].ends_with(['!', '<', '>', '+', '-', '*', '/']) {
        return None;
    }
    let lhs = t[..i].split(':').next()?.trim();
    (!lhs.is_empty() && lhs.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| (lhs, t[i + 1..].trim()))
}
