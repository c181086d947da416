//! redis-server / valkey-server command lines (`--directive value`).

use serde_json::json;

use super::Cx;
use crate::import::formats::redis_conf;
use crate::import::shared::argv::Word;
use crate::import::shared::env::interpolate;

pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word]) {
    let mut i = 0;
    if let Some((w, r)) = words.first()
        && !w.starts_with("--")
    {
        let note = format!("redis reads `{}`; pass that file to headroom to read it too (command-line directives win over it)", w.escape_debug());
        cx.builder.config_named(cx.file, r.clone(), w, note);
        i = 1;
    }
    while i < words.len() {
        let (w, r) = &words[i];
        i += 1;
        let Some(key) = w.strip_prefix("--") else {
            cx.ignored(r.clone(), format!("redis argument `{}` outside a --directive", w.escape_debug()));
            continue;
        };
        let mut args: Vec<String> = Vec::new();
        let mut end = r.end;
        while i < words.len() && !words[i].0.starts_with("--") {
            args.push(words[i].0.clone());
            end = words[i].1.end.max(end);
            i += 1;
        }
        let bytes = r.start..end;
        if key == "sentinel" {
            continue;
        }
        // `--requirepass "$REDIS_PASSWORD"`: the variable is the secret's name.
        if key == "requirepass"
            && let [value] = args.as_slice()
            && let Some(name) = env_reference(value)
        {
            redis_conf::set_password_secret(cx.builder, cx.service, name, cx.file, bytes);
            continue;
        }
        let mut resolved = Vec::new();
        let mut unknown = false;
        for a in &args {
            let x = interpolate(a, cx.vars);
            match x.text {
                Some(t) if x.unknown.is_empty() => resolved.push(t),
                _ => unknown = true,
            }
        }
        if unknown {
            cx.ignored(bytes, format!("redis `--{key}` takes its value from the environment at run time; headroom cannot know it"));
            continue;
        }
        let refs: Vec<&str> = resolved.iter().map(String::as_str).collect();
        if redis_conf::apply_directive(cx.builder, cx.service, key, &refs, cx.file, bytes.clone()) {
            continue;
        }
        match (key, refs.as_slice()) {
            ("port", [p]) if p.parse::<u16>().is_ok_and(|p| p > 0) => cx.set("port", json!(p.parse::<u16>().unwrap_or(6379)), bytes),
            _ => cx.ignored(bytes, format!("redis directive `{key}` is not modelled")),
        }
    }
}

/// `$NAME` or `${NAME}` alone (also compose's escaped `$$NAME`, which the container's
/// shell expands): the name of the variable.
fn env_reference(word: &str) -> Option<&str> {
    let word = word.strip_prefix('$').filter(|w| w.starts_with('$')).unwrap_or(word);
    let name = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')).or_else(|| word.strip_prefix('$'))?;
    crate::load::is_env_name(name).then_some(name)
}
