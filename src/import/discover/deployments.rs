//! Alternatives in separate folders are separate deployments: a repository with
//! `deploy/postgres/docker-compose.yml` and `deploy/mysql/docker-compose.yml`, or a
//! compose file for development at the top and a Kamal config in `ops/`, describes
//! several ways to run the app, not one system. `lint` of a directory reads each
//! deployment on its own (its folder's files, plus the files no deployment folder
//! holds), so one variant's services never add to another's connection budget.

use std::path::{Path, PathBuf};

use super::detect::{self, Kind};

/// Files read together as one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The folder that defines it, relative to the directory linted (`deploy/mysql`;
    /// `.` for the directory itself).
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// Files looked at and not read, with why.
pub type Skipped = Vec<(PathBuf, String)>;

/// What a directory holds: one deployment per folder with a compose file or a Kamal
/// config, and the files skipped while looking. None when there are fewer than two
/// such folders (everything is then read together, as one deployment).
pub fn split(dir: &Path) -> Option<(Vec<Deployment>, Skipped)> {
    let found = detect::find_known_files(dir);
    let mut roots: Vec<PathBuf> = found.files.iter().filter_map(|f| root_of(f)).collect();
    roots.sort();
    roots.dedup();
    if roots.len() < 2 {
        return None;
    }
    let mut deployments: Vec<Deployment> = roots
        .iter()
        .map(|r| Deployment { name: r.strip_prefix(dir).ok().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".to_string(), |p| p.display().to_string()), files: Vec::new() })
        .collect();
    for file in &found.files {
        // The deepest deployment folder holding the file; a file outside all of them is
        // shared by every deployment (a config/ folder the variants all mount).
        let owner = roots.iter().enumerate().filter(|(_, r)| file.starts_with(r)).max_by_key(|(_, r)| r.components().count()).map(|(i, _)| i);
        match owner {
            Some(i) => deployments[i].files.push(file.clone()),
            None => deployments.iter_mut().for_each(|d| d.files.push(file.clone())),
        }
    }
    Some((deployments, found.skipped))
}

/// The folder a deployment-defining file stands for: a compose file's own folder; a
/// Kamal config's project (the parent of `config/`).
fn root_of(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?;
    match detect::kind_of(file, None) {
        Kind::Compose => Some(dir.to_path_buf()),
        Kind::Kamal if dir.file_name().is_some_and(|n| n == "config") => dir.parent().map(Path::to_path_buf),
        Kind::Kamal => Some(dir.to_path_buf()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn one_deployment_per_folder_with_shared_files_in_each() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "deploy/postgres/docker-compose.yml", "services:\n  db:\n    image: postgres:16\n");
        write(dir, "deploy/sqlite/docker-compose.yml", "services:\n  web:\n    image: app\n");
        write(dir, "config/puma.rb", "workers 2\n");
        let (deployments, _) = split(dir).expect("two folders");
        let names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["deploy/postgres", "deploy/sqlite"]);
        for d in &deployments {
            assert_eq!(d.files.len(), 2, "its compose file and the shared puma.rb: {d:?}");
            assert!(d.files.iter().any(|f| f.ends_with("config/puma.rb")));
        }
    }

    #[test]
    fn a_rails_app_with_compose_and_kamal_at_its_root_is_one_deployment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "docker-compose.yml", "services:\n  web:\n    image: app\n");
        write(dir, "config/deploy.yml", "service: app\nimage: acme/app\nservers:\n  web:\n    - 10.0.0.1\n");
        assert_eq!(split(dir), None);
    }
}
