//! Where object bytes live: the [`Backend`] trait and the CS's own [`LocalDir`].
//!
//! The trait is small on purpose (put, ranged get, head, delete, list) so that slice 2 of
//! the design can add an S3 backend through `object_store` beside [`LocalDir`]. Every
//! method is async and returns a boxed future, so the CS holds an `Arc<dyn Backend>`.
//!
//! Keys reaching a backend were built by the CS from a parsed
//! [`peercam_cloud::SegmentKey`] (never taken from a request as a string); [`LocalDir`]
//! still refuses any key with an empty, `.` or `..` component or a leading `.` in a
//! component, so no path trick reaches the file system.

use std::future::Future;
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A backend's boxed future.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What a backend could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No object under that key.
    #[error("no object {0}")]
    NotFound(String),
    /// A key a backend refuses (empty, dot or dot-dot components, hidden names).
    #[error("bad key {0:?}")]
    BadKey(String),
    /// A byte range outside the object.
    #[error("range {start}..{end} outside an object of {len} bytes")]
    Range {
        /// First byte asked.
        start: u64,
        /// End asked (excluded).
        end: u64,
        /// The object's length.
        len: u64,
    },
    /// The store failed (disk, network).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: io::Error,
    },
}

/// An object store the CS writes envelopes into.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`, replacing any object there; resolves only once the
    /// write is durable (for [`LocalDir`]: file and directory fsynced).
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFut<'a, ()>;
    /// The whole object, or with `range` exactly those bytes.
    fn get_range<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> BoxFut<'a, Vec<u8>>;
    /// The object's length, or `None` if there is none.
    fn head<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<u64>>;
    /// Deletes the object; deleting a missing object succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, ()>;
    /// Every object whose key starts with `prefix`, with its length, sorted by key.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<(String, u64)>>;
}

/// Objects as files under a directory (one file per key, `/` as directory separator).
///
/// A write goes to a hidden temporary file in the target directory, is fsynced, renamed
/// over the key and the directory fsynced (directories it had to create are fsynced up to
/// the root too), so after a crash a key holds either nothing or a whole object; temporary
/// files (`.<name>.<random>.tmp`) are never objects: [`Backend::list`] and reads skip
/// them and [`LocalDir::open`] removes any left over.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BackendError {
    let context = context.into();
    move |source| BackendError::Io { context, source }
}

