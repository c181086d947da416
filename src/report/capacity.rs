//! The capacity table of `headroom plan`: per service, per connection edge and per
//! budget, with utilization at the planned load, the headroom and the bottleneck; and
//! the number-by-number comparison of two plans (`plan --compare`).

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};
use crate::rules::{num, size};

/// One row per service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceRow {
    pub kind: &'static str,
    /// The replicas every budget counts (the autoscaler's max when it has one).
    pub replicas: u64,
    /// The autoscaler's min, when the service autoscales.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u64>,
    /// Pods a Kubernetes rolling update adds at `replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_surge: Option<u64>,
    pub processes: u64,
    pub slots_per_process: u64,
    pub slots: u64,
    /// Requests per second the slots complete (app servers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_rps: Option<f64>,
    /// Share of this service's slots busy at load (app servers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
}

impl ServiceRow {
    /// replicas (`min..max +surge`), processes, slots per process, slots, capacity rps
    /// and utilization, as a table shows them.
    pub fn cells(&self) -> Vec<String> {
        vec![
            match (self.min_replicas, self.rollout_surge) {
                (Some(min), Some(surge)) if surge > 0 => format!("{min}..{} +{surge}", self.replicas),
                (Some(min), _) => format!("{min}..{}", self.replicas),
                (None, Some(surge)) if surge > 0 => format!("{} +{surge}", self.replicas),
                _ => self.replicas.to_string(),
            },
            self.processes.to_string(),
            if self.slots == 0 { "-".into() } else { self.slots_per_process.to_string() },
            if self.slots == 0 { "-".into() } else { self.slots.to_string() },
            self.capacity_rps.map_or("-".into(), num),
            self.utilization.map_or("-".into(), |u| format!("{}%", num(u * 100.0))),
        ]
    }
}

/// One row per connection edge.
#[derive(Clone, Debug, Serialize)]
pub struct EdgeRow {
    pub from: String,
    pub to: String,
    pub per_process: u64,
    pub connections: u64,
}

/// A connection budget of a target: what its clients may demand vs what it allows.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetRow {
    pub service: String,
    /// What is limited (`max_client_conn`, `usable connections`, `maxclients`, ...).
    pub limit_name: String,
    pub demand: u64,
    pub allowed: u64,
    /// allowed / demand (>= 1 fits).
    pub headroom: f64,
    /// Demand during a Kubernetes rolling update (surge pods added), when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_demand: Option<u64>,
}

/// A vector store (qdrant): its nodes and the RAM its collections take on each.
#[derive(Clone, Debug, Serialize)]
pub struct VectorStoreRow {
    pub nodes: u64,
    /// In-RAM bytes of every collection on the busiest node.
    pub memory_per_node: u64,
    /// A node's memory limit (bytes), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    /// Fewest nodes holding every collection at that limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes_needed: Option<u64>,
    /// Connections its clients may open, summed.
    pub client_connections: u64,
    pub collections: IndexMap<String, CollectionRow>,
}

/// One collection's spread and memory.
#[derive(Clone, Debug, Serialize)]
pub struct CollectionRow {
    pub vectors: u64,
    pub dimensions: u64,
    pub shard_number: u64,
    pub replication_factor: u64,
    /// Shard replicas on the busiest node.
    pub shards_per_node: u64,
    pub points_per_node: u64,
    /// RAM per stored point (bytes).
    pub bytes_per_point: f64,
    pub memory_per_node: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes_needed: Option<u64>,
}

/// The whole table.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadRow>,
    pub services: IndexMap<String, ServiceRow>,
    pub edges: IndexMap<String, EdgeRow>,
    pub budgets: IndexMap<String, BudgetRow>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub vector_stores: IndexMap<String, VectorStoreRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::plan::Capacity>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoadRow {
    pub rps: f64,
    pub service_time_ms: f64,
    pub db_time_ms: f64,
    pub max_utilization: f64,
}

