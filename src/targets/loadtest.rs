//! Target `loadtest`: a Locust file and a k6 script (`deploy.loadtest`) that ramp to the
//! planned load — `load.concurrent_users` users (else Little's law at the edge) sending
//! `load.rps` together — and fail when more than the error budget of requests fail or
//! the 95th percentile passes `load.p95_target`.

use serde::Serialize;

use super::{Artifact, Context, RenderError, Target, render_template};
use crate::rules::num;
use crate::spec::LoadtestDeploy;

const LOCUST: &str = include_str!("../../templates/loadtest/locustfile.py.j2");
const K6: &str = include_str!("../../templates/loadtest/k6.js.j2");

/// Share of failed requests a run may have when `deploy.loadtest.error_budget` is unset.
pub const DEFAULT_ERROR_BUDGET: f64 = 0.01;
/// Seconds at the target load when `deploy.loadtest.duration` is unset.
pub const DEFAULT_DURATION_SECS: u64 = 300;
/// Ramp-up seconds when `deploy.loadtest.ramp` is unset.
pub const DEFAULT_RAMP_SECS: u64 = 60;

pub struct Loadtest;

impl Target for Loadtest {
    fn name(&self) -> &'static str {
        "loadtest"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(settings) = ctx.spec.deploy.as_ref().and_then(|d| d.loadtest.as_ref()) else { return Ok(Vec::new()) };
        let Some(load) = &ctx.plan.load else {
            return Err(RenderError { target: "loadtest", message: "deploy.loadtest needs `load:` (rps, service_time) to know the load to drive".into() });
        };
        let (users, users_note) = match &load.concurrent_users {
            Some(u) => (u.value.max(1), "load.concurrent_users".to_string()),
            None => {
                let in_flight = (load.rps.value * load.service_time.value).ceil().max(1.0) as u64;
                (in_flight, format!("Little's law: rps {} x service_time {}s", num(load.rps.value), num(load.service_time.value)))
            }
        };
        let wants = |tool: &str| settings.tool.as_deref().is_none_or(|t| t == tool);
        let mut artifacts = Vec::new();
        for (tool, default_path, template, name) in [("locust", "loadtest/locustfile.py", LOCUST, "loadtest/locustfile.py.j2"), ("k6", "loadtest/k6.js", K6, "loadtest/k6.js.j2")] {
            if !wants(tool) {
                continue;
            }
            let path = ctx.path_for(&format!("loadtest.{tool}"), default_path);
            let context = FileContext::new(ctx, settings, load, users, &users_note, &path);
            let text = render_template("loadtest", name, template, &context)?;
            artifacts.push(Artifact { target: "loadtest", path, text, patched: false });
        }
        Ok(artifacts)
    }
}

#[derive(Serialize)]
struct FileContext {
    header: String,
    header_js: String,
    path: String,
    host: String,
    request_path: String,
    users: u64,
    users_note: String,
    rps: String,
    /// Requests per second each user paces itself to.
    per_user: String,
    ramp: u64,
    duration: u64,
    error_budget: String,
    error_percent: String,
    p95_ms: Option<u64>,
}

impl FileContext {
    fn new(ctx: &Context<'_>, settings: &LoadtestDeploy, load: &crate::plan::LoadPlan, users: u64, users_note: &str, path: &str) -> Self {
        let budget = settings.error_budget.unwrap_or(DEFAULT_ERROR_BUDGET);
        FileContext {
            header: ctx.header("#"),
            header_js: ctx.header("//"),
            path: super::escape::one_line(path),
            host: settings.host.clone(),
            request_path: settings.path.clone().unwrap_or_else(|| "/".into()),
            users,
            users_note: users_note.to_string(),
            rps: precise(load.rps.value),
            per_user: precise(load.rps.value / users as f64),
            ramp: settings.ramp.map_or(DEFAULT_RAMP_SECS, |d| d.as_secs_ceil()),
            duration: settings.duration.map_or(DEFAULT_DURATION_SECS, |d| d.as_secs_ceil()),
            error_budget: precise(budget),
            error_percent: num(budget * 100.0),
            p95_ms: load.p95_target.as_ref().map(|p| (p.value * 1000.0).round() as u64),
        }
    }
}

/// A number for code: as many decimals as it needs, up to six.
fn precise(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = "version: 1\nname: shop\nload: { rps: 300, service_time: 80ms, concurrent_users: 400, p95_target: 250ms }\nservices:\n  web: { kind: gunicorn, workers: 8, worker_class: gthread, threads: 4, replicas: 2 }\ndeploy:\n  loadtest: { host: https://shop.example.com, duration: 10m }\n";

    fn render(spec: &str) -> Result<Vec<Artifact>, RenderError> {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Loadtest.render(&ctx)
    }

    #[test]
    fn both_scripts_carry_the_planned_load() {
        let artifacts = render(SPEC).unwrap();
        let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["loadtest/locustfile.py", "loadtest/k6.js"]);
        let locust = &artifacts[0].text;
        for line in ["USERS = 400", "RAMP_SECONDS = 60", "HOLD_SECONDS = 600", "ERROR_BUDGET = 0.01", "P95_TARGET_MS = 250", "PER_USER_RPS = 0.75", "host = \"https://shop.example.com\""] {
            assert!(locust.contains(line), "missing `{line}`:\n{locust}");
        }
        let k6 = &artifacts[1].text;
        for line in ["preAllocatedVUs: 400", "{ target: 300, duration: \"60s\" }", "{ target: 300, duration: \"600s\" }", "\"rate<0.01\"", "\"p(95)<250\""] {
            assert!(k6.contains(line), "missing `{line}`:\n{k6}");
        }
    }

    #[test]
    fn one_tool_and_users_from_littles_law() {
        let spec = SPEC.replace(", concurrent_users: 400", "").replace("duration: 10m", "duration: 10m, tool: k6");
        let artifacts = render(&spec).unwrap();
        assert_eq!(artifacts.len(), 1);
        // 300 rps x 0.08 s = 24 users.
        assert!(artifacts[0].text.contains("maxVUs: 24"), "{}", artifacts[0].text);
        let err = render(&spec.replace("load: { rps: 300, service_time: 80ms, p95_target: 250ms }\n", "")).unwrap_err();
        assert!(err.message.contains("needs `load:`"), "{err}");
    }
}