impl LocalDir {
    /// Opens (creating) the directory and removes temporary files a crash left behind.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, BackendError> {
        let root = root.into();
        let r = root.clone();
        let removed = blocking(move || {
            std::fs::create_dir_all(&r).map_err(io_err(format!("create {}", r.display())))?;
            let mut removed = 0;
            sweep_temps(&r, &mut removed)?;
            Ok(removed)
        })
        .await?;
        if removed > 0 {
            tracing::info!(removed, root = %root.display(), "removed unfinished object writes");
        }
        Ok(Self { root })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`, after checking every component.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, BackendError> {
        let mut p = self.root.clone();
        for part in key.split('/') {
            if part.is_empty() || part.starts_with('.') || part.contains('\\') {
                return Err(BackendError::BadKey(key.to_owned()));
            }
            p.push(part);
        }
        Ok(p)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Io {
            context: "blocking task".into(),
            source: io::Error::other(e.to_string()),
        })?
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn sweep_temps(dir: &Path, removed: &mut usize) -> Result<(), BackendError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("read {}", dir.display())))?;
    for e in entries {
        let e = e.map_err(io_err(format!("read {}", dir.display())))?;
        let path = e.path();
        let ft = e
            .file_type()
            .map_err(io_err(format!("stat {}", path.display())))?;
        if ft.is_dir() {
            sweep_temps(&path, removed)?;
        } else if is_temp(&e.file_name().to_string_lossy()) {
            std::fs::remove_file(&path).map_err(io_err(format!("remove {}", path.display())))?;
            *removed += 1;
        }
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), BackendError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync {}", dir.display())))
}

fn put_file(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let dir = path
        .parent()
        .ok_or_else(|| BackendError::BadKey(path.display().to_string()))?;
    // Directories created now must reach the disk too: remember the highest one missing.
    let mut first_new = None;
    let mut d = dir;
    while d != root && !d.exists() {
        first_new = Some(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.tmp",
        hex::encode(crate::random_bytes::<8>())
    ));
    let written = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(format!("write {}", tmp.display()))(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(format!("rename to {}", path.display()))(e));
    }
    fsync_dir(dir)?;
    if let Some(top) = first_new {
        let mut d = dir.to_path_buf();
        while d != top {
            match d.parent() {
                Some(p) => d = p.to_path_buf(),
                None => break,
            }
            fsync_dir(&d)?;
        }
        if let Some(p) = top.parent() {
            fsync_dir(p)?;
        }
    }
    Ok(())
}

fn read_file(path: &Path, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, BackendError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackendError::NotFound(key.to_owned()));
        }
        Err(e) => return Err(io_err(format!("open {}", path.display()))(e)),
    };
    let len = f
        .metadata()
        .map_err(io_err(format!("stat {}", path.display())))?
        .len();
    let r = range.unwrap_or(0..len);
    if r.start > r.end || r.end > len {
        return Err(BackendError::Range {
            start: r.start,
            end: r.end,
            len,
        });
    }
    let mut out = vec![0; (r.end - r.start) as usize];
    f.seek(SeekFrom::Start(r.start))
        .and_then(|_| f.read_exact(&mut out))
        .map_err(io_err(format!("read {}", path.display())))?;
    Ok(out)
}

fn list_dir(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            list_dir(root, &path, prefix, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if rel.starts_with(prefix) {
                out.push((rel, e.metadata()?.len()));
            }
        }
    }
    Ok(())
}

impl Backend for LocalDir {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let root = self.root.clone();
            blocking(move || put_file(&root, &path, &bytes)).await
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, range: Option<Range<u64>>) -> BoxFut<'a, Vec<u8>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let k = key.to_owned();
            blocking(move || read_file(&path, &k, range)).await
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<u64>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(format!("stat {}", path.display()))(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            blocking(move || {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_err(format!("remove {}", path.display()))(e)),
                }
                match path.parent() {
                    Some(dir) => fsync_dir(dir),
                    None => Ok(()),
                }
            })
            .await
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            let root = self.root.clone();
            let prefix = prefix.to_owned();
            blocking(move || {
                let mut out = Vec::new();
                list_dir(&root, &root, &prefix, &mut out)
                    .map_err(io_err(format!("list {}", root.display())))?;
                out.sort();
                Ok(out)
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_crashed_temp_file_is_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let b = LocalDir::open(&root).await.unwrap();
        b.put("sA/2026/12/07/a.seg", vec![1; 10]).await.unwrap();
        // A crash between write and rename leaves a temporary file beside the key.
        let tmp = root.join("sA/2026/12/07/.b.seg.0011223344556677.tmp");
        std::fs::write(&tmp, [7u8; 50]).unwrap();
        assert_eq!(b.head("sA/2026/12/07/b.seg").await.unwrap(), None);
        assert_eq!(
            b.list("sA/").await.unwrap(),
            vec![("sA/2026/12/07/a.seg".to_owned(), 10)]
        );
        // Asking for the temporary name itself is refused.
        assert!(matches!(
            b.head("sA/2026/12/07/.b.seg.0011223344556677.tmp").await,
            Err(BackendError::BadKey(_))
        ));
        // Reopening sweeps it away; the object stays.
        let b = LocalDir::open(&root).await.unwrap();
        assert!(!tmp.exists());
        assert_eq!(b.head("sA/2026/12/07/a.seg").await.unwrap(), Some(10));
    }

    #[tokio::test]
    async fn path_tricks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalDir::open(dir.path()).await.unwrap();
        for k in ["../x", "a//b", "/abs", "a/./b", "a/..", "", "a\\..\\b"] {
            assert!(
                matches!(b.put(k, vec![1]).await, Err(BackendError::BadKey(_))),
                "{k}"
            );
        }
    }
}