impl CapacityReport {
    pub fn of(plan: &Plan) -> Self {
        let load = plan.load.as_ref().map(|l| LoadRow {
            rps: l.rps.value,
            service_time_ms: l.service_time.value * 1000.0,
            db_time_ms: l.db_time.value * 1000.0,
            max_utilization: l.max_utilization.value,
        });
        let app_slots: u64 = plan.apps().map(|s| s.slots).sum();
        let services = plan
            .services
            .iter()
            .map(|s| {
                let (capacity_rps, utilization) = match (&plan.load, s.kind.is_app()) {
                    (Some(l), true) => {
                        let cap = s.slots as f64 / l.service_time.value.max(1e-9);
                        // Load spreads over app servers in proportion to their slots.
                        let share = if app_slots == 0 { 0.0 } else { s.slots as f64 / app_slots as f64 };
                        let util = if s.slots == 0 { f64::INFINITY } else { l.rps.value * share * l.service_time.value / s.slots as f64 };
                        (Some(round(cap)), Some(round4(util)))
                    }
                    _ => (None, None),
                };
                let counted = s.kind.is_app() || s.kind.is_job() || matches!(s.detail, Detail::Nginx(_));
                (
                    s.name.clone(),
                    ServiceRow {
                        kind: s.kind.as_str(),
                        replicas: s.replicas.value,
                        min_replicas: s.autoscale.as_ref().map(|a| a.min.value),
                        rollout_surge: s.rollout_surge.as_ref().map(|r| r.value),
                        processes: s.processes.value,
                        slots_per_process: if counted { s.slots_per_process.value } else { 0 },
                        slots: if counted { s.slots } else { 0 },
                        capacity_rps,
                        utilization,
                    },
                )
            })
            .collect();
        let edges = plan
            .edges
            .iter()
            .map(|e| {
                (
                    format!("{} -> {}", e.from, e.to),
                    EdgeRow { from: e.from.clone(), to: e.to.clone(), per_process: e.per_process.value, connections: e.connections },
                )
            })
            .collect();
        let mut budgets = IndexMap::new();
        for s in &plan.services {
            let (limit_name, demand, allowed) = match &s.detail {
                Detail::Postgres(p) => ("usable connections".to_string(), p.demand, p.usable_connections),
                Detail::Pgbouncer(p) => ("max_client_conn".to_string(), p.client_demand, p.max_client_conn.value.saturating_mul(s.replicas.value)),
                Detail::Redis(r) => ("maxclients".to_string(), r.demand, r.effective_maxclients.value),
                Detail::Nginx(n) => {
                    let Some(clients) = &n.expected_clients else { continue };
                    (
                        "worker_processes x worker_connections".to_string(),
                        (2.0 * clients.value).ceil() as u64,
                        n.worker_processes.value.saturating_mul(n.worker_connections.value).saturating_mul(s.replicas.value),
                    )
                }
                _ => continue,
            };
            let headroom = if demand == 0 { f64::INFINITY } else { allowed as f64 / demand as f64 };
            let extra = plan.rollout_extra(&s.name);
            let rollout_demand = (extra > 0).then(|| demand.saturating_add(extra));
            budgets.insert(s.name.clone(), BudgetRow { service: s.name.clone(), limit_name, demand, allowed, headroom: round4(headroom), rollout_demand });
        }
        let vector_stores = plan
            .services
            .iter()
            .filter_map(|s| match &s.detail {
                Detail::Qdrant(q) => Some((
                    s.name.clone(),
                    VectorStoreRow {
                        nodes: q.nodes,
                        memory_per_node: q.memory_per_node,
                        memory_limit: q.memory_limit.as_ref().map(|m| m.value),
                        nodes_needed: q.nodes_needed,
                        client_connections: q.demand,
                        collections: q
                            .collections
                            .iter()
                            .map(|c| {
                                (
                                    c.name.clone(),
                                    CollectionRow {
                                        vectors: c.vectors,
                                        dimensions: c.dimensions,
                                        shard_number: c.shard_number.value,
                                        replication_factor: c.replication_factor.value,
                                        shards_per_node: c.shards_per_node,
                                        points_per_node: c.points_per_node,
                                        bytes_per_point: round(c.bytes_per_point),
                                        memory_per_node: c.memory_per_node,
                                        nodes_needed: c.nodes_needed,
                                    },
                                )
                            })
                            .collect(),
                    },
                )),
                _ => None,
            })
            .collect();
        CapacityReport { name: plan.name.clone(), load, services, edges, budgets, vector_stores, capacity: plan.capacity.clone() }
    }

    pub fn to_json(&self) -> String {
        // serde_json writes an unbounded (infinite) ratio as null.
        let mut text = serde_json::to_string_pretty(self).expect("serializes");
        text.push('\n');
        text
    }

