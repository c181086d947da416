//! A small evaluator for the Ruby that config files hold (puma.rb, ERB tags of
//! database.yml and deploy.yml): integers, strings, `ENV.fetch` defaults, `||`,
//! arithmetic, and statements split with their byte ranges.

use std::collections::HashMap;
use std::ops::Range;

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
pub type BoxedEnv = Box<EnvLookup<'static>>;

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

/// Removes a `#` comment outside strings.
pub fn strip_comment(line: &str) -> &str {
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
pub struct Statement {
    pub text: String,
    pub bytes: Range<usize>,
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

pub fn statements(text: &str) -> Vec<Statement> {
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
pub fn opens_block(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    if matches!(first, "if" | "unless" | "case" | "begin" | "def" | "class" | "module" | "while" | "until" | "for") {
        return true;
    }
    let t = text.trim_end();
    t.ends_with(" do") || t == "do" || (t.contains(" do |") && t.ends_with('|'))
}

/// `name args` -> (name, args).
pub fn call(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(text.len());
    let name = &text[..end];
    let mut rest = text[end..].trim();
    if rest.starts_with('(') && rest.ends_with(')') {
        rest = &rest[1..rest.len() - 1];
    }
    (name, rest.trim())
}

/// Splits call arguments at top-level commas.
pub fn split_args(text: &str) -> Vec<&str> {
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
