//! Reader for sysctl.conf / sysctl.d files.
//!
//! Lines are `key = value` (`key=value`); lines starting with `#` or `;` are comments;
//! a leading `-` means "ignore errors setting this key" and is dropped. Keys written
//! with `/` (`net/core/somaxconn`) are read as dotted keys. Values go into
//! `machines.<group>.sysctl` of the machine group that owns the file (default `host`):
//! numbers as numbers, several numbers (`1024 65535`) as text.

use serde_json::{Value, json};

use super::nginx::common::*;
use super::{FileId, ImportBuilder};

/// Reads sysctl settings into the machine group that owns the file.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    if file >= builder.sources.len() || already_read(builder, file) || reject_binary(builder, file) {
        return;
    }
    let group = sanitize_name(&builder.owner_of(file, "host"));
    let text = builder.sources[file].text.clone();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let base = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.is_empty() || body.starts_with(['#', ';']) {
            continue;
        }
        let start = base + (line.len() - body.len());
        let end = base + line.trim_end().len();
        let body = body.strip_prefix('-').unwrap_or(body);
        let Some((key, value)) = body.split_once('=') else {
            builder.unparsable(file, start..end, format!("sysctl syntax: expected `key = value`, found `{}`", body.trim_end().escape_debug()), "write `net.core.somaxconn = 4096`");
            continue;
        };
        let key = key.trim();
        let key = if key.contains('/') { key.trim_matches('/').replace('/', ".") } else { key.to_string() };
        let mut value = value.trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            builder.unparsable(file, start..end, format!("sysctl syntax: `{}` is not a sysctl key", key.escape_debug()), "write `net.core.somaxconn = 4096`");
            continue;
        }
        if let Some(cut) = value.find(" #").or_else(|| value.find("\t#")).or_else(|| value.find(" ;")) {
            let meant = value[..cut].trim_end().to_string();
            builder.unparsable(
                file,
                start..end,
                format!("sysctl writes `{value}` to {key} whole (a `#` only starts a comment at the beginning of a line); the kernel rejects it"),
                format!("write `{key} = {meant}` and move the comment to its own line"),
            );
            value = meant;
        }
        let json_value = if let Ok(n) = value.parse::<u64>() {
            json!(n)
        } else {
            let words: Vec<&str> = value.split_whitespace().collect();
            json!(words.join(" "))
        };
        let machine = p(&["machines", &group]);
        if builder.get(&machine).is_none() {
            builder.mark(&machine, file, start..end);
            builder.set(&p(&["machines", &group, "count"]), json!(1), file, start..end);
            builder.assumed(
                format!("sysctl file {}: machine group `{group}` (count 1) holds these kernel settings", builder.sources[file].path.display()),
                format!("set `machine: {group}` on the services that run there (and the count), so rules use these values"),
            );
        }
        builder.set(&p(&["machines", &group, "sysctl", &key]), json_value, file, start..end);
        if matches!(key.as_str(), "fs.nr_open" | "fs.file-max") {
            builder.ignored(
                file,
                start..end,
                format!("{key} is recorded but not used by rules: the open-files limit of processes is `nofile` (ulimit -n, LimitNOFILE), which sysctl does not set"),
            );
        }
    }
}

/// The value of a sysctl key on a machine group, as a number when it is one.
pub fn value_of(builder: &ImportBuilder, group: &str, key: &str) -> Option<u64> {
    builder.get(&p(&["machines", group, "sysctl", key])).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::path as spec_path;
    use crate::source::SourceFile;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("sysctl-test-does-not-exist/99-tuning.conf", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, path: &str) -> usize {
        let origin = b.origins.get(&spec_path::to_pointer(path)).unwrap_or_else(|| panic!("no origin for {path}"));
        b.sources[origin.file].line_col(origin.bytes.start).line
    }

    #[test]
    fn reads_keys_into_the_machine_group() {
        let b = read_text("# tuning\n; also a comment\nnet.core.somaxconn = 65535\n-net.ipv4.tcp_max_syn_backlog=8192\nnet/core/netdev_max_backlog = 5000\nnet.ipv4.ip_local_port_range = 1024    65535\nfs.file-max = 200000\n");
        assert_eq!(b.get("machines.host.count"), Some(&json!(1)));
        assert_eq!(b.get("machines.host.sysctl[\"net.core.somaxconn\"]"), Some(&json!(65535)));
        assert_eq!(line(&b, "machines.host.sysctl[\"net.core.somaxconn\"]"), 3);
        assert_eq!(value_of(&b, "host", "net.ipv4.tcp_max_syn_backlog"), Some(8192));
        assert_eq!(line(&b, "machines.host.sysctl[\"net.ipv4.tcp_max_syn_backlog\"]"), 4);
        assert_eq!(value_of(&b, "host", "net.core.netdev_max_backlog"), Some(5000));
        assert_eq!(b.get("machines.host.sysctl[\"net.ipv4.ip_local_port_range\"]"), Some(&json!("1024 65535")));
        assert!(b.diagnostics.iter().any(|d| d.rule == super::super::IGNORED && d.message.contains("fs.file-max") && d.span.as_ref().is_some_and(|s| s.line == 7)));
        assert!(b.diagnostics.iter().all(|d| d.rule != super::super::UNPARSABLE));
    }

    #[test]
    fn bad_lines_are_errors_with_lines() {
        let b = read_text("net.core.somaxconn = 4096 # raised\nthis is not a setting\n= 5\n");
        let errors: Vec<usize> = b.diagnostics.iter().filter(|d| d.rule == super::super::UNPARSABLE).map(|d| d.span.as_ref().unwrap().line).collect();
        assert_eq!(errors, vec![1, 2, 3]);
        assert_eq!(value_of(&b, "host", "net.core.somaxconn"), Some(4096));
    }

    #[test]
    fn binary_is_an_error() {
        let b = read_text("\u{0}\u{1}\u{2}");
        assert_eq!(b.diagnostics.len(), 1);
        assert_eq!(b.diagnostics[0].rule, super::super::UNPARSABLE);
    }
}
