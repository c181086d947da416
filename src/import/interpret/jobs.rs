//! Job runners: sidekiq, celery, rq, solid_queue command lines.

use serde_json::json;

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};

pub(super) fn flags(cx: &mut Cx<'_>, kind: &str, words: &[Word]) {
    let value_flags: &[&str] = match kind {
        "celery" => &["-A", "--app", "-c", "--concurrency", "-P", "--pool", "-Q", "--queues", "-l", "--loglevel", "-n", "--hostname", "-b", "--broker", "--autoscale", "--max-tasks-per-child", "--prefetch-multiplier", "-O", "-E", "--workdir", "--pidfile", "--logfile"],
        "sidekiq" => &["-c", "--concurrency", "-C", "--config", "-q", "--queue", "-e", "--environment", "-g", "--tag", "-r", "--require", "-t", "--timeout"],
        _ => &[],
    };
    let args = parse_args(words, |f| value_flags.contains(&f));
    for arg in args {
        let Arg::Opt(opt) = arg else { continue };
        match (kind, opt.flag.as_str()) {
            ("celery" | "sidekiq", "-c" | "--concurrency") => cx.number("concurrency", &opt),
            ("celery", "--autoscale") => {
                let Some(text) = cx.value(&opt) else { continue };
                match text.split(',').next().and_then(|m| m.trim().parse::<u64>().ok()) {
                    Some(max) => {
                        cx.set("concurrency", json!(max), opt.bytes.clone());
                        cx.builder.assumed_at(cx.file, opt.bytes.clone(), format!("concurrency {max} for `{}`: the autoscale maximum", cx.service), "the pool grows to this many children under load");
                    }
                    None => cx.ignored(opt.bytes.clone(), "celery `--autoscale` without a maximum".into()),
                }
            }
            ("sidekiq", "-C" | "--config") => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                cx.ignored(opt.bytes.clone(), format!("sidekiq reads `{}` (its concurrency may be there); headroom does not read it", shown.escape_debug()));
            }
            _ => {}
        }
    }
}
