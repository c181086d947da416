//! `headroom scale`: the smallest change to a spec after which `check` holds at a new
//! load. The search repairs one blocking finding at a time with the cheapest knob that
//! clears it (see `knobs` for the cost order), raising a setting or lowering one, each
//! knob moved by binary search to the least change that works; then it walks every
//! changed knob back toward what the user wrote for as long as the spec still fits, so
//! no knob of the proposal can move one unit back without a rule failing. A knob that
//! lowers what asks for a budget never goes below what the target load needs. The change is written into the user's own text
//! (`edit`), keeping comments and layout.

pub mod edit;
pub mod knobs;

use std::collections::HashSet;

use serde_json::Value;

use crate::diag::{Diagnostic, Severity};
use crate::load::{self, Loaded};
use crate::plan::{self, Detail, Plan};
use knobs::{Knob, Unit};

/// The new load to plan for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// `load.rps` becomes N.
    Rps(f64),
    /// `load.rps` (and `load.concurrent_users`, when given) times F.
    Factor(f64),
    /// `load.concurrent_users` becomes N; `load.rps` grows in the same proportion
    /// when the spec gives concurrent users today.
    Users(u64),
}

/// Warnings that are about capacity or a budget: `scale` clears them like errors.
/// Other warnings (timeouts, health checks, eviction policy, prepared statements) do
/// not depend on the load and are left to `check`.
pub const CAPACITY_WARNINGS: &[&str] = &[
    "db-pool-below-load",
    "deploy-overlap-exhausts-postgres",
    "pgbouncer-fd-limit",
    "latency-target-at-risk",
    "nginx-rlimit-nofile",
    "upstream-max-conns-over-slots",
    "backlog-over-somaxconn",
    "workers-over-cpus",
    "nginx-workers-over-cpus",
    "machine-cpu-oversubscribed",
    "postgres-memory",
    "rate-limit-zone-size",
    "qdrant-memory",
];

/// Rules a knob may not newly break: they bound the knobs (memory per connection,
/// processes per CPU) rather than ask for more of something.
const CONSTRAINTS: &[&str] = &["postgres-memory", "workers-over-cpus", "nginx-workers-over-cpus"];

/// Whether a finding keeps a spec from fitting its load.
pub fn blocks(d: &Diagnostic) -> bool {
    d.severity == Severity::Error || (d.severity == Severity::Warning && CAPACITY_WARNINGS.contains(&d.rule.as_str()))
}

/// What `scale` found.
#[derive(Debug)]
pub struct Proposal {
    /// The spec's text with the load and every changed knob edited in.
    pub text: String,
    /// The changes, in file order.
    pub changes: Vec<edit::Change>,
    /// Each changed setting: pointer, old value, new value.
    pub settings: Vec<(String, Option<Value>, Value)>,
}

/// Why nothing within the machines fits.
#[derive(Debug)]
pub struct Wall {
    /// The finding nothing clears, and why each knob could not.
    pub message: String,
    /// The smallest hardware change that would fit, when one was found.
    pub hardware: Option<String>,
    pub finding: Diagnostic,
}

/// The result of a search.
#[derive(Debug)]
pub enum Outcome {
    Fits(Proposal),
    Wall(Box<Wall>),
}

/// The spec value with the target load written in.
pub fn with_target(value: &Value, target: Target) -> Result<Value, String> {
    let mut value = value.clone();
    let load = value.get_mut("load").and_then(Value::as_object_mut).ok_or("the spec has no `load:`; scale needs today's load to grow it (add load.rps and load.service_time)")?;
    let rps = load.get("rps").and_then(Value::as_f64).ok_or("load.rps is missing")?;
    let users = load.get("concurrent_users").and_then(Value::as_u64);
    let number = |f: f64| {
        if f.fract() == 0.0 && (0.0..9.0e15).contains(&f) { Value::from(f as u64) } else { serde_json::Number::from_f64((f * 1000.0).round() / 1000.0).map_or(Value::Null, Value::Number) }
    };
    match target {
        Target::Rps(n) => {
            load.insert("rps".into(), number(n));
        }
        Target::Factor(f) => {
            load.insert("rps".into(), number(rps * f));
            if let Some(u) = users {
                load.insert("concurrent_users".into(), Value::from((u as f64 * f).ceil() as u64));
            }
        }
        Target::Users(n) => {
            if let Some(u) = users.filter(|&u| u > 0) {
                load.insert("rps".into(), number(rps * n as f64 / u as f64));
            }
            load.insert("concurrent_users".into(), Value::from(n));
        }
    }
    Ok(value)
}

/// A spec value resolved and checked; None when it is not a valid spec (a knob moved
/// past a program's limit).
pub fn evaluate(value: &Value) -> Option<(Plan, Vec<Diagnostic>)> {
    let mut value = value.clone();
    let spec = load::validate_value(&mut value, &|_, _| None).ok()?;
    let plan = plan::resolve(&spec);
    let diagnostics = crate::rules::check(&plan);
    Some((plan, diagnostics))
}

fn blocking(diagnostics: &[Diagnostic]) -> Vec<&Diagnostic> {
    diagnostics.iter().filter(|d| blocks(d)).collect()
}

