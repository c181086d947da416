//! A small evaluator for the Ruby that config files hold (puma.rb, ERB tags of
//! database.yml and deploy.yml): integers, strings, `ENV.fetch` defaults, `||`,
//! arithmetic, and statements split with their byte ranges.

use std::collections::HashMap;
use std::ops::Range;

pub use super::facts::{ASSUMED_CPUS, Facts};

/// A Ruby value the evaluator knows.
#[derive(Clone, Debug, PartialEq)]
pub enum RValue {
    Int(i64),
    /// A decimal number (`Concurrent.processor_count * 0.5`), made whole by
    /// `.ceil` / `.floor` / `.round` / `.to_i`.
    Float(f64),
    Str(String),
    Sym(String),
    Bool(bool),
    Array(Vec<RValue>),
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
            RValue::Float(f) if f.is_finite() => Some(f.trunc() as i64),
            RValue::Nil => Some(0),
            _ => None,
        }
    }

    /// An integer, also from a numeric string (`"5"`) or a whole decimal (`2.0`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RValue::Int(i) => Some(*i),
            RValue::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(*f as i64),
            RValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A number for arithmetic and comparisons: integers, decimals, numeric strings.
    fn as_number(&self) -> Option<f64> {
        match self {
            RValue::Float(f) => Some(*f),
            RValue::Str(s) => s.trim().parse().ok(),
            other => other.as_int().map(|i| i as f64),
        }
    }

    /// Ruby truthiness: everything but `nil` and `false`.
    pub fn truthy(&self) -> bool {
        !matches!(self, RValue::Nil | RValue::Bool(false))
    }

    fn text(&self) -> Option<String> {
        match self {
            RValue::Str(s) | RValue::Sym(s) => Some(s.clone()),
            RValue::Int(i) => Some(i.to_string()),
            RValue::Float(f) => Some(format!("{f:?}")),
            RValue::Bool(b) => Some(b.to_string()),
            RValue::Nil => Some(String::new()),
            RValue::Array(_) => None,
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
    /// Facts of the run the value rests on, as sentences (`RAILS_ENV = production`,
    /// `2 CPUs`), when the files did not say them.
    pub assumed: Vec<String>,
}

/// Looks an environment variable up in what the files read say.
pub type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// An owned `EnvLookup`.
pub type BoxedEnv = Box<EnvLookup<'static>>;

/// Where an expression is evaluated: the environment and the facts of the run.
pub struct Context<'a> {
    pub env: &'a EnvLookup<'a>,
    pub facts: &'a Facts,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
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
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                    i += 1;
                }
                let decimal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                out.push(Tok::Float(decimal.parse().map_err(|_| "a malformed decimal number".to_string())?));
                continue;
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
                    // The code of `#{…}` may hold strings of its own (`"#{x ? "a" : "b"}"`):
                    // copied as written up to its closing brace.
                    s.push('#');
                    let mut depth = 0;
                    let mut inner_quote: Option<char> = None;
                    loop {
                        let Some(&c) = chars.get(i) else { return Err("an unterminated string".into()) };
                        i += 1;
                        s.push(c);
                        match inner_quote {
                            Some(q) if c == q => inner_quote = None,
                            Some(_) => {}
                            None if c == '"' || c == '\'' => inner_quote = Some(c),
                            None if c == '{' => depth += 1,
                            None if c == '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            None => {}
                        }
                    }
                    continue;
                }
                s.push(n);
            }
            out.push(Tok::Str(s, interpolated));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '@' || c == ':' && chars.get(i + 1).is_some_and(|n| n.is_alphabetic() || *n == '_') {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':' && chars.get(i + 1) == Some(&':') || (chars[i] == ':' && i > 0 && chars[i - 1] == ':')) {
                i += 1;
            }
            // `x?` / `x!` method names; `a ? b : c` keeps its `?` (a space follows it).
            // A predicate before a ternary or a boolean operator keeps its `?` too:
            // `Sidekiq.server? ? a : b`, `Rails.env.production? && x`.
            let after: String = chars.get(i + 1..).map(|r| r.iter().collect::<String>()).unwrap_or_default();
            let after = after.trim_start();
            let predicate_then = i > 0 && ["?", "&&", "||", ")", "then"].iter().any(|p| after.starts_with(p)) || after.is_empty();
            if i < chars.len() && (chars[i] == '!' || chars[i] == '?') && (chars.get(i + 1).is_none_or(|n| !n.is_whitespace() || chars[i] == '!') || (chars[i] == '?' && predicate_then)) && chars.get(i + 1) != Some(&'=') {
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
            ">=" => Some(">="),
            "<=" => Some("<="),
            "::" => Some("::"),
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
            '!' => "!",
            '?' => "?",
            ':' => ":",
            '<' => "<",
            '>' => ">",
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
    cx: &'a Context<'a>,
    defaulted: Vec<String>,
    from_env: Vec<String>,
    assumed: Vec<String>,
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
    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(q)) if q == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) { Ok(()) } else { Err(format!("`{p}` expected")) }
    }

    /// `cond ? a : b`
    fn expr(&mut self) -> Result<RValue, String> {
        let cond = self.or()?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let taken = cond.truthy();
        let yes = self.branch(taken)?;
        self.expect(":")?;
        let no = self.branch(!taken)?;
        Ok(if taken { yes } else { no })
    }

    /// One branch of a conditional: a branch that does not run leaves no trace in
    /// the defaults and facts the value rests on.
    fn branch(&mut self, taken: bool) -> Result<RValue, String> {
        let marks = (self.defaulted.len(), self.from_env.len(), self.assumed.len());
        let v = self.expr()?;
        if !taken {
            self.defaulted.truncate(marks.0);
            self.from_env.truncate(marks.1);
            self.assumed.truncate(marks.2);
        }
        Ok(v)
    }

    /// `if c [then] a elsif d b else e end` (and `unless`) used as a value, as in
    /// `ENV.fetch("X") { if production then 10 else 3 end }`: the newlines between
    /// its parts are gone once tokenized, so each part is one expression.
    fn conditional(&mut self, negate: bool) -> Result<RValue, String> {
        let mut result: Option<RValue> = None;
        let mut decided = false;
        loop {
            let holds = self.expr()?.truthy() != negate;
            self.eat_word("then");
            let taken = !decided && holds;
            let v = self.branch(taken)?;
            if taken {
                result = Some(v);
                decided = true;
            }
            if self.eat_word("elsif") {
                if negate {
                    return Err("`unless … elsif`".into());
                }
                continue;
            }
            if self.eat_word("else") {
                let v = self.branch(!decided)?;
                if !decided {
                    result = Some(v);
                }
            }
            if !self.eat_word("end") {
                return Err("`end` expected".into());
            }
            return Ok(result.unwrap_or(RValue::Nil));
        }
    }

    fn or(&mut self) -> Result<RValue, String> {
        let mut left = self.and()?;
        while self.eat("||") || self.eat_word("or") {
            let right = self.and()?;
            if !left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<RValue, String> {
        let mut left = self.not()?;
        while self.eat("&&") || self.eat_word("and") {
            let right = self.not()?;
            if left.truthy() {
                left = right;
            }
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<RValue, String> {
        if self.eat("!") || self.eat_word("not") {
            return Ok(RValue::Bool(!self.not()?.truthy()));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<RValue, String> {
        let left = self.additive()?;
        let op = ["==", "!=", ">=", "<=", ">", "<"].into_iter().find(|op| self.eat(op));
        let Some(op) = op else { return Ok(left) };
        let right = self.additive()?;
        Ok(RValue::Bool(match op {
            "==" => same(&left, &right),
            "!=" => !same(&left, &right),
            _ => {
                let (Some(a), Some(b)) = (left.as_number(), right.as_number()) else { return Err(format!("`{op}` of non-numbers")) };
                match op {
                    ">=" => a >= b,
                    "<=" => a <= b,
                    ">" => a > b,
                    _ => a < b,
                }
            }
        }))
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
            let op = ["*", "/", "%"].into_iter().find(|op| self.eat(op));
            let Some(op) = op else { return Ok(left) };
            let right = self.postfix()?;
            left = arith(&left, &right, op)?;
        }
    }

    /// Call arguments after the method name: `(a, b)` or nothing.
    fn call_args(&mut self) -> Result<Vec<RValue>, String> {
        let mut args = Vec::new();
        if self.eat("(") {
            while !self.eat(")") {
                args.push(self.expr()?);
                if !self.eat(",") {
                    self.expect(")")?;
                    break;
                }
            }
        }
        Ok(args)
    }

    fn postfix(&mut self) -> Result<RValue, String> {
        let mut v = self.primary()?;
        while self.eat(".") {
            let Some(Tok::Ident(m)) = self.peek().cloned() else { return Err("a method name expected".into()) };
            self.pos += 1;
            let args = self.call_args()?;
            v = method(v, &m, &args)?;
        }
        Ok(v)
    }

    fn cpus(&mut self, what: &str) -> RValue {
        if !self.cx.facts.cpus_known {
            self.assumed.push(format!("{} CPUs for `{what}` (the machine's CPU count is not in the files; pass --cpus)", self.cx.facts.cpus));
        }
        RValue::Int(self.cx.facts.cpus as i64)
    }

    /// An environment variable; `RAILS_ENV` / `RACK_ENV` the files do not set are the
    /// environment of the run.
    fn env_var(&mut self, name: &str) -> Option<String> {
        match (self.cx.env)(name) {
            Some(v) => {
                self.from_env.push(name.to_string());
                Some(v)
            }
            None if matches!(name, "RAILS_ENV" | "RACK_ENV" | "APP_ENV") => {
                self.assumed.push(format!("{name} = {} (no file sets it; pass --env to evaluate another)", self.cx.facts.app_env));
                Some(self.cx.facts.app_env.clone())
            }
            None => None,
        }
    }

    fn primary(&mut self) -> Result<RValue, String> {
        let Some(tok) = self.peek().cloned() else { return Err("an expression expected".into()) };
        self.pos += 1;
        match tok {
            Tok::Int(i) => Ok(RValue::Int(i)),
            Tok::Float(f) => Ok(RValue::Float(f)),
            Tok::Str(s, true) => self.interpolate(&s),
            Tok::Str(s, false) => Ok(RValue::Str(s)),
            Tok::Punct("(") => {
                let v = self.expr()?;
                self.expect(")")?;
                Ok(v)
            }
            Tok::Punct("[") => {
                let mut items = Vec::new();
                while !self.eat("]") {
                    items.push(self.expr()?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Ok(RValue::Array(items))
            }
            Tok::Punct("-") => {
                let v = self.postfix()?;
                arith(&RValue::Int(0), &v, "-")
            }
            Tok::Ident(name) => match name.as_str() {
                "nil" => Ok(RValue::Nil),
                "if" | "unless" => self.conditional(name == "unless"),
                "true" => Ok(RValue::Bool(true)),
                "false" => Ok(RValue::Bool(false)),
                "Integer" | "String" => {
                    let args = self.call_args()?;
                    let v = args.first().cloned().ok_or_else(|| format!("{name}() of nothing"))?;
                    if name == "String" {
                        return Ok(RValue::Str(v.text().unwrap_or_default()));
                    }
                    // `Integer(3.5)` is 3: a decimal is truncated.
                    let whole = if let RValue::Float(_) = v { v.to_i() } else { v.as_int() };
                    whole.map(RValue::Int).ok_or_else(|| "Integer() of a non-number".to_string())
                }
                "ENV" => self.env_access(),
                "Etc::nprocessors" => Ok(self.cpus("Etc.nprocessors")),
                "Etc" | "Concurrent" => {
                    self.expect(".")?;
                    let Some(Tok::Ident(m)) = self.peek().cloned() else { return Err(format!("`{name}.`")) };
                    self.pos += 1;
                    self.call_args()?;
                    match m.as_str() {
                        "nprocessors" | "processor_count" | "physical_processor_count" | "available_processor_count" => Ok(self.cpus(&format!("{name}.{m}"))),
                        other => Err(format!("`{name}.{other}`")),
                    }
                }
                "Rails" | "Rails::env" => {
                    if name == "Rails" {
                        self.expect(".")?;
                        if !self.eat_word("env") {
                            return Err("`Rails.` other than Rails.env".into());
                        }
                    }
                    let env = self.env_var("RAILS_ENV").unwrap_or_else(|| self.cx.facts.app_env.clone());
                    Ok(RValue::Str(env))
                }
                "defined?" => Err("`defined?`".into()),
                // `Sidekiq.server?`: true in a Sidekiq process (database.yml sizing the
                // pool to Sidekiq's concurrency there, to puma's threads elsewhere).
                "Sidekiq" if matches!(self.peek(), Some(Tok::Punct("."))) => {
                    self.expect(".")?;
                    if !self.eat_word("server?") {
                        return Err("`Sidekiq.` other than Sidekiq.server?".into());
                    }
                    match self.cx.facts.program {
                        Some(program) => Ok(RValue::Bool(program == "sidekiq")),
                        None => Err("`Sidekiq.server?` (the program that reads this file is not known)".into()),
                    }
                }
                sym if sym.starts_with(':') => Ok(RValue::Sym(sym[1..].to_string())),
                other => match self.vars.get(other) {
                    Some(e) => {
                        self.defaulted.extend(e.defaulted.iter().cloned());
                        self.from_env.extend(e.from_env.iter().cloned());
                        self.assumed.extend(e.assumed.iter().cloned());
                        Ok(e.value.clone())
                    }
                    None => Err(format!("`{other}`")),
                },
            },
            Tok::Punct(p) => Err(format!("`{p}`")),
        }
    }

    /// `"tcp://#{ENV.fetch('BIND', '0.0.0.0')}:#{port}"`: each `#{…}` evaluated here.
    fn interpolate(&mut self, text: &str) -> Result<RValue, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("#{") {
            out.push_str(&rest[..start]);
            let inner = &rest[start + 2..];
            let mut depth = 1;
            let end = inner
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .ok_or("a string with an unterminated #{…}")?;
            let e = eval(&inner[..end], self.vars, self.cx).map_err(|why| format!("a string with #{{…}} interpolation ({why})"))?;
            self.defaulted.extend(e.defaulted);
            self.from_env.extend(e.from_env);
            self.assumed.extend(e.assumed);
            out.push_str(&e.value.text().ok_or("an array in a string")?);
            rest = &inner[end + 1..];
        }
        out.push_str(rest);
        Ok(RValue::Str(out))
    }

    fn env_access(&mut self) -> Result<RValue, String> {
        if self.eat("[") {
            let Some(Tok::Str(name, false)) = self.peek().cloned() else { return Err("ENV[…] of a non-literal".into()) };
            self.pos += 1;
            self.expect("]")?;
            return Ok(match self.env_var(&name) {
                Some(v) => RValue::Str(v),
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
        let method = match self.peek().cloned() {
            Some(Tok::Ident(m)) => m,
            _ => return Err("a method of ENV expected".into()),
        };
        self.pos += 1;
        if matches!(method.as_str(), "key?" | "has_key?" | "include?" | "member?") {
            let args = self.call_args()?;
            let Some(RValue::Str(name)) = args.first() else { return Err(format!("ENV.{method} of a non-literal")) };
            return Ok(RValue::Bool(self.env_var(name).is_some()));
        }
        if method != "fetch" {
            return Err(format!("ENV.{method}"));
        }
        // `ENV.fetch("X", d)`, or without parentheses: `ENV.fetch "X", d`.
        let parenthesized = self.eat("(");
        let Some(Tok::Str(name, false)) = self.peek().cloned() else { return Err("ENV.fetch of a non-literal".into()) };
        self.pos += 1;
        let mut default = None;
        if self.eat(",") {
            default = Some(self.expr()?);
        }
        if parenthesized {
            self.expect(")")?;
        }
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
            default = Some(self.expr()?);
            self.expect("}")?;
        }
        match self.env_var(&name) {
            Some(v) => Ok(RValue::Str(v)),
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

/// Ruby `==` for the values the evaluator knows (`"5" == 5` is false in Ruby).
fn same(a: &RValue, b: &RValue) -> bool {
    match (a, b) {
        (RValue::Float(_), RValue::Int(_) | RValue::Float(_)) | (RValue::Int(_), RValue::Float(_)) => a.as_number() == b.as_number(),
        _ => a == b,
    }
}

fn method(v: RValue, m: &str, args: &[RValue]) -> Result<RValue, String> {
    let int = |r: Option<i64>| r.map(RValue::Int).ok_or_else(|| format!("`.{m}` of a non-number"));
    Ok(match m {
        "to_i" | "truncate" => int(v.to_i())?,
        "to_f" => RValue::Float(v.as_number().ok_or("`.to_f` of a non-number")?),
        "ceil" | "floor" | "round" => {
            let x = v.as_number().ok_or_else(|| format!("`.{m}` of a non-number"))?;
            let whole = match m {
                "ceil" => x.ceil(),
                "floor" => x.floor(),
                _ => x.round(),
            };
            if !whole.is_finite() || whole.abs() > i64::MAX as f64 {
                return Err("arithmetic overflow".into());
            }
            RValue::Int(whole as i64)
        }
        "to_s" => RValue::Str(v.text().ok_or("`.to_s` of an array")?),
        "to_json" => RValue::Str(serde_json::to_string(&v.text().ok_or("`.to_json` of an array")?).map_err(|e| e.to_string())?),
        "to_sym" => RValue::Sym(v.text().ok_or("`.to_sym` of an array")?),
        "presence" => match &v {
            RValue::Str(s) if s.trim().is_empty() => RValue::Nil,
            _ => v,
        },
        "present?" => RValue::Bool(!matches!(&v, RValue::Nil) && !matches!(&v, RValue::Str(s) if s.trim().is_empty())),
        "blank?" => RValue::Bool(matches!(&v, RValue::Nil) || matches!(&v, RValue::Str(s) if s.trim().is_empty())),
        "nil?" => RValue::Bool(matches!(v, RValue::Nil)),
        "empty?" => RValue::Bool(matches!(&v, RValue::Str(s) if s.is_empty()) || matches!(&v, RValue::Array(a) if a.is_empty())),
        "zero?" => RValue::Bool(v.as_int() == Some(0)),
        "positive?" => RValue::Bool(v.as_int().is_some_and(|i| i > 0)),
        "downcase" | "upcase" | "strip" => {
            let t = v.text().ok_or_else(|| format!("`.{m}` of an array"))?;
            RValue::Str(match m {
                "downcase" => t.to_lowercase(),
                "upcase" => t.to_uppercase(),
                _ => t.trim().to_string(),
            })
        }
        "max" | "min" => {
            let RValue::Array(items) = &v else { return Err(format!("`.{m}` of a non-array")) };
            let ints: Option<Vec<i64>> = items.iter().map(RValue::as_int).collect();
            let ints = ints.ok_or_else(|| format!("`.{m}` of non-numbers"))?;
            int(if m == "max" { ints.iter().max().copied() } else { ints.iter().min().copied() })?
        }
        "clamp" => {
            let (Some(x), Some(lo), Some(hi)) = (v.as_int(), args.first().and_then(RValue::as_int), args.get(1).and_then(RValue::as_int)) else { return Err("`.clamp` of non-numbers".into()) };
            RValue::Int(x.clamp(lo.min(hi), hi.max(lo)))
        }
        // `Rails.env.production?`
        env if env.ends_with('?') && matches!(v, RValue::Str(_)) => RValue::Bool(v.text().is_some_and(|t| t == env.trim_end_matches('?'))),
        other => return Err(format!("`.{other}`")),
    })
}

fn arith(a: &RValue, b: &RValue, op: &str) -> Result<RValue, String> {
    if matches!(a, RValue::Float(_)) || matches!(b, RValue::Float(_)) {
        let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else { return Err(format!("`{op}` of non-numbers")) };
        let r = match op {
            "+" => x + y,
            "-" => x - y,
            "*" => x * y,
            "/" if y != 0.0 => x / y,
            "%" if y != 0.0 => x.rem_euclid(y),
            _ => return Err("division by zero".into()),
        };
        return if r.is_finite() { Ok(RValue::Float(r)) } else { Err("arithmetic overflow".into()) };
    }
    let (Some(x), Some(y)) = (a.as_int(), b.as_int()) else { return Err(format!("`{op}` of non-numbers")) };
    let r = match op {
        "+" => x.checked_add(y),
        "-" => x.checked_sub(y),
        "*" => x.checked_mul(y),
        "/" => x.checked_div(y),
        "%" => x.checked_rem(y),
        _ => None,
    };
    r.map(RValue::Int).ok_or_else(|| "arithmetic overflow".to_string())
}

/// Evaluates a small Ruby expression: integers, strings, symbols, arrays, `+ - * / %`,
/// comparisons, `|| && !` (and `or and not`), `a ? b : c`, `.to_i` and friends,
/// `Integer(…)`, `ENV.fetch("X") { d }`, `ENV.fetch("X", d)`, `ENV["X"]`,
/// `ENV.key?("X")`, `Rails.env.production?`, `Concurrent.processor_count` /
/// `Etc.nprocessors` (the CPUs of the run), and local variables already evaluated.
/// Err says what could not be evaluated.
pub fn eval(expr: &str, vars: &HashMap<String, Evaluated>, cx: &Context<'_>) -> Result<Evaluated, String> {
    let toks = tokenize(expr).map_err(|e| format!("cannot read {e}"))?;
    let mut p = Parser { toks, pos: 0, vars, cx, defaulted: Vec::new(), from_env: Vec::new(), assumed: Vec::new() };
    let value = p.expr()?;
    if p.pos != p.toks.len() {
        return Err("more than one expression".into());
    }
    p.defaulted.dedup();
    p.from_env.dedup();
    p.assumed.sort();
    p.assumed.dedup();
    Ok(Evaluated { value, defaulted: p.defaulted, from_env: p.from_env, assumed: p.assumed })
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

/// The characters of `text` outside strings and brackets, with their offsets.
fn top_level(text: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ if depth == 0 => out.push((i, c)),
                _ => {}
            },
        }
    }
    out
}

/// Splits call arguments at top-level commas.
pub fn split_args(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in top_level(text).into_iter().filter(|(_, c)| *c == ',') {
        out.push(text[start..i].trim());
        start = i + 1;
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// One step of walking a Ruby config file in the environment of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A statement that runs (a DSL call such as `workers 2`), with the facts its
    /// branch was taken on and, for a trailing `if`/`unless` that could not be
    /// decided, the condition (`(keyword, condition, why)`).
    Statement { text: String, bytes: Range<usize>, assumed: Vec<String>, undecided: Option<(String, String, String)> },
    /// A statement or block that does not run here, or could not be evaluated, and why.
    Skipped { bytes: Range<usize>, what: String, why: String },
    /// A block with no `end`.
    Unclosed { bytes: Range<usize>, what: String },
}

/// A block being walked.
struct Frame {
    what: String,
    start: Range<usize>,
    /// `if`/`unless`: whether the current branch runs (None: undecided); other blocks
    /// (hooks, `case`, `def`) never run as top-level configuration.
    branch: Option<Option<bool>>,
    /// An earlier branch of this `if` ran (or may have).
    taken_before: Option<bool>,
    /// Why the current branch does not run (or cannot be decided), and whether it
    /// held statements worth a note.
    why: String,
    skipped_statements: bool,
    facts: Vec<String>,
}

/// Walks a Ruby config file: local assignments (`x = …`, `x ||= …`) are evaluated into
/// `vars`; `if`/`unless`/`elsif`/`else` are decided in the environment of the run
/// and only the branch that runs yields its statements; a trailing `if`/`unless`
/// is decided the same way; hooks and other blocks (`do … end`, `case`, `def`) are
/// reported as skipped.
/// Each step is handed to `on_step` with the local variables as they are at that point.
pub fn walk(text: &str, cx: &Context<'_>, vars: &mut HashMap<String, Evaluated>, on_step: &mut dyn FnMut(Step, &HashMap<String, Evaluated>)) {
    let mut out = Steps { on_step };
    let mut stack: Vec<Frame> = Vec::new();
    for st in statements(text) {
        let t = st.text.trim().to_string();
        let first = t.split_whitespace().next().unwrap_or("");
        let active = stack.iter().all(|f| f.branch == Some(Some(true)));
        let parent_active = stack.len() <= 1 || stack[..stack.len() - 1].iter().all(|f| f.branch == Some(Some(true)));
        if first == "end" || t.starts_with("end.") || t.starts_with("end)") {
            let Some(frame) = stack.pop() else { continue };
            let parent_active = stack.iter().all(|f| f.branch == Some(Some(true)));
            if parent_active && (frame.branch.is_none() || frame.skipped_statements) {
                out.push(Step::Skipped { bytes: frame.start.start..st.bytes.end, what: frame.what, why: frame.why }, vars);
            }
            continue;
        }
        if let Some(frame) = stack.last_mut().filter(|f| f.branch.is_some())
            && (first == "elsif" || first == "else")
        {
            if parent_active && frame.skipped_statements {
                out.push(Step::Skipped { bytes: frame.start.start..st.bytes.start, what: frame.what.clone(), why: frame.why.clone() }, vars);
            }
            let before = match (frame.taken_before, frame.branch) {
                (Some(true), _) | (_, Some(Some(true))) => Some(true),
                (Some(false), Some(Some(false))) => Some(false),
                _ => None,
            };
            frame.taken_before = before;
            frame.start = st.bytes.clone();
            frame.skipped_statements = false;
            let (branch, why) = match (before, first) {
                (Some(true), _) => (Some(false), "an earlier branch of its `if` runs".to_string()),
                (None, _) => (None, "whether an earlier branch of its `if` runs cannot be decided here".to_string()),
                (Some(false), "else") => (Some(true), String::new()),
                (Some(false), _) => decide(t["elsif".len()..].trim(), false, cx, vars, &mut frame.facts),
            };
            frame.what = if first == "else" { "else".to_string() } else { format!("elsif {}", t["elsif".len()..].trim()) };
            frame.branch = Some(branch);
            frame.why = why;
            continue;
        }
        if opens_block(&t) {
            let conditional = matches!(first, "if" | "unless") && !t.ends_with(" do") && !t.contains(" do |");
            let mut frame = Frame { what: block_name(&t), start: st.bytes.clone(), branch: None, taken_before: Some(false), why: String::new(), skipped_statements: false, facts: Vec::new() };
            if conditional {
                let cond = t[first.len()..].trim().trim_end_matches(" then");
                let (branch, why) = if active { decide(cond, first == "unless", cx, vars, &mut frame.facts) } else { (Some(false), String::new()) };
                frame.branch = Some(branch);
                frame.why = why;
            } else {
                frame.why = "hooks and other blocks run later or elsewhere; not evaluated".into();
            }
            stack.push(frame);
            continue;
        }
        if !active {
            if let Some(frame) = stack.last_mut() {
                frame.skipped_statements = true;
            }
            continue;
        }
        let facts: Vec<String> = stack.iter().flat_map(|f| f.facts.iter().cloned()).collect();
        statement(&t, st.bytes.clone(), facts, cx, vars, &mut out);
    }
    for frame in stack {
        out.push(Step::Unclosed { bytes: frame.start, what: frame.what }, vars);
    }
}

/// Where `walk` hands its steps.
struct Steps<'a> {
    on_step: &'a mut dyn FnMut(Step, &HashMap<String, Evaluated>),
}

impl Steps<'_> {
    fn push(&mut self, step: Step, vars: &HashMap<String, Evaluated>) {
        (self.on_step)(step, vars);
    }
}

/// `if x > 1` -> `if x > 1`; `on_worker_boot do` -> `on_worker_boot`.
fn block_name(t: &str) -> String {
    let name = t.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    name.trim_end_matches(" do").to_string()
}

/// Whether a condition holds: (Some(runs), why not) or (None, why undecided).
fn decide(cond: &str, negate: bool, cx: &Context<'_>, vars: &HashMap<String, Evaluated>, facts: &mut Vec<String>) -> (Option<bool>, String) {
    match eval(cond, vars, cx) {
        Ok(e) => {
            let holds = e.value.truthy() != negate;
            facts.extend(e.assumed);
            let kw = if negate { "unless" } else { "if" };
            (Some(holds), format!("`{kw} {cond}` is false where it runs"))
        }
        Err(why) => (None, format!("the condition `{cond}` cannot be decided here ({why})")),
    }
}

/// One statement of the branch that runs: an assignment, or a call with an optional
/// trailing `if`/`unless`.
fn statement(t: &str, bytes: Range<usize>, facts: Vec<String>, cx: &Context<'_>, vars: &mut HashMap<String, Evaluated>, out: &mut Steps<'_>) {
    let (stmt, modifier) = split_modifier(t);
    let mut assumed = facts;
    let mut undecided = None;
    if let Some((kw, cond)) = modifier {
        match eval(cond, vars, cx) {
            Ok(e) => {
                assumed.extend(e.assumed);
                if e.value.truthy() == (kw == "unless") {
                    let what = stmt.split_whitespace().next().unwrap_or(stmt).to_string();
                    out.push(Step::Skipped { bytes, what, why: format!("`{kw} {cond}` is false where it runs") }, vars);
                    return;
                }
            }
            Err(why) => undecided = Some((kw.to_string(), cond.to_string(), why)),
        }
    }
    if let Some((name, op, rhs)) = assignment(stmt) {
        if undecided.is_some() {
            vars.remove(name);
            return;
        }
        if op == "||=" && vars.get(name).is_some_and(|v| v.value.truthy()) {
            return;
        }
        match eval(rhs, vars, cx) {
            Ok(mut e) => {
                e.assumed.extend(assumed);
                vars.insert(name.to_string(), e);
            }
            Err(_) => {
                vars.remove(name);
            }
        }
        return;
    }
    out.push(Step::Statement { text: stmt.to_string(), bytes, assumed, undecided }, vars);
}

/// `x = expr` / `x ||= expr` -> (x, op, expr).
fn assignment(t: &str) -> Option<(&str, &str, &str)> {
    let (lhs, op, rhs) = if let Some((l, r)) = t.split_once("||=") { (l, "||=", r) } else { let (l, r) = t.split_once('=')?; (l, "=", r) };
    if op == "=" && (r_starts_eq(rhs) || lhs.ends_with(['!', '<', '>', '='])) {
        return None;
    }
    let name = lhs.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with(|c: char| c.is_ascii_digit())).then(|| (name, op, rhs.trim()))
}

fn r_starts_eq(rhs: &str) -> bool {
    rhs.starts_with('=') || rhs.starts_with('~')
}

/// `stmt if cond` -> (stmt, Some(("if", cond))), outside strings and brackets.
fn split_modifier(t: &str) -> (&str, Option<(&'static str, &str)>) {
    let bytes = t.as_bytes();
    for (i, _) in top_level(t).into_iter().filter(|(_, c)| *c == ' ') {
        for kw in ["if", "unless"] {
            let end = i + 1 + kw.len();
            if t[i + 1..].starts_with(kw) && bytes.get(end) == Some(&b' ') {
                return (t[..i].trim_end(), Some((kw, t[end..].trim())));
            }
        }
    }
    (t, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, env: &EnvLookup<'_>, facts: &Facts) -> Result<Evaluated, String> {
        eval(expr, &HashMap::new(), &Context { env, facts })
    }

    #[test]
    fn decimals_are_made_whole_by_ceil_floor_round() {
        let facts = Facts { cpus: 3, cpus_known: true, ..Facts::default() };
        let none = |_: &str| None;
        assert_eq!(run("(Concurrent.processor_count * 0.666).ceil", &none, &facts).unwrap().value, RValue::Int(2));
        assert_eq!(run("(Concurrent.processor_count * 0.5).floor", &none, &facts).unwrap().value, RValue::Int(1));
        assert_eq!(run("(2.5).round", &none, &facts).unwrap().value, RValue::Int(3));
        assert_eq!(run("Integer(7 / 2.0)", &none, &facts).unwrap().value, RValue::Int(3));
        assert_eq!(run("(7 / 2.0).to_i", &none, &facts).unwrap().value, RValue::Int(3));
        assert_eq!(run("2.0 == 2", &none, &facts).unwrap().value, RValue::Bool(true));
        assert!(run("1.5 / 0", &none, &facts).is_err());
    }

    #[test]
    fn if_as_a_value_takes_the_branch_that_runs_and_only_its_facts() {
        let facts = Facts::default();
        let none = |_: &str| None;
        let block = r#"ENV.fetch("PUMA_WORKERS") { if ENV.fetch("RAILS_ENV") == "production" Etc.nprocessors else 2 end }"#;
        let e = run(block, &none, &facts).unwrap();
        assert_eq!(e.value, RValue::Int(2));
        assert!(e.assumed.iter().any(|a| a.contains("CPUs")), "{:?}", e.assumed);
        let staging = Facts { app_env: "staging".into(), ..Facts::default() };
        let e = run(block, &none, &staging).unwrap();
        assert_eq!(e.value, RValue::Int(2));
        assert!(!e.assumed.iter().any(|a| a.contains("CPUs")), "the branch that does not run adds no fact: {:?}", e.assumed);
        assert_eq!(run("if false then 1 elsif true then 2 else 3 end", &none, &facts).unwrap().value, RValue::Int(2));
        assert_eq!(run("unless true then 1 end", &none, &facts).unwrap().value, RValue::Nil);
        assert!(run("if true 1", &none, &facts).is_err());
    }

    #[test]
    fn strings_interpolate_what_can_be_evaluated() {
        let facts = Facts::default();
        let env = |k: &str| (k == "PORT").then(|| "3001".to_string());
        let e = run(r#""tcp://#{ENV.fetch('BIND', '127.0.0.1')}:#{ENV.fetch('PORT', 3000)}""#, &env, &facts).unwrap();
        assert_eq!(e.value, RValue::Str("tcp://127.0.0.1:3001".into()));
        assert_eq!((e.defaulted, e.from_env), (vec!["BIND".to_string()], vec!["PORT".to_string()]));
        assert!(run(r#""unix://#{socket_path}""#, &env, &facts).unwrap_err().contains("interpolation"));
        let nested = r##""#{(ENV["BIND_ALL"] ? "" : "127.0.0.1:")}#{(ENV["PORT"] || 3000).to_i}""##;
        assert_eq!(run(nested, &env, &facts).unwrap().value, RValue::Str("127.0.0.1:3001".into()));
        assert_eq!(run("(ENV['DB_PASS'] || '').to_json", &env, &facts).unwrap().value, RValue::Str("\"\"".into()));
    }

    #[test]
    fn sidekiq_server_is_true_in_a_sidekiq_process_only() {
        let none = |_: &str| None;
        let pool = "Sidekiq.server? ? ENV.fetch('SIDEKIQ_CONCURRENCY', 10) : ENV.fetch('RAILS_MAX_THREADS', 5)";
        let sidekiq = Facts { program: Some("sidekiq"), ..Facts::default() };
        let puma = Facts { program: Some("puma"), ..Facts::default() };
        assert_eq!(run(pool, &none, &sidekiq).unwrap().value, RValue::Int(10));
        assert_eq!(run(pool, &none, &puma).unwrap().value, RValue::Int(5));
        assert!(run(pool, &none, &Facts::default()).is_err());
        assert_eq!(run("Rails.env.production? ? 3 : 1", &none, &puma).unwrap().value, RValue::Int(3));
    }

    #[test]
    fn env_fetch_without_parentheses() {
        let facts = Facts::default();
        let env = |k: &str| (k == "DB_PORT").then(|| "6432".to_string());
        assert_eq!(run(r#"ENV.fetch "DB_HOST", "127.0.0.1""#, &env, &facts).unwrap().value, RValue::Str("127.0.0.1".into()));
        assert_eq!(run(r#"ENV.fetch "DB_PORT", 5432"#, &env, &facts).unwrap().value, RValue::Str("6432".into()));
    }
}
