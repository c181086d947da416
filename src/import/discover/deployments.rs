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
/// config (and one per compose file in a folder that is a complete alternative, not an
/// overlay, of the folder's main compose file), with the files skipped while looking.
/// None when there are fewer than two (everything is then read together).
pub fn split(dir: &Path) -> Option<(Vec<Deployment>, Skipped)> {
    let found = detect::find_known_files(dir);
    let mut roots: Vec<PathBuf> = found.files.iter().filter_map(|f| root_of(f)).collect();
    roots.sort();
    roots.dedup();
    // Each root's deployments: the files that define them (empty = the whole folder).
    let mut deployments: Vec<(usize, Deployment)> = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let name = root.strip_prefix(dir).ok().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".to_string(), |p| p.display().to_string());
        let composes: Vec<&PathBuf> = found.files.iter().filter(|f| f.parent() == Some(root.as_path()) && detect::kind_of(f, None) == Kind::Compose).collect();
        let (main, alternatives) = alternatives(&composes);
        deployments.push((i, Deployment { name: name.clone(), files: main }));
        for alternative in alternatives {
            let file_name = alternative.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let label = if name == "." { file_name } else { format!("{name}/{file_name}") };
            deployments.push((i, Deployment { name: label, files: vec![alternative] }));
        }
    }
    if deployments.len() < 2 {
        return None;
    }
    let defining: Vec<PathBuf> = deployments.iter().flat_map(|(_, d)| d.files.clone()).collect();
    let mut inherited: Vec<(usize, PathBuf)> = Vec::new();
    for file in found.files.iter().filter(|f| !defining.contains(f) && !is_compose_of_a_root(f, &roots)) {
        // The deepest deployment folder holding the file; a file outside all of them is
        // shared by every deployment (a config/ folder the variants all mount).
        let owner = roots.iter().enumerate().filter(|(_, r)| file.starts_with(r)).max_by_key(|(_, r)| r.components().count()).map(|(i, _)| i);
        for (root, d) in deployments.iter_mut() {
            if owner.is_none_or(|o| o == *root) {
                d.files.push(file.clone());
            }
        }
        if let Some(owner) = owner {
            inherited.push((owner, file.clone()));
        }
    }
    // A deployment nested in another's folder (`saas/config/deploy.yml` inside a Rails
    // app) deploys that app: each kind of config file it lacks (puma.rb, queue.yml)
    // is the enclosing folder's.
    for (root, d) in deployments.iter_mut() {
        let kinds: Vec<Kind> = d.files.iter().map(|f| detect::kind_of(f, None)).collect();
        let mut added: Vec<PathBuf> = Vec::new();
        for (owner, file) in &inherited {
            let kind = detect::kind_of(file, None);
            if *owner != *root && roots[*root].starts_with(&roots[*owner]) && !kinds.contains(&kind) && !added.iter().any(|a| detect::kind_of(a, None) == kind) {
                added.push(file.clone());
            }
        }
        d.files.extend(added);
    }
    let mut out: Vec<Deployment> = deployments.into_iter().map(|(_, d)| d).filter(|d| !d.files.is_empty()).collect();
    for d in &mut out {
        d.files.sort();
    }
    (out.len() >= 2).then_some((out, found.skipped))
}

/// Whether a compose file sits directly in a deployment folder (its deployments decide
/// which one reads it).
fn is_compose_of_a_root(file: &Path, roots: &[PathBuf]) -> bool {
    file.parent().is_some_and(|p| roots.iter().any(|r| r == p)) && detect::kind_of(file, None) == Kind::Compose
}