/// Sets a knob's number in the spec value, creating the mappings on the way.
fn set(value: &mut Value, knob: &Knob, n: u64) {
    for clamp in &knob.clamps {
        if let Some((pool, overflow)) = clamp.at(n) {
            set_pointer(value, &clamp.pool, Value::from(pool));
            // Once the pool is written, an unwritten max_overflow reads as 0.
            if overflow > 0 || value.pointer(&clamp.overflow).is_some() {
                set_pointer(value, &clamp.overflow, Value::from(overflow));
            }
        }
    }
    for (pointer, from, divisor) in &knob.follows {
        set_pointer(value, pointer, Value::from(from.saturating_add(n.saturating_sub(knob.current) / (*divisor).max(1))));
    }
    if !knob.shares.is_empty() {
        for (pointer, share) in shares_of(knob, n) {
            set_pointer(value, &pointer, Value::from(share));
        }
        return;
    }
    let written = match knob.unit {
        Unit::Count => Value::from(n),
        Unit::Mebibytes => Value::String(format!("{n}m")),
    };
    set_pointer(value, &knob.pointer, written);
}

fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut node = value;
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        node = node.as_object_mut().expect("an object").entry(key).or_insert(Value::Null);
    }
    *node = new;
}

/// The identity a finding keeps while its numbers change: the rule, and the path for
/// rules that report one finding per place.
fn same_finding(a: &Diagnostic, b: &Diagnostic) -> bool {
    a.rule == b.rule && (knobs::accumulates(&a.rule) || a.path == b.path)
}

/// How far a constraint's finding oversteps its bound, in the finding's own numbers.
fn overstep(d: &Diagnostic) -> f64 {
    let n = |k: &str| d.numbers.get(k).copied().unwrap_or(0.0);
    match d.rule.as_str() {
        "postgres-memory" => n("need") - n("memory_limit"),
        "workers-over-cpus" => n("workers") - n("max_workers"),
        "nginx-workers-over-cpus" => n("worker_processes") - n("cpus"),
        _ => 0.0,
    }
}

fn count_of(diagnostics: &[Diagnostic], rule: &str) -> usize {
    diagnostics.iter().filter(|d| d.rule == rule && blocks(d)).count()
}

/// Rules about the load: a shedding knob may not fail them by more than they fail.
const LOAD_RULES: &[&str] = &["capacity-below-load", "db-pool-below-load", "latency-target-at-risk", "app-pool-below-concurrency"];

/// Rules a shedding knob may newly fail because their own fix lowers a setting in
/// turn (nginx `max_conns` past a replica's fewer slots), so the search cannot go
/// round between them.
const FOLLOW_DOWN: &[&str] = &["upstream-max-conns-over-slots"];

/// The finding a shedding knob's move breaks: one that blocks after it and did not
/// before, or a rule about the load that fails by more (its numbers moved). Budgets
/// are not counted: less demand never overfills one, and the one that shows up (a
/// deploy's overlap, reported once the steady demand fits) was there underneath.
fn newly_failing(after: &[Diagnostic], before: &[Diagnostic], finding: &Diagnostic) -> Option<Diagnostic> {
    after
        .iter()
        .filter(|d| blocks(d) && !same_finding(d, finding) && !knobs::BUDGETS.contains(&d.rule.as_str()) && !FOLLOW_DOWN.contains(&d.rule.as_str()))
        .find(|d| {
            let was = before.iter().find(|b| b.rule == d.rule && b.path == d.path && blocks(b));
            match was {
                None => true,
                Some(b) => LOAD_RULES.contains(&d.rule.as_str()) && b.numbers != d.numbers,
            }
        })
        .cloned()
}

/// The search state: the spec value as changed so far.
struct Search {
    value: Value,
    evaluations: usize,
}

/// What happened to a knob tried against a finding.
enum Tried {
    /// Moved to this value: the finding is gone.
    Cleared(u64),
    /// Moved as far as it helps: the finding shrank but remains.
    Partial(u64),
    /// Not usable: it breaks this constraint (or nothing changes).
    Rejected(Option<Box<Diagnostic>>),
}

impl Search {
    fn eval(&mut self, value: &Value) -> Option<(Plan, Vec<Diagnostic>)> {
        self.evaluations += 1;
        evaluate(value)
    }

    fn with(&self, knob: &Knob, n: u64) -> Value {
        let mut v = self.value.clone();
        set(&mut v, knob, n);
        v
    }

    /// With the knob at n: whether the finding is gone, the constraint it breaks, and
    /// the finding's numbers when it remains.
    fn probe(&mut self, knob: &Knob, n: u64, finding: &Diagnostic, before: &[Diagnostic]) -> Probe {
        let candidate = self.with(knob, n);
        let Some((_, after)) = self.eval(&candidate) else { return Probe { cleared: false, broken: None, numbers: None } };
        let remaining = after.iter().find(|d| same_finding(d, finding));
        let broken = if knob.sheds { newly_failing(&after, before, finding) } else { None };
        let broken = broken.or_else(|| CONSTRAINTS.iter().find_map(|rule| {
            if count_of(&after, rule) > count_of(before, rule) {
                return after.iter().find(|d| d.rule == *rule).cloned();
            }
            // A constraint that already fails may not fail by more either: a knob that
            // deepens it (more connections on a database already past its memory) is
            // no step toward a spec that fits, and a wall reached after it would cite
            // numbers the user never wrote.
            after.iter().filter(|d| d.rule == *rule && blocks(d)).find(|d| before.iter().any(|b| b.rule == d.rule && b.path == d.path && overstep(d) > overstep(b))).cloned()
        }));
        Probe { cleared: remaining.is_none(), broken, numbers: remaining.map(|d| d.numbers.values().map(|v| v.to_bits()).collect()) }
    }

