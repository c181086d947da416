//! Resque: `resque-pool` and `rake resque:work` as a `worker` service whose processes
//! each run one job at a time, and config/resque-pool.yml (worker processes per queue
//! list; the section of the app's environment merged over the top-level entries, as
//! resque-pool does).

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::Word;
use crate::import::shared::erb::strip_erb;
use crate::import::shared::ruby::Context;
use crate::import::shared::yaml::kv_span;
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{self, escape_segment};
use crate::source::SourceFile;

/// A resque process serves one job at a time (it forks a child per job).
pub(super) fn flags(cx: &mut Cx<'_>, _words: &[Word], head: Range<usize>) {
    if cx.builder.get(&cx.path("concurrency")).is_none() {
        cx.set("concurrency", json!(1), head);
    }
}

/// Reads resque-pool.yml into the service that runs resque-pool.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file).cloned() else { return };
    let text = source.text.clone();
    // The service whose command runs resque-pool, else the only worker service.
    let runs_resque = builder.programs.iter().filter(|(_, p)| **p == "resque").map(|(s, _)| s.clone()).min();
    let fallback = runs_resque.unwrap_or_else(|| builder.default_service(&["worker"], "resque"));
    let service = builder.owner_of(file, &fallback);
    let head = 0..text.find('\n').unwrap_or(text.len());
    // resque-pool evaluates the file as ERB (`default: <%= … %>`) in the environment
    // of the process that runs it.
    let env = super::service_env(builder, &service);
    let facts = super::facts_for(builder, &service);
    let (evaluated, tags) = strip_erb(&text, &Context { env: &env, facts: &facts });
    for tag in &tags {
        match (&tag.value, &tag.error) {
            (Some(e), _) if !e.assumed.is_empty() => builder.assumed_at(file, tag.bytes.clone(), format!("resque-pool.yml `{}` rests on: {}", tag.code, e.assumed.join("; ")), "pass --cpus / --env if these differ where resque-pool runs"),
            (None, Some(why)) if tag.output => builder.ignored(file, tag.bytes.clone(), format!("ERB `{}`: {why} cannot be evaluated here", tag.code)),
            _ => {}
        }
    }
    let (root, spans) = match yaml::parse_foreign(&SourceFile::new(source.path.clone(), evaluated)) {
        Ok(parsed) => parsed,
        Err(e) => {
            builder.unparsable(file, 0..0, format!("resque-pool.yml: {}", e.message), "fix the YAML syntax");
            return;
        }
    };
    let Some(map) = root.as_object() else {
        builder.ignored(file, 0..0, "resque-pool.yml is not a mapping of queues to worker counts");
        return;
    };
    if !builder.ensure_kind(&service, "worker", file, head.clone()) {
        let kind = builder.kind_of_service(&service).unwrap_or_default();
        builder.ignored(file, head, format!("resque-pool.yml for `{service}`, which is a {kind} service; not read"));
        return;
    }
    let app_env = builder.facts.app_env.clone();
    // queue list -> (processes, pointer); the environment's section wins.
    let mut pools: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut add = |builder: &mut ImportBuilder, entries: &serde_json::Map<String, Value>, prefix: &str| {
        for (queues, count) in entries {
            let pointer = format!("{prefix}/{}", escape_segment(queues));
            match count.as_u64() {
                Some(n) => {
                    pools.insert(queues.clone(), (n, pointer));
                }
                None if count.is_object() => {}
                None => builder.ignored(file, kv_span(&spans, &pointer), format!("resque-pool `{}`: not a number of workers", queues.escape_debug())),
            }
        }
    };
    add(builder, map, "");
    if let Some(section) = map.get(&app_env).and_then(Value::as_object) {
        add(builder, section, &format!("/{}", escape_segment(&app_env)));
    }
    if pools.is_empty() {
        builder.ignored(file, head, format!("resque-pool.yml starts no workers for the {app_env} environment"));
        return;
    }
    let total: u64 = pools.values().map(|(n, _)| n).sum();
    let pointer = pools.values().next().map(|(_, p)| p.clone()).unwrap_or_default();
    let bytes = if pools.len() == 1 { kv_span(&spans, &pointer) } else { head.clone() };
    builder.mark(&format!("services.{service}"), file, head.clone());
    builder.set(&format!("services.{service}.processes"), json!(total), file, bytes.clone());
    builder.set(&format!("services.{service}.concurrency"), json!(1), file, bytes.clone());
    if pools.len() > 1 {
        let list = pools.iter().map(|(q, (n, _))| format!("{q}: {n}")).collect::<Vec<_>>().join(", ");
        builder.assumed_at(file, bytes, format!("`{service}` runs {total} resque processes in all ({list})"), "each holds its own connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_section_merges_over_the_top_level() {
        let mut b = ImportBuilder::new("t");
        let text = "foo: 1\n\"high,default\": 2\nproduction:\n  \"high,default\": 4\n  mailers: 1\ndevelopment:\n  \"high,default\": 1\n";
        let id = b.add_source(SourceFile::new("/x/config/resque-pool.yml", text.to_string()));
        read(&mut b, id);
        let s = &b.value["services"]["resque"];
        assert_eq!((s["kind"].clone(), s["processes"].clone(), s["concurrency"].clone()), (json!("worker"), json!(6), json!(1)));
    }

    #[test]
    fn erb_counts_are_evaluated_with_the_cpus_of_the_run() {
        let mut b = ImportBuilder::new("t");
        let text = "default: <%= (Concurrent.processor_count * 0.5).ceil %>\n";
        let id = b.add_source(SourceFile::new("/x/config/resque-pool.yml", text.to_string()));
        read(&mut b, id);
        assert_eq!(b.value["services"]["resque"]["processes"], json!(1));
        assert!(b.diagnostics.iter().any(|d| d.message.contains("2 CPUs")), "{:?}", b.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>());
    }
}