    /// The table for a terminal.
    pub fn to_text(&self, findings: &[Diagnostic]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "capacity plan for `{}`", self.name);
        if let Some(l) = &self.load {
            let _ = writeln!(
                out,
                "load: {} rps, service_time {}ms, db_time {}ms, plan slots at most {}% busy",
                num(l.rps),
                num(l.service_time_ms),
                num(l.db_time_ms),
                num(l.max_utilization * 100.0)
            );
        } else {
            let _ = writeln!(out, "load: not given (add `load:` to get throughput, utilization and the bottleneck)");
        }
        out.push('\n');
        let mut rows = vec![vec![
            "service".to_string(),
            "kind".into(),
            "replicas".into(),
            "procs".into(),
            "slots/proc".into(),
            "slots".into(),
            "capacity rps".into(),
            "util @ load".into(),
        ]];
        for (name, s) in &self.services {
            let mut row = vec![name.clone(), s.kind.to_string()];
            row.extend(s.cells());
            rows.push(row);
        }
        table(&mut out, &rows);
        if !self.edges.is_empty() {
            out.push_str("\nconnections (per process -> total)\n");
            let mut rows = vec![vec!["edge".to_string(), "per process".into(), "connections".into()]];
            for (name, e) in &self.edges {
                rows.push(vec![name.clone(), e.per_process.to_string(), e.connections.to_string()]);
            }
            table(&mut out, &rows);
        }
        if !self.budgets.is_empty() {
            out.push_str("\nbudgets (demanded vs allowed)\n");
            let rollout = self.budgets.values().any(|b| b.rollout_demand.is_some());
            let mut header = vec!["where".to_string(), "limit".into(), "demand".into()];
            if rollout {
                header.push("in rollout".into());
            }
            header.extend(["allowed".into(), "headroom".into()]);
            let mut rows = vec![header];
            for (name, b) in &self.budgets {
                let peak = b.rollout_demand.unwrap_or(b.demand);
                let mark = if b.demand > b.allowed {
                    "  <- over"
                } else if peak > b.allowed {
                    "  <- over in rollout"
                } else {
                    ""
                };
                let mut row = vec![name.clone(), b.limit_name.clone(), b.demand.to_string()];
                if rollout {
                    row.push(b.rollout_demand.map_or("-".into(), |d| d.to_string()));
                }
                row.extend([b.allowed.to_string(), format!("{}x{mark}", num(b.headroom))]);
                rows.push(row);
            }
            table(&mut out, &rows);
        }
        for (name, v) in &self.vector_stores {
            let limit = v.memory_limit.map_or("unknown".to_string(), size);
            let _ = writeln!(
                out,
                "\nvector memory per node: qdrant `{name}`, {} ({} client connections), limit {limit}",
                crate::rules::plural(v.nodes, "node"),
                v.client_connections
            );
            let mut rows = vec![vec![
                "collection".to_string(),
                "vectors x dims".into(),
                "shards x replicas".into(),
                "shards/node".into(),
                "points/node".into(),
                "per point".into(),
                "memory/node".into(),
                "nodes needed".into(),
            ]];
            let needed = |n: Option<u64>| match (n, v.memory_limit) {
                (Some(n), _) => n.to_string(),
                (None, Some(_)) => "none fits".into(),
                (None, None) => "-".into(),
            };
            for (cname, c) in &v.collections {
                rows.push(vec![
                    cname.clone(),
                    format!("{} x {}", c.vectors, c.dimensions),
                    format!("{} x {}", c.shard_number, c.replication_factor),
                    c.shards_per_node.to_string(),
                    c.points_per_node.to_string(),
                    format!("{} B", num(c.bytes_per_point)),
                    size(c.memory_per_node),
                    needed(c.nodes_needed),
                ]);
            }
            if v.collections.len() > 1 {
                rows.push(vec!["(all)".into(), String::new(), String::new(), String::new(), String::new(), String::new(), size(v.memory_per_node), needed(v.nodes_needed)]);
            }
            table(&mut out, &rows);
            if let Some(limit) = v.memory_limit
                && v.memory_per_node > limit
            {
                let _ = writeln!(out, "  <- over: {} of vectors per node > {} (see qdrant-memory)", size(v.memory_per_node), size(limit));
            }
        }
        if let Some(c) = &self.capacity {
            out.push('\n');
            let _ = writeln!(
                out,
                "throughput: {} app slots -> {} rps at 100%, {} rps planned; utilization at load {}%, headroom {}x",
                c.app_slots,
                num(c.capacity_rps),
                num(c.planned_rps),
                num(c.utilization * 100.0),
                num(c.headroom)
            );
            if c.db_connections > 0 {
                let _ = writeln!(out, "database: {} connections reachable at once -> {} rps at db_time", c.db_connections, num(c.db_capacity_rps));
            }
            if let Some(b) = &c.bottleneck {
                let _ = writeln!(out, "bottleneck: {} at {} rps ({})", b.layer, num(b.capacity_rps), b.why);
            }
        }
        let counts = crate::diag::Counts::of(findings);
        let _ = writeln!(
            out,
            "\nchecks: {}, {} (run `headroom check` for details)",
            crate::rules::plural(counts.errors as u64, "error"),
            crate::rules::plural(counts.warnings as u64, "warning")
        );
        out
    }
}

