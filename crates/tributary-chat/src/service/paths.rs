//! Server paths named by API requests: only under the configured roots
//! (`chat.import_roots` for reading, `chat.backup_dir` for writing), checked
//! after symlinks are resolved. A path outside gets the same answer
//! whether it exists or not, so the API cannot be used to probe the
//! server's file system.

use std::path::{Component, Path, PathBuf};

use super::{BackupTarget, ChatService, RestoreSource};
use crate::error::{Error, Result};

fn outside(what: &str, path: &Path, setting: &str) -> Error {
    Error::PermissionDenied(format!(
        "{what} {}: not under a directory of `chat.{setting}`",
        path.display()
    ))
}

/// `path` with `.` removed; `None` when it climbs out with `..`.
fn plain_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The canonical form of `path` if it lies under one of `roots` (after
/// symlinks); relative paths are taken under the first root.
pub(crate) fn confine_read(path: &Path, roots: &[PathBuf]) -> Result<PathBuf> {
    if roots.is_empty() {
        return Err(Error::PermissionDenied(
            "server paths are turned off (`chat.import_roots` is empty): upload the export \
             instead (`tributary chat import PATH` does)"
                .into(),
        ));
    }
    let wanted = if path.is_absolute() {
        path.to_owned()
    } else {
        roots[0].join(path)
    };
    let Ok(real) = std::fs::canonicalize(&wanted) else {
        // Missing or unreadable: the same answer as outside unless the
        // name itself lies under a root (then "not found" tells nothing new).
        let lexical_inside = roots.iter().any(|r| {
            let canonical = std::fs::canonicalize(r).ok();
            [Some(r.clone()), canonical].into_iter().flatten().any(|r| {
                wanted
                    .strip_prefix(&r)
                    .ok()
                    .and_then(plain_relative)
                    .is_some()
            })
        });
        return Err(if lexical_inside {
            Error::NotFound(format!("import path {}: no such file", path.display()))
        } else {
            outside("import path", path, "import_roots")
        });
    };
    let inside = roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|r| real.starts_with(&r));
    if !inside {
        return Err(outside("import path", path, "import_roots"));
    }
    let meta =
        std::fs::metadata(&real).map_err(|_| outside("import path", path, "import_roots"))?;
    if !(meta.is_file() || meta.is_dir()) {
        return Err(Error::InvalidRequest(format!(
            "import path {}: neither a regular file nor a directory",
            path.display()
        )));
    }
    Ok(real)
}

/// The directory to write a backup into: `dir` under `base` (relative, or
/// absolute inside it), created if missing, checked after symlinks.
pub(crate) fn confine_backup_dir(dir: &Path, base: &Path) -> Result<PathBuf> {
    if base.as_os_str().is_empty() {
        return Err(Error::PermissionDenied(
            "server directories are turned off (`chat.backup_dir` is empty): back up to the \
             object store (`--objects`)"
                .into(),
        ));
    }
    std::fs::create_dir_all(base).map_err(|source| Error::File {
        context: "create chat.backup_dir".into(),
        source,
    })?;
    let base = std::fs::canonicalize(base).map_err(|source| Error::File {
        context: "resolve chat.backup_dir".into(),
        source,
    })?;
    let rel = if dir.is_absolute() {
        dir.strip_prefix(&base)
            .ok()
            .and_then(plain_relative)
            .ok_or_else(|| outside("backup directory", dir, "backup_dir"))?
    } else {
        plain_relative(dir).ok_or_else(|| outside("backup directory", dir, "backup_dir"))?
    };
    // One level at a time, each checked before the next is created, so a
    // symlink on the way is never followed to create anything outside.
    let mut real = base.clone();
    for part in rel.components() {
        let next = real.join(part);
        if !next.exists() {
            std::fs::create_dir(&next).map_err(|source| Error::File {
                context: format!("create backup directory {}", dir.display()),
                source,
            })?;
        }
        real = std::fs::canonicalize(&next)
            .map_err(|_| outside("backup directory", dir, "backup_dir"))?;
        if !real.starts_with(&base) || !real.is_dir() {
            return Err(outside("backup directory", dir, "backup_dir"));
        }
    }
    Ok(real)
}