    /// Binary search between `from` (fails the test) and `to` (passes it) for the value
    /// closest to `from` that passes.
    fn closest(&mut self, from: u64, to: u64, mut passes: impl FnMut(&mut Self, u64) -> bool) -> u64 {
        let (mut ok, mut bad) = (to, from);
        while ok.abs_diff(bad) > 1 {
            let mid = if ok > bad { bad + (ok - bad) / 2 } else { ok + (bad - ok) / 2 };
            if passes(self, mid) {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        ok
    }

    fn try_knob(&mut self, knob: &Knob, finding: &Diagnostic, before: &[Diagnostic]) -> Tried {
        let mut limit = knob.limit;
        let mut capped_by: Option<Box<Diagnostic>> = None;
        let mut at_limit = self.probe(knob, limit, finding, before);
        if let Some(broken) = at_limit.broken.take() {
            // A constraint (memory per connection, processes per CPU) bounds how far the
            // knob may go: it may still move up to that bound.
            let first = self.probe(knob, knob.current, finding, before);
            if first.broken.is_some() || knob.current == limit {
                return Tried::Rejected(Some(Box::new(broken)));
            }
            limit = self.closest(limit, knob.current, |s, v| s.probe(knob, v, finding, before).broken.is_none());
            // The constraint as it reads one step past the bound: the wall names it.
            let past = match knob.direction {
                knobs::Direction::Up => limit + 1,
                knobs::Direction::Down => limit - 1,
            };
            capped_by = Some(Box::new(self.probe(knob, past, finding, before).broken.unwrap_or(broken)));
            if limit == knob.current {
                return Tried::Rejected(capped_by);
            }
            at_limit = self.probe(knob, limit, finding, before);
        }
        if !at_limit.cleared {
            // Shedding adds up too: each pool, then the threads, workers and replicas,
            // lowered as far as the load allows, until the budget holds what is left.
            let sheds_budget = knob.sheds && knobs::BUDGETS.contains(&finding.rule.as_str());
            if !knobs::accumulates(&finding.rule) && !sheds_budget {
                return Tried::Rejected(capped_by);
            }
            // Moving it helps only up to a point (a pool past what its pooler lets
            // through changes nothing): take the least move that gets all it gives.
            let saturated = at_limit.numbers;
            if self.probe(knob, knob.current, finding, before).numbers == saturated {
                return Tried::Rejected(capped_by);
            }
            let n = self.closest(knob.current, limit, |s, v| s.probe(knob, v, finding, before).numbers == saturated);
            return Tried::Partial(n);
        }
        // The least move that clears it. A setting the user left out is a change when
        // written at its default too, so the default itself comes first.
        let n = if !self.written(knob) && self.probe(knob, knob.current, finding, before).cleared {
            knob.current
        } else {
            self.closest(knob.current, limit, |s, v| s.probe(knob, v, finding, before).cleared)
        };
        match self.probe(knob, n, finding, before).broken {
            Some(broken) => Tried::Rejected(Some(Box::new(broken))),
            None => Tried::Cleared(n),
        }
    }

    /// Whether every setting the knob writes is written in the spec as it stands.
    fn written(&self, knob: &Knob) -> bool {
        if knob.shares.is_empty() { self.value.pointer(&knob.pointer).is_some() } else { knob.shares.iter().all(|(p, _)| self.value.pointer(p).is_some()) }
    }
}

struct Probe {
    cleared: bool,
    broken: Option<Diagnostic>,
    numbers: Option<Vec<u64>>,
}

/// Searches for the least change to `loaded` that fits `target`.
pub fn search(loaded: &Loaded, target: Target) -> Result<Outcome, String> {
    let start = with_target(&loaded.value, target)?;
    let mut s = Search { value: start.clone(), evaluations: 0 };
    let mut touched: Vec<Knob> = Vec::new();
    let mut visited: HashSet<String> = HashSet::from([serde_json::to_string(&start).unwrap_or_default()]);
    for _round in 0..400 {
        let Some((plan, diagnostics)) = s.eval(&s.value.clone()) else {
            return Err("the spec with the new load is not valid".into());
        };
        let Some(finding) = blocking(&diagnostics).first().map(|d| (*d).clone()) else {
            let proposal = minimize(&mut s, loaded, &start, touched);
            return Ok(match hosts_to_list(loaded, &start, &proposal) {
                Some(wall) => Outcome::Wall(Box::new(wall)),
                None => Outcome::Fits(proposal),
            });
        };
        let mut progressed = false;
        let mut reasons: Vec<(Knob, Option<Box<Diagnostic>>)> = Vec::new();
        let candidates = knobs::for_finding(&finding, &plan);
        // A pool raised to its process's slots that overfills a budget (past what the
        // database or the pooler accepts, or further past it) is taken only when lowering the slots to the
        // pool does not clear the finding instead: `check` gives the same advice in
        // that order. (A budget raised for its own finding may show another budget
        // underneath, a deploy's overlap: that is no reason to prefer lowering.)
        let adds_demand = finding.rule == "app-pool-below-concurrency";
        let mut overfills: Option<(Knob, Value)> = None;
        for (i, knob) in candidates.iter().enumerate() {
            let tried = s.try_knob(knob, &finding, &diagnostics);
            let n = match tried {
                Tried::Cleared(n) | Tried::Partial(n) => n,
                Tried::Rejected(why) => {
                    reasons.push((knob.clone(), why));
                    continue;
                }
            };
            // A move back to a spec already tried (one rule raising what another just
            // lowered) would go round in circles: the next knob is tried instead.
            let next = s.with(knob, n);
            if !visited.insert(serde_json::to_string(&next).unwrap_or_default()) {
                reasons.push((knob.clone(), None));
                continue;
            }
            if adds_demand && !knob.sheds && overfills.is_none() && candidates[i + 1..].iter().any(|k| k.sheds) && overfills_budget(&mut s, &next, &diagnostics) {
                overfills = Some((knob.clone(), next));
                continue;
            }
            s.value = next;
            touched.push(knob.clone());
            progressed = true;
            break;
        }
        if !progressed && let Some((knob, next)) = overfills {
            s.value = next;
            touched.push(knob);
            progressed = true;
        }
        if !progressed {
            let mut steps = Vec::new();
            differences(&start, &s.value, String::new(), &mut steps);
            let shed = touched.iter().chain(&candidates).any(|k| k.sheds);
            return Ok(Outcome::Wall(Box::new(wall(&finding, &plan, &reasons, &steps, shed))));
        }
    }
    Err("the search did not settle after 400 changes".into())
}

/// Whether a spec value fails a budget that `before` did not fail, or asks more of
/// one that already failed.
fn overfills_budget(s: &mut Search, value: &Value, before: &[Diagnostic]) -> bool {
    let Some((_, after)) = s.eval(value) else { return false };
    after.iter().filter(|d| blocks(d) && knobs::BUDGETS.contains(&d.rule.as_str())).any(|d| match before.iter().find(|b| b.rule == d.rule && b.path == d.path && blocks(b)) {
        None => true,
        Some(b) => budget_demand(d) > budget_demand(b),
    })
}

/// Walks every changed knob back toward what the user wrote while the spec still fits.
fn minimize(s: &mut Search, loaded: &Loaded, start: &Value, touched: Vec<Knob>) -> Proposal {
    let mut seen = HashSet::new();
    // Settings that followed a knob are walked back on their own, as the knob is.
    let mut expanded = Vec::new();
    let start_plan = evaluate(start).map(|(plan, _)| plan);
    for mut knob in touched {
        for (pointer, _, _) in std::mem::take(&mut knob.follows) {
            let written = loaded.value.pointer(&pointer).and_then(Value::as_u64).unwrap_or(0);
            expanded.push(Knob { pointer, current: written, limit: knobs::MAX_CONNECTIONS, cost: knob.cost, ..Knob::default() });
        }
        // Pools a lowered concurrency carried down are walked back on their own too,
        // toward what was written (or the value they took unwritten).
        for clamp in std::mem::take(&mut knob.clamps) {
            for pointer in [clamp.pool, clamp.overflow] {
                let current = original_number(loaded, start_plan.as_ref(), &pointer);
                expanded.push(Knob { pointer, current, direction: knobs::Direction::Down, limit: 0, cost: knob.cost, ..Knob::default() });
            }
        }
        expanded.push(knob);
    }
    let knobs: Vec<Knob> = expanded.into_iter().filter(|k| seen.insert(k.pointer.clone())).collect();
    let fits = |s: &mut Search, v: &Value| s.eval(v).is_some_and(|(_, d)| blocking(&d).is_empty());
    for _pass in 0..8 {
        let mut moved = false;
        for knob in &knobs {
            let Some(now) = read(&s.value, knob) else { continue };
            if now == knob.current {
                // Back where it started: written the way the user had it (or not at
                // all), unless leaving it out is what fails (a default the rules do
                // not assume).
                let original = knob_pointers(knob).iter().fold(s.value.clone(), |v, p| restored(&v, &loaded.value, p));
                if original != s.value && fits(s, &original) {
                    s.value = original;
                }
                continue;
            }
            // The value closest to the original that still fits.
            let ok = s.closest(knob.current, now, |s, v| {
                let candidate = s.with(knob, v);
                fits(s, &candidate)
            });
            // The original itself may fit once other knobs moved.
            let original = knob_pointers(knob).iter().fold(s.value.clone(), |v, p| restored(&v, &loaded.value, p));
            // A setting the user left out may fit written at its default.
            let at_default = s.with(knob, knob.current);
            if fits(s, &original) {
                s.value = original;
                moved = true;
            } else if loaded.value.pointer(&knob.pointer).is_none() && ok != knob.current && fits(s, &at_default) {
                s.value = at_default;
                moved = true;
            } else if ok != now {
                s.value = s.with(knob, ok);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    proposal(loaded, start, &s.value)
}

/// A pool's or max_overflow's number in the spec as written, or as the plan of the
/// spec at the target load resolved it when not written.
fn original_number(loaded: &Loaded, plan: Option<&Plan>, pointer: &str) -> u64 {
    if let Some(n) = loaded.value.pointer(pointer).and_then(Value::as_u64) {
        return n;
    }
    let edges = plan.map_or(&[][..], |p| p.edges.as_slice());
    edges
        .iter()
        .find_map(|e| {
            if crate::load::path::to_pointer(e.pool.path()) == pointer {
                Some(e.pool.value)
            } else if crate::load::path::to_pointer(&format!("{}.max_overflow", e.path)) == pointer {
                Some(e.max_overflow)
            } else {
                None
            }
        })
        .unwrap_or(0)
}

/// Every setting a knob writes.
fn knob_pointers(knob: &Knob) -> Vec<String> {
    let mut pointers = if knob.shares.is_empty() { vec![knob.pointer.clone()] } else { knob.shares.iter().map(|(p, _)| p.clone()).collect() };
    pointers.extend(knob.follows.iter().map(|(p, _, _)| p.clone()));
    pointers
}

/// `value` with the setting at `pointer` as the user wrote it (or left out).
fn restored(value: &Value, original: &Value, pointer: &str) -> Value {
    let mut value = value.clone();
    match original.pointer(pointer) {
        Some(old) => set_pointer(&mut value, pointer, old.clone()),
        None => {
            let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
            let key = key.replace("~1", "/").replace("~0", "~");
            if let Some(map) = value.pointer_mut(parent).and_then(Value::as_object_mut) {
                map.remove(&key);
                // A mapping the search created for this key alone goes too.
                if map.is_empty() && original.pointer(parent).is_none() {
                    let (grand, last) = parent.rsplit_once('/').unwrap_or(("", parent));
                    let last = last.replace("~1", "/").replace("~0", "~");
                    if let Some(m) = value.pointer_mut(grand).and_then(Value::as_object_mut) {
                        m.remove(&last);
                    }
                }
            }
        }
    }
    value
}

/// A group knob's total split over its members in proportion to their weights
/// (largest remainders, each at least 1).
fn shares_of(knob: &Knob, n: u64) -> Vec<(String, u64)> {
    let weights: u64 = knob.shares.iter().map(|(_, w)| *w).sum::<u64>().max(1);
    let mut out: Vec<(String, u64)> = knob.shares.iter().map(|(p, w)| (p.clone(), (n as u128 * *w as u128 / weights as u128) as u64)).collect();
    let mut left = n.saturating_sub(out.iter().map(|(_, v)| v).sum());
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((n as u128 * knob.shares[i].1 as u128) % weights as u128));
    for i in order {
        if left == 0 {
            break;
        }
        out[i].1 += 1;
        left -= 1;
    }
    for o in &mut out {
        o.1 = o.1.max(1);
    }
    out
}

/// A knob's number in the spec value (None when not written).
fn read(value: &Value, knob: &Knob) -> Option<u64> {
    if !knob.shares.is_empty() {
        return knob.shares.iter().map(|(p, _)| value.pointer(p).and_then(Value::as_u64)).sum();
    }
    let v = value.pointer(&knob.pointer)?;
    match knob.unit {
        Unit::Count => v.as_u64(),
        Unit::Mebibytes => v.as_str().and_then(|t| crate::spec::units::ByteSize::parse(t).ok()).map(|b| b.bytes().div_ceil(1024 * 1024)),
    }
}

/// Every scalar that differs between two spec values: (pointer, old, new).
fn differences(old: &Value, new: &Value, pointer: String, out: &mut Vec<(String, Option<Value>, Value)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let child = format!("{pointer}/{}", crate::load::yaml::escape_segment(k));
                match a.get(k) {
                    Some(w) => differences(w, v, child, out),
                    None => leaves(v, child, out),
                }
            }
        }
        (a, b) if a != b && !(a.is_number() && b.is_number() && a.as_f64() == b.as_f64()) => out.push((pointer, Some(a.clone()), b.clone())),
        _ => {}
    }
}

fn leaves(value: &Value, pointer: String, out: &mut Vec<(String, Option<Value>, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, format!("{pointer}/{}", crate::load::yaml::escape_segment(k)), out);
            }
        }
        other => out.push((pointer, None, other.clone())),
    }
}

