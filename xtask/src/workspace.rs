//! Where the workspace is, and what its member crates are.

use crate::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root: the parent of this crate's folder (fixed at compile time, so
/// `cargo xtask` works from any folder of the checkout), checked to be the workspace manifest.
pub fn root() -> Result<PathBuf> {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = xtask_dir
        .parent()
        .ok_or_else(|| Error::new("xtask's folder has no parent folder"))?;
    let manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", manifest.display())))?;
    if !text.lines().any(|l| l.trim() == "[workspace]") {
        return Err(Error::new(format!(
            "{} is not the workspace manifest (no [workspace] table)",
            manifest.display()
        )));
    }
    Ok(root.to_path_buf())
}

/// A target folder of its own for `cargo` runs with other flags (`loom`, `miri`), so that they
/// do not invalidate the normal build: `<target>/<name>`, under `$CARGO_TARGET_DIR` if set.
pub fn target_dir(root: &Path, name: &str) -> PathBuf {
    // A relative $CARGO_TARGET_DIR is relative to where the user is, as for cargo.
    let base = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || root.join("target"),
        |dir| std::env::current_dir().unwrap_or_default().join(dir),
    );
    base.join(name)
}

/// `flags` appended to the value of the environment variable `var` (a user's `RUSTFLAGS` are
/// kept, not replaced).
pub fn extend_flags(var: &str, flags: &str) -> String {
    match std::env::var(var) {
        Ok(old) if !old.trim().is_empty() => format!("{} {flags}", old.trim()),
        _ => flags.to_owned(),
    }
}

/// A member crate: a top-level folder with a `Cargo.toml`.
#[derive(Debug, Clone)]
pub struct Crate {
    /// The folder, relative to the root (`pipe`).
    pub dir: String,
    /// The package name (`ipcraft-pipe`).
    pub name: String,
    /// The text of its `Cargo.toml`.
    pub manifest: String,
}

/// The crates in the top-level folders of the workspace, sorted by folder.
pub fn crates(root: &Path) -> Result<Vec<Crate>> {
    let entries = fs::read_dir(root)
        .map_err(|e| Error::new(format!("cannot list {}: {e}", root.display())))?;
    let mut crates = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::new(format!("cannot list {}: {e}", root.display())))?;
        let dir = entry.file_name().to_string_lossy().into_owned();
        if dir.starts_with('.') || dir == "target" {
            continue;
        }
        let path = entry.path().join("Cargo.toml");
        let Ok(manifest) = fs::read_to_string(&path) else {
            continue;
        };
        let name = package_name(&manifest).unwrap_or_else(|| dir.clone());
        crates.push(Crate {
            dir,
            name,
            manifest,
        });
    }
    crates.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(crates)
}

/// The `name` in the `[package]` table of a manifest.
pub fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return Some(value.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_package_name() {
        let m = "[workspace]\nname = \"no\"\n\n[package]\n# name = \"comment\"\nname = \"ipcraft-pipe\" # trailing\nversion = \"0.1.0\"\n";
        assert_eq!(package_name(m).as_deref(), Some("ipcraft-pipe"));
        assert_eq!(package_name("[workspace]\nmembers = []\n"), None);
    }

    #[test]
    fn the_root_is_this_workspace() {
        let root = root().unwrap();
        assert!(root.join("xtask/Cargo.toml").is_file());
    }
}