impl ChatService {
    /// An import path named by a request, confined to `chat.import_roots`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] outside the roots (or with none set),
    /// [`Error::NotFound`], [`Error::InvalidRequest`] for a FIFO or device.
    pub fn confine_import(&self, path: &Path) -> Result<PathBuf> {
        confine_read(path, &self.inner.settings.import_roots)
    }

    /// A backup target named by a request: a directory only under
    /// `chat.backup_dir`.
    ///
    /// # Errors
    /// As [`confine_backup_dir`].
    pub fn confine_backup(&self, target: &BackupTarget) -> Result<BackupTarget> {
        Ok(match target {
            BackupTarget::Dir(d) => {
                BackupTarget::Dir(confine_backup_dir(d, &self.inner.settings.backup_dir)?)
            }
            BackupTarget::Objects => BackupTarget::Objects,
        })
    }

    /// A restore source named by a request: a path only under
    /// `chat.import_roots` or `chat.backup_dir`.
    ///
    /// # Errors
    /// As [`ChatService::confine_import`].
    pub fn confine_restore(&self, source: &RestoreSource) -> Result<RestoreSource> {
        Ok(match source {
            RestoreSource::Path(p) => {
                let s = &self.inner.settings;
                let mut roots = s.import_roots.clone();
                if !s.backup_dir.as_os_str().is_empty() {
                    roots.push(s.backup_dir.clone());
                }
                RestoreSource::Path(confine_read(p, &roots)?)
            }
            RestoreSource::Object(k) => RestoreSource::Object(k.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Proves reads stay under the roots after symlinks, answer "outside" alike for missing and
    // existing paths, refuse FIFOs, and writes stay under the backup directory.
    #[test]
    fn paths_stay_under_their_roots() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let other = t.path().join("other");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(root.join("sub/a.json"), "{}").unwrap();
        std::fs::write(other.join("secret.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&other, root.join("link")).unwrap();
        let roots = vec![root.clone()];
        let real_root = std::fs::canonicalize(&root).unwrap();

        assert_eq!(
            confine_read(Path::new("sub/a.json"), &roots).unwrap(),
            real_root.join("sub/a.json")
        );
        assert!(confine_read(&root.join("sub"), &roots).is_ok());
        for bad in [
            other.join("secret.json"),
            other.join("missing.json"),
            root.join("link/secret.json"),
            root.join("sub/../../other/secret.json"),
            PathBuf::from("../other/secret.json"),
        ] {
            let e = confine_read(&bad, &roots).unwrap_err();
            assert!(
                matches!(e, Error::PermissionDenied(_)),
                "{}: {e}",
                bad.display()
            );
        }
        assert!(matches!(
            confine_read(Path::new("sub/missing.json"), &roots).unwrap_err(),
            Error::NotFound(_)
        ));
        assert!(matches!(
            confine_read(Path::new("sub/a.json"), &[]).unwrap_err(),
            Error::PermissionDenied(_)
        ));
        let fifo = root.join("x.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            confine_read(&fifo, &roots).unwrap_err(),
            Error::InvalidRequest(_)
        ));

        let base = t.path().join("backups");
        let got = confine_backup_dir(Path::new("daily/1"), &base).unwrap();
        assert!(got.ends_with("backups/daily/1") && got.is_dir());
        assert!(confine_backup_dir(&got, &base).is_ok(), "absolute inside");
        std::os::unix::fs::symlink(&other, base.join("out")).unwrap();
        for bad in ["../x", "/tmp/elsewhere", "out/x"] {
            assert!(
                matches!(
                    confine_backup_dir(Path::new(bad), &base).unwrap_err(),
                    Error::PermissionDenied(_)
                ),
                "{bad}"
            );
        }
        assert!(
            !other.join("x").exists(),
            "nothing created through the link"
        );
        assert!(matches!(
            confine_backup_dir(Path::new("a"), Path::new("")).unwrap_err(),
            Error::PermissionDenied(_)
        ));
    }
}