/// Whether a reloaded spec value holds exactly the proposal's settings.
pub fn same_spec(reloaded: &Value, proposal: &Proposal) -> bool {
    proposal.settings.iter().all(|(pointer, _, new)| {
        reloaded.pointer(pointer).is_some_and(|v| v == new || (v.is_number() && new.is_number() && v.as_f64() == new.as_f64()))
    })
}

fn proposal(loaded: &Loaded, _start: &Value, value: &Value) -> Proposal {
    let mut settings = Vec::new();
    differences(&loaded.value, value, String::new(), &mut settings);
    let changes: Vec<edit::Change> = settings.iter().map(|(p, _, v)| edit::Change { pointer: p.clone(), value: v.clone() }).collect();
    let text = edit::apply(&loaded.source.text, &loaded.spans, &changes).unwrap_or_else(|e| panic_free_fallback(&loaded.source.text, &e));
    Proposal { text, changes, settings }
}

/// An edit the text cannot take is reported by the caller comparing the reloaded text
/// with the proposal; the original text is returned so nothing half-edited is written.
fn panic_free_fallback(text: &str, _error: &edit::EditError) -> String {
    text.to_string()
}

/// A proposal that raises the count of a machine group listing its hosts' addresses
/// is not what would run: Kamal and the host installs deploy to the addresses, and
/// only the user can list more hosts. Under Kamal, which runs one container of a role
/// per host, the same holds for a role's replicas past its group's hosts. Such a
/// proposal becomes a wall naming how many hosts to add (and, outside Kamal, the
/// bigger hosts that would do instead), at the finding the listed hosts meet with
/// every other change of the proposal made.
fn hosts_to_list(loaded: &Loaded, start: &Value, proposal: &Proposal) -> Option<Wall> {
    let value = scale_value_of(loaded, proposal);
    let kamal = value.pointer("/deploy/kamal").is_some();
    let (plan, _) = evaluate(&value)?;
    let raised = |pointer: &str| proposal.settings.iter().find(|(p, _, _)| p == pointer).and_then(|(_, old, new)| Some((old.as_ref().and_then(Value::as_u64), new.as_u64()?)));
    // The proposal with the replicas and counts on the listed hosts held to what
    // those hosts run: the finding the wall names is the one they meet once the
    // proposal's other changes (fewer workers, more nofile) are made.
    let mut at_hosts = start.clone();
    for (pointer, _, new) in &proposal.settings {
        set_pointer(&mut at_hosts, pointer, new.clone());
    }
    // (group, hosts listed, hosts needed, the Kamal role that needs them)
    let mut short: Vec<(&crate::plan::MachinePlan, u64, u64, Option<String>)> = Vec::new();
    for machine in &plan.machines {
        let listed = machine.addresses.len() as u64;
        if listed == 0 {
            continue;
        }
        let count = crate::load::path::to_pointer(&format!("{}.count", machine.path));
        let mut needed = raised(&count).map_or(0, |(_, new)| new);
        if let Some(written) = start.pointer(&count) {
            set_pointer(&mut at_hosts, &count, written.clone());
        }
        let mut role = None;
        for service in plan.services.iter().filter(|s| s.machine.as_deref() == Some(machine.name.as_str())) {
            let replicas = crate::load::path::to_pointer(service.replicas.path());
            let Some((old, new)) = raised(&replicas) else { continue };
            if kamal && (service.kind.is_app() || service.kind.is_job()) && new > listed {
                if new >= needed {
                    (needed, role) = (new, Some(service.name.clone()));
                }
                set_pointer(&mut at_hosts, &replicas, Value::from(listed.max(old.unwrap_or(1))));
            } else {
                set_pointer(&mut at_hosts, &replicas, Value::from(new));
            }
        }
        if needed > listed {
            short.push((machine, listed, needed, role));
        }
    }
    let (machine, listed, needed, role) = short.first()?.clone();
    let (at_listed, diagnostics) = evaluate(&at_hosts)?;
    let role_replicas = role.as_ref().and_then(|r| plan.service(r)).map(|s| s.replicas.path().to_string());
    let finding = diagnostics
        .iter()
        .find(|d| blocks(d) && d.path.starts_with(&format!("{}.", machine.path)))
        .or_else(|| diagnostics.iter().find(|d| blocks(d) && Some(&d.path) == role_replicas.as_ref()))
        .or_else(|| diagnostics.iter().find(|d| blocks(d)))?
        .clone();
    let add = needed - listed;
    let number = |k: &str| finding.numbers.get(k).copied();
    let bigger = match (finding.rule.as_str(), &role) {
        ("machine-cpu-oversubscribed", None) => number("cpu_demand").map(|c| format!(", or give the {listed} hosts >= {} CPUs each ({}.cpus)", crate::rules::num(c.ceil()), machine.path)),
        ("machine-memory-oversubscribed", None) => number("memory_demand").map(|m| format!(", or give the {listed} hosts >= {} of memory each ({}.memory)", gib(m), machine.path)),
        _ => None,
    }
    .unwrap_or_default();
    let why = match &role {
        Some(role) => format!("Kamal runs one container of a role per host: `{role}` at {needed} replicas takes {needed} hosts"),
        None => format!("Kamal and the host installs deploy to those: {needed} hosts carry the new load"),
    };
    let hardware = format!(
        "machine group `{}` lists its hosts ({listed} in {}.addresses) and {why}, so add {add} {} to {}.addresses and set count: {needed}{bigger}",
        machine.name,
        machine.path,
        if add == 1 { "host's address" } else { "hosts' addresses" },
        machine.path,
    );
    let mut steps = Vec::new();
    differences(start, &at_hosts, String::new(), &mut steps);
    let mut wall = wall(&finding, &at_listed, &[], &steps, false);
    wall.message = wall.message.replace(
        "; no setting scale may change clears this",
        &format!("; scale adds no host to a group that lists its hosts' addresses ({}.addresses)", machine.path),
    );
    wall.hardware = Some(hardware);
    Some(wall)
}

