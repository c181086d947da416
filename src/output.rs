//! Writing artifacts (atomically: a temp file in the same directory, then rename) and
//! diffing them against the files a repository holds today.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use similar::{Algorithm, TextDiff};

use crate::targets::seal::{Owner, ownership};
use crate::targets::{Artifact, check_relative};

/// Writes `text` to `path` atomically: readers see the old file or the new one, never
/// half of one.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.headroom-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        // No fsync: the rename already gives readers the old file or the new one, and a
        // config render is cheap to repeat; an fsync per file would triple the run time.
        if let Ok(meta) = std::fs::metadata(path) {
            // Keep the permissions of the file being replaced (an executable script
            // stays executable).
            std::fs::set_permissions(&temp, meta.permissions())?;
        } else if name.ends_with(".sh") {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Joins an artifact path onto the output directory, refusing to leave it.
pub fn destination(root: &Path, artifact: &Artifact) -> Result<PathBuf, String> {
    check_relative(&artifact.path)?;
    Ok(root.join(&artifact.path))
}

/// How an artifact compares with the file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unchanged,
    Changed,
    /// headroom would create it.
    New,
}

/// One file's comparison.
#[derive(Clone, Debug, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub target: &'static str,
    pub status: Status,
    /// Who the file on disk belongs to (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// headroom edits only its own keys of this file (railway.toml), keeping the rest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub patched: bool,
    /// Unified diff (patience, 3 lines of context); empty when unchanged.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unified: String,
    pub hunks: Vec<Hunk>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hunk {
    pub header: String,
    pub old_start: usize,
    pub old_lines: usize,
    pub new_start: usize,
    pub new_lines: usize,
    pub lines: Vec<String>,
}

/// Compares each artifact with the file at its path under `root`.
pub fn diff_all(root: &Path, artifacts: &[Artifact]) -> Vec<FileDiff> {
    artifacts
        .iter()
        .map(|artifact| {
            // Bytes, not text: a file that is not UTF-8 is still in the way (a lossy copy
            // of it is compared, and it is never mistaken for a missing file).
            let current = destination(root, artifact)
                .ok()
                .and_then(|p| std::fs::read(p).ok())
                .map(|bytes| String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
            diff_one(artifact, current.as_deref())
        })
        .collect()
}

/// Compares one artifact with today's text (None when the file does not exist).
pub fn diff_one(artifact: &Artifact, current: Option<&str>) -> FileDiff {
    let old = current.unwrap_or("");
    let status = match current {
        None => Status::New,
        Some(text) if text == artifact.text => Status::Unchanged,
        Some(_) => Status::Changed,
    };
    let mut unified = String::new();
    let mut hunks = Vec::new();
    if status != Status::Unchanged {
        let diff = TextDiff::configure().algorithm(Algorithm::Patience).diff_lines(old, artifact.text.as_str());
        let old_name = if current.is_some() { format!("a/{}", artifact.path) } else { "/dev/null".to_string() };
        unified = diff.unified_diff().context_radius(3).header(&old_name, &format!("b/{}", artifact.path)).to_string();
        for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
            let header = hunk.header().to_string();
            let (old_start, old_lines, new_start, new_lines) = parse_hunk_header(&header);
            let lines = hunk
                .iter_changes()
                .map(|c| {
                    let sign = match c.tag() {
                        similar::ChangeTag::Delete => '-',
                        similar::ChangeTag::Insert => '+',
                        similar::ChangeTag::Equal => ' ',
                    };
                    format!("{sign}{}", c.value().trim_end_matches('\n'))
                })
                .collect();
            hunks.push(Hunk { header, old_start, old_lines, new_start, new_lines, lines });
        }
    }
    let owner = current.map(ownership);
    FileDiff { path: artifact.path.clone(), target: artifact.target, status, owner, patched: artifact.patched, unified, hunks }
}

impl FileDiff {
    /// A file in the way: it differs from what render would write and is not headroom's
    /// unedited output (nor a file headroom only patches). render leaves it alone
    /// without --force.
    pub fn blocked(&self) -> bool {
        self.status == Status::Changed && !self.patched && self.owner.is_some_and(|o| o != Owner::Headroom)
    }

    /// Why render leaves the file alone, for messages.
    pub fn why_blocked(&self) -> &'static str {
        match self.owner {
            Some(Owner::Edited) => "was edited since headroom wrote it (its headroom-sha256 no longer matches)",
            _ => "was not written by headroom (it has no headroom-sha256 header)",
        }
    }
}

fn parse_hunk_header(header: &str) -> (usize, usize, usize, usize) {
    // "@@ -a,b +c,d @@"
    let mut numbers = header
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    let a = numbers.next().unwrap_or(0);
    let b = numbers.next().unwrap_or(0);
    let c = numbers.next().unwrap_or(0);
    let d = numbers.next().unwrap_or(0);
    (a, b, c, d)
}

/// Colours a unified diff for a terminal.
pub fn colorize(unified: &str) -> String {
    unified
        .lines()
        .map(|line| {
            if line.starts_with("+++") || line.starts_with("---") {
                format!("\x1b[1m{line}\x1b[0m")
            } else if line.starts_with('+') {
                format!("\x1b[32m{line}\x1b[0m")
            } else if line.starts_with('-') {
                format!("\x1b[31m{line}\x1b[0m")
            } else if line.starts_with("@@") {
                format!("\x1b[36m{line}\x1b[0m")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(text: &str) -> Artifact {
        Artifact { target: "nginx", path: "nginx.conf".into(), text: text.into(), patched: false }
    }

    #[test]
    fn statuses_and_hunks() {
        assert_eq!(diff_one(&artifact("a\n"), Some("a\n")).status, Status::Unchanged);
        assert_eq!(diff_one(&artifact("a\n"), None).status, Status::New);
        let d = diff_one(&artifact("a\nb\nc\n"), Some("a\nx\nc\n"));
        assert_eq!(d.status, Status::Changed);
        assert_eq!(d.hunks.len(), 1);
        assert_eq!(d.hunks[0].lines, vec![" a", "-x", "+b", " c"]);
        assert!(d.unified.starts_with("--- a/nginx.conf\n+++ b/nginx.conf\n@@ -1,3 +1,3 @@"));
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("headroom-write-{}", std::process::id()));
        let path = dir.join("sub/file.conf");
        write_atomic(&path, "one\n").unwrap();
        write_atomic(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