/// The compose files of one folder read together (the main file and its overlays),
/// and those that are complete alternatives to it: a file is an overlay when each of
/// its services extends one of the main file without swapping its image for another
/// program's (`docker-compose.prod.yml` adding replicas or a release tag);
/// `docker-compose.mysql.yml` with its own database image is another way to run the app. Without a main file
/// (`docker-compose.yml`, `compose.yaml`, ...) every file is its own alternative.
fn alternatives(composes: &[&PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let is_main = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| matches!(n, "docker-compose.yml" | "docker-compose.yaml" | "compose.yml" | "compose.yaml"));
    let Some(main) = composes.iter().find(|p| is_main(p)) else {
        return match composes {
            [] => (Vec::new(), Vec::new()),
            [first, rest @ ..] => (vec![(*first).clone()], rest.iter().map(|p| (*p).clone()).collect()),
        };
    };
    let main_services = services_of(main);
    let mut together = vec![(*main).clone()];
    let mut apart = Vec::new();
    for file in composes.iter().filter(|p| !is_main(p)) {
        let services = services_of(file);
        let overlay = services.iter().all(|(name, def)| {
            main_services.iter().any(|(m, main_def)| m == name && !other_image(main_def, def))
        });
        if overlay { together.push((*file).clone()) } else { apart.push((*file).clone()) }
    }
    (together, apart)
}

/// Whether a service runs another program than the main file's service of that name:
/// both name images, of different repositories (`postgres:16` against `mysql:8`; a new
/// tag of the same image is an overlay).
fn other_image(main: &serde_json::Value, variant: &serde_json::Value) -> bool {
    let repo = |def: &serde_json::Value| def.get("image").and_then(serde_json::Value::as_str).map(crate::import::interpret::images::image_repo);
    matches!((repo(main), repo(variant)), (Some(a), Some(b)) if a != b)
}

/// The services of a compose file (empty when it cannot be read).
fn services_of(path: &Path) -> Vec<(String, serde_json::Value)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok((value, _)) = crate::load::yaml::parse_foreign(&crate::source::SourceFile::new(path, text)) else { return Vec::new() };
    value.get("services").and_then(serde_json::Value::as_object).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
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
    fn compose_files_for_other_databases_are_alternatives_and_overlays_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(dir, "docker-compose.yml", "services:\n  web:\n    image: app\n  db:\n    image: postgres:16\n");
        write(dir, "docker-compose.mysql.yml", "services:\n  web:\n    image: app\n  db:\n    image: mysql:8\n");
        write(dir, "docker-compose.prod.yml", "services:\n  web:\n    image: app:2.1\n    deploy:\n      replicas: 3\n");
        write(dir, "nginx/nginx.conf", "events {}\n");
        let (deployments, _) = split(dir).expect("an alternative");
        let shown: Vec<(String, Vec<String>)> = deployments
            .iter()
            .map(|d| (d.name.clone(), d.files.iter().map(|f| f.strip_prefix(dir).unwrap().display().to_string()).collect()))
            .collect();
        assert_eq!(
            shown,
            [
                (".".to_string(), vec!["docker-compose.prod.yml".to_string(), "docker-compose.yml".to_string(), "nginx/nginx.conf".to_string()]),
                ("docker-compose.mysql.yml".to_string(), vec!["docker-compose.mysql.yml".to_string(), "nginx/nginx.conf".to_string()]),
            ]
        );
    }

    #[test]
    fn a_kamal_config_nested_in_an_app_takes_the_app_files_it_lacks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let kamal = "service: app\nimage: acme/app\nservers:\n  web:\n    - 10.0.0.1\n";
        write(dir, "config/deploy.yml", kamal);
        write(dir, "config/puma.rb", "threads 3\n");
        write(dir, "config/database.yml", "production:\n  adapter: sqlite3\n");
        write(dir, "saas/config/deploy.yml", kamal);
        write(dir, "saas/config/database.yml", "production:\n  adapter: postgresql\n");
        let (deployments, _) = split(dir).expect("two Kamal configs");
        let saas = deployments.iter().find(|d| d.name == "saas").unwrap();
        let files: Vec<String> = saas.files.iter().map(|f| f.strip_prefix(dir).unwrap().display().to_string()).collect();
        assert_eq!(files, ["config/puma.rb", "saas/config/database.yml", "saas/config/deploy.yml"]);
        let root = deployments.iter().find(|d| d.name == ".").unwrap();
        assert!(!root.files.iter().any(|f| f.starts_with(dir.join("saas"))), "{root:?}");
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