/// The spec value a proposal's text holds.
fn scale_value_of(loaded: &Loaded, proposal: &Proposal) -> Value {
    let mut value = loaded.value.clone();
    for (pointer, _, new) in &proposal.settings {
        set_pointer(&mut value, pointer, new.clone());
    }
    value
}

/// `shed`: lowering what asks for the finding's budget was tried.
fn wall(finding: &Diagnostic, plan: &Plan, reasons: &[(Knob, Option<Box<Diagnostic>>)], steps: &[(String, Option<Value>, Value)], shed: bool) -> Wall {
    // A wall met after some changes cites the numbers of the spec as changed: say which.
    let changed: Vec<String> = steps
        .iter()
        .filter(|(p, _, _)| !p.starts_with("/load/"))
        .map(|(p, old, new)| format!("{} {} -> {new}", crate::load::path::from_pointer(p, &Value::Null), old.as_ref().map_or("(not set)".to_string(), Value::to_string)))
        .collect();
    let once = if changed.is_empty() { String::new() } else { format!(" once {}", changed.join(", ")) };
    let mut message = format!("{} at {}{once}: {}", finding.rule, finding.path, finding.message);
    // A count raised on the way for a group that lists its hosts (or, under Kamal, a
    // role's replicas past them) needs those hosts too.
    let kamal = plan.kamal_tls.is_some();
    // (group path, setting, its new value, hosts listed): the largest per group.
    let mut short: Vec<(&str, String, u64, u64)> = Vec::new();
    for (pointer, _, new) in steps {
        let new = new.as_u64().unwrap_or(0);
        let (setting, machine) = match pointer.strip_prefix("/machines/").and_then(|r| r.rsplit_once('/')) {
            Some((group, "count")) => (format!("machines.{group}.count"), plan.machine(&group.replace("~1", "/").replace("~0", "~"))),
            _ => match plan.services.iter().find(|s| kamal && (s.kind.is_app() || s.kind.is_job()) && crate::load::path::to_pointer(s.replicas.path()) == *pointer) {
                Some(role) => (role.replicas.path().to_string(), role.machine.as_deref().and_then(|m| plan.machine(m))),
                None => continue,
            },
        };
        let Some(machine) = machine else { continue };
        let listed = machine.addresses.len() as u64;
        if listed == 0 || new <= listed {
            continue;
        }
        match short.iter_mut().find(|(path, ..)| *path == machine.path) {
            Some(entry) if entry.2 < new => *entry = (&machine.path, setting, new, listed),
            Some(_) => {}
            None => short.push((&machine.path, setting, new, listed)),
        }
    }
    for (path, setting, new, listed) in short {
        message.push_str(&format!("; {setting} {new} above also takes {} more hosts listed in {path}.addresses", new - listed));
    }
    let mut hardware = None;
    // Lowerings stopped by the load, named once each: (setting, the rule it would fail).
    let mut held: Vec<String> = Vec::new();
    for (knob, why) in reasons {
        let Some(why) = why else { continue };
        let setting = crate::load::path::from_pointer(&knob.pointer, &Value::Null);
        if why.rule == "postgres-memory" {
            hardware = Some(postgres_wall(why, finding, plan));
        } else if knob.direction == knobs::Direction::Down && knob.sheds {
            held.push(format!("{setting} below {} fails {}", knob.current, why.rule));
        } else {
            let verb = if knob.direction == knobs::Direction::Down { "lowering" } else { "raising" };
            message.push_str(&format!("; {verb} {setting} breaks {} ({})", why.rule, why.message));
        }
    }
    if let Some(asks) = budget_demand(finding).filter(|_| shed) {
        // What lowering was tried, and what the load leaves the clients asking.
        message.push_str(&format!(
            "; lowering what asks for it as far as the target load allows (each pool to one connection per concurrent slot, then threads, workers and replicas to what the load needs) still asks for {} connections",
            crate::rules::num(asks)
        ));
        if !held.is_empty() {
            message.push_str(&format!(" ({})", held.join(", ")));
        }
        // Every request in flight may hold a connection: what the load itself asks.
        if let Some(load) = plan.load.as_ref().filter(|_| held.iter().any(|h| h.ends_with("capacity-below-load"))) {
            let slots = load.rps.value * load.service_time.value / load.max_utilization.value;
            message.push_str(&format!(
                ": the target load keeps {} requests in flight at max_utilization {} (load.rps {} x service_time {}s / {}), each of which may hold a connection",
                crate::rules::num(slots.ceil()),
                crate::rules::num(load.max_utilization.value),
                crate::rules::num(load.rps.value),
                crate::rules::num(load.service_time.value),
                crate::rules::num(load.max_utilization.value),
            ));
        }
    } else if !held.is_empty() {
        message.push_str(&format!("; lowering {}", held.join(", ")));
    }
    if reasons.is_empty() {
        message.push_str("; no setting scale may change clears this");
    }
    if hardware.is_none() && finding.rule == "postgres-memory" {
        hardware = Some(postgres_wall(finding, finding, plan));
    }
    if hardware.is_none() && DATABASE_BUDGETS.contains(&finding.rule.as_str()) {
        hardware = unknown_memory_wall(plan, finding);
    }
    Wall { message, hardware, finding: finding.clone() }
}