/// A change with its sign: `+80`, `-0.21`.
fn signed(v: f64) -> String {
    if v > 0.0 { format!("+{}", num(v)) } else { num(v) }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
fn round4(v: f64) -> f64 {
    if v.is_finite() { (v * 10000.0).round() / 10000.0 } else { v }
}

/// Rows as aligned columns, two spaces in from the left (shared with `observe`).
pub(crate) fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |x| x.chars().count())).max().unwrap_or(0)).collect();
    for row in rows {
        let mut line = String::from("  ");
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Flattens a report to `dotted.path -> number` for comparison.
fn numbers(report: &CapacityReport) -> IndexMap<String, f64> {
    fn walk(prefix: String, value: &Value, out: &mut IndexMap<String, f64>) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(key, v, out);
                }
            }
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix, f);
                }
            }
            _ => {}
        }
    }
    let mut out = IndexMap::new();
    walk(String::new(), &serde_json::to_value(report).unwrap_or(Value::Null), &mut out);
    out
}

/// What changes between two plans: every number that differs, and rules that start
/// or stop firing.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub changed: Vec<Change>,
    pub now_failing: Vec<RuleChange>,
    pub now_passing: Vec<RuleChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub key: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleChange {
    pub rule: String,
    pub severity: String,
    pub path: String,
    pub message: String,
}

impl Change {
    /// The change as `+80 (+100%)`, `added` or `removed`.
    pub fn delta(&self) -> String {
        match (self.old, self.new) {
            (Some(o), Some(n)) if o != 0.0 && o.is_finite() && n.is_finite() => format!("{} ({}%)", signed(n - o), signed((n - o) / o * 100.0)),
            (Some(o), Some(n)) if o.is_finite() && n.is_finite() => signed(n - o),
            (None, Some(_)) => "added".into(),
            (Some(_), None) => "removed".into(),
            _ => String::new(),
        }
    }
}

impl Comparison {
    pub fn of(old: &CapacityReport, old_findings: &[Diagnostic], new: &CapacityReport, new_findings: &[Diagnostic]) -> Self {
        let a = numbers(old);
        let b = numbers(new);
        let mut changed = Vec::new();
        for (k, v) in &a {
            match b.get(k) {
                Some(w) if (w - v).abs() < 1e-9 => {}
                other => changed.push(Change { key: k.clone(), old: Some(*v), new: other.copied() }),
            }
        }
        for (k, w) in &b {
            if !a.contains_key(k) {
                changed.push(Change { key: k.clone(), old: None, new: Some(*w) });
            }
        }
        let key = |d: &Diagnostic| (d.rule.clone(), d.path.clone());
        let old_keys: Vec<_> = old_findings.iter().map(key).collect();
        let new_keys: Vec<_> = new_findings.iter().map(key).collect();
        let change = |d: &Diagnostic| RuleChange { rule: d.rule.clone(), severity: d.severity.as_str().into(), path: d.path.clone(), message: d.message.clone() };
        Comparison {
            changed,
            now_failing: new_findings.iter().filter(|d| !old_keys.contains(&key(d))).map(change).collect(),
            now_passing: old_findings.iter().filter(|d| !new_keys.contains(&key(d))).map(change).collect(),
        }
    }

    pub fn to_text(&self, old_name: &str, new_name: &str) -> String {
        let mut out = format!("comparing {old_name} -> {new_name}\n\n");
        if self.changed.is_empty() {
            out.push_str("no number changes\n");
        } else {
            let mut rows = vec![vec!["number".to_string(), "old".into(), "new".into(), "change".into()]];
            for c in &self.changed {
                rows.push(vec![c.key.clone(), c.old.map_or("-".into(), num), c.new.map_or("-".into(), num), c.delta()]);
            }
            table(&mut out, &rows);
        }
        for (title, list) in [("now failing", &self.now_failing), ("now passing", &self.now_passing)] {
            if !list.is_empty() {
                let _ = writeln!(out, "\n{title}:");
                for r in list {
                    let _ = writeln!(out, "  {} {} at {}", r.severity, r.rule, r.path);
                }
            }
        }
        if self.now_failing.is_empty() && self.now_passing.is_empty() {
            out.push_str("\nno rule changes state\n");
        }
        out
    }
}
