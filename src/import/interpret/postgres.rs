//! postgres command lines (`-c name=value`, `-N`, `-B`).

use serde_json::json;

use super::Cx;
use crate::import::formats::pgconf;
use crate::import::shared::argv::{Arg, Word, parse_args};
use crate::import::shared::env::interpolate;

pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| matches!(f, "-c" | "-N" | "-B" | "-p" | "-D" | "-h" | "-k" | "-S" | "-r" | "-s" | "-o" | "-C" | "-d"));
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                cx.ignored(r, format!("postgres argument `{}`", w.escape_debug()));
                continue;
            }
            Arg::Opt(o) => o,
        };
        let (key, value) = match opt.flag.as_str() {
            "-c" => {
                let Some((kv, _)) = &opt.value else { continue };
                match kv.split_once('=') {
                    Some((k, v)) => (k.trim().replace('-', "_"), v.trim().to_string()),
                    None => {
                        cx.ignored(opt.bytes.clone(), format!("postgres `-c {}` without `=value`", kv.escape_debug()));
                        continue;
                    }
                }
            }
            "-N" => ("max_connections".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            "-B" => ("shared_buffers".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            "-p" => ("port".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            f if f.starts_with("--") && opt.value.is_some() => (f[2..].replace('-', "_"), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            f => {
                cx.ignored(opt.bytes.clone(), format!("postgres `{f}` does not change capacity"));
                continue;
            }
        };
        let resolved = interpolate(&value, cx.vars);
        let Some(value) = resolved.text.filter(|_| resolved.unknown.is_empty()) else {
            cx.ignored(opt.bytes.clone(), format!("postgres `{key}` takes its value from the environment at run time; headroom cannot know it"));
            continue;
        };
        let value = value.trim_matches('\'').to_string();
        if pgconf::apply_setting(cx.builder, cx.service, &key, &value, cx.file, opt.bytes.clone()) {
            continue;
        }
        match key.as_str() {
            "port" if value.parse::<u16>().is_ok_and(|p| p > 0) => cx.set("port", json!(value.parse::<u16>().unwrap_or(5432)), opt.bytes.clone()),
            "max_connections" if value.parse::<u64>().is_ok_and(|n| n > 0) => cx.set("max_connections", json!(value.parse::<u64>().unwrap_or(100)), opt.bytes.clone()),
            _ => cx.ignored(opt.bytes.clone(), format!("postgres setting `{key}` is not modelled")),
        }
    }
}