/// For a finding about a budget: what the clients ask of it, in words with the number.
fn budget_demand(finding: &Diagnostic) -> Option<f64> {
    if !knobs::BUDGETS.contains(&finding.rule.as_str()) {
        return None;
    }
    let n = |k: &str| finding.numbers.get(k).copied();
    match finding.rule.as_str() {
        "deploy-overlap-exhausts-postgres" => n("overlap_demand"),
        "pgbouncer-client-limit" => n("client_connections"),
        "pgbouncer-server-pool" => n("server_connections"),
        _ => n("demand"),
    }
}

/// Findings about what reaches a PostgreSQL.
const DATABASE_BUDGETS: &[&str] = &["postgres-connections-exhausted", "pgbouncer-server-pool", "deploy-overlap-exhausts-postgres", "db-pool-below-load", "app-pool-below-concurrency"];

/// A PostgreSQL whose memory rule cannot bound its connections (memory unknown, or
/// work_mem derived from them) holds at most `knobs::unbounded_connections_cap` as far
/// as `scale` goes: the way past it is to give the rule what it needs or to pool in
/// front. An external one's max_connections is its provider's setting. Of several,
/// the one the finding names comes first.
fn unknown_memory_wall(plan: &Plan, finding: &Diagnostic) -> Option<String> {
    let named = |s: &&crate::plan::ServicePlan| finding.path.starts_with(&format!("{}.", s.path)) || finding.message.contains(&format!("`{}`", s.name));
    let postgres = plan.of_kind(crate::plan::Kind::Postgres);
    let (first, rest): (Vec<_>, Vec<_>) = postgres.partition(named);
    first.into_iter().chain(rest).find_map(|s| match &s.detail {
        Detail::Postgres(pg) => {
            let cap = knobs::unbounded_connections_cap(plan, s, pg)?;
            let pooler = pooler_advice(plan, &s.name).map_or(String::new(), |a| format!(", or {a}"));
            Some(match &pg.tuning {
                _ if s.external => format!(
                    "PostgreSQL `{}` is external: its max_connections is its provider's setting (a parameter group or plan), and with its {} scale raises it to at most {cap} (PGTune's figure for its workload); raise it at the provider and write it in {}.max_connections{pooler}",
                    s.name,
                    if pg.tuning.is_none() { "memory unknown" } else { "work_mem not written" },
                    s.path
                ),
                None => format!(
                    "PostgreSQL `{}` has no memory given, so scale raises its max_connections to at most {cap} (PGTune's figure for its workload); give {}.resources.memory so the memory rule can size more{pooler}",
                    s.name, s.path
                ),
                Some(t) => format!(
                    "PostgreSQL `{}` derives work_mem from max_connections ({}.work_mem not written: {} at max_connections {}), so more connections would each get less sort memory: scale raises max_connections to at most {cap} (PGTune's figure for its workload, keeping work_mem at least PostgreSQL's default 4MB); write {}.work_mem so the memory rule can size more{pooler}",
                    s.name,
                    s.path,
                    gib(t.work_mem.value as f64),
                    pg.max_connections.value,
                    s.path
                ),
            })
        }
        _ => None,
    })
}

/// How a pooler would let this postgres serve more clients with fewer connections:
/// None when a PgBouncer in transaction (or statement) mode already pools for it.
fn pooler_advice(plan: &Plan, postgres: &str) -> Option<String> {
    let poolers: Vec<_> = plan.poolers_of(postgres).collect();
    if poolers.iter().any(|(_, p)| !matches!(p.pool_mode.value, crate::spec::PoolMode::Session)) {
        return None;
    }
    Some(match poolers.first() {
        // Session mode holds a server connection per client: no fewer connections.
        Some((pooler, _)) => format!("run PgBouncer `{}` in transaction mode (pool_mode: transaction)", pooler.name),
        None => "put PgBouncer in transaction mode in front of it".to_string(),
    })
}

fn gib(bytes: f64) -> String {
    let g = bytes / (1024.0 * 1024.0 * 1024.0);
    if g >= 1.0 { format!("{} GiB", crate::rules::num(g)) } else { format!("{} MiB", crate::rules::num(bytes / 1_048_576.0)) }
}

/// "PostgreSQL on 8 GiB cannot hold 600 connections with work_mem 16MB; ..." for the
/// connections the blocking finding asks for (`memory` is the memory rule as it reads
/// one step past what fits).
fn postgres_wall(memory: &Diagnostic, finding: &Diagnostic, plan: &Plan) -> String {
    let n = |d: &Diagnostic, k: &str| d.numbers.get(k).copied().unwrap_or(0.0);
    let service = memory.message.split('`').nth(1).unwrap_or("postgres");
    let (limit, work_mem, shared) = (n(memory, "memory_limit"), n(memory, "work_mem"), n(memory, "shared_buffers"));
    // The connections that would clear the finding: its own count where it gives one,
    // else what the memory rule was asked to hold.
    let past = n(memory, "max_connections");
    let wanted = match finding.rule.as_str() {
        "postgres-connections-exhausted" | "deploy-overlap-exhausts-postgres" if finding.numbers.contains_key("demand") => {
            n(finding, "demand") + (n(finding, "max_connections") - n(finding, "usable")).max(0.0)
        }
        "db-pool-below-load" => past + (n(finding, "needed").ceil() - n(finding, "reachable")).max(0.0),
        // Too much memory at today's max_connections: what every client needs is the
        // least it can go down to.
        "postgres-memory" => match plan.service(service).map(|s| &s.detail) {
            Some(Detail::Postgres(pg)) => (pg.demand + pg.superuser_reserved_connections.value + pg.reserved_connections.value) as f64,
            _ => past,
        },
        _ => past,
    }
    .max(if finding.rule == "postgres-memory" { 1.0 } else { past });
    let need = shared + wanted * work_mem * 2.0;
    // The smallest power-of-two memory that holds shared_buffers + connections x
    // work_mem x 2 (machines come in such sizes).
    let mut suggest = 1024.0 * 1024.0 * 1024.0;
    while suggest < need {
        suggest *= 2.0;
    }
    let smaller_work_mem = ((limit - shared) / (wanted * 2.0) / 1_048_576.0).floor();
    let pooler = pooler_advice(plan, service).map_or(String::new(), |a| format!("{a}, or "));
    let work_mem_hint = if smaller_work_mem >= 1.0 { format!(", or lower work_mem to {}", gib(smaller_work_mem * 1_048_576.0)) } else { String::new() };
    format!(
        "PostgreSQL `{service}` on {} cannot hold {} connections with work_mem {} (shared_buffers {} + {} x {} x 2 = {}); {pooler}give it {} of memory{work_mem_hint}",
        gib(limit),
        crate::rules::num(wanted),
        gib(work_mem),
        gib(shared),
        crate::rules::num(wanted),
        gib(work_mem),
        gib(need),
        gib(suggest),
    )
}
