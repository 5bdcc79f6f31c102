//! The writer lock of an embedded bus file: an exclusive `flock` on the
//! sibling file `PATH.lock`, which also records the holder's pid.
//!
//! The lock is taken when the bus opens for writing and released when its
//! writer task ends (after the last queued append), or by the kernel when the
//! process dies, so a `kill -9` never leaves a stale lock. A separate lock
//! file keeps the lock apart from SQLite's own locks on the database file.
//!
//! Inside one process, reopening a file whose previous bus was just dropped
//! (a restart in a test) waits briefly for that bus's writer to finish; any
//! other holder makes the open fail at once.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long an open waits for a bus of this process that is closing.
const CLOSING_WAIT: Duration = Duration::from_secs(10);

/// Files locked by buses of this process -> "that bus was dropped".
fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<AtomicBool>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Arc<AtomicBool>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Held while the bus may write; dropping it releases the lock.
pub(crate) struct WriterLock {
    _file: File,
    key: PathBuf,
    closing: Arc<AtomicBool>,
}

impl WriterLock {
    /// Takes the lock of the bus file `db` (shown as `shown` in errors).
    pub(crate) async fn acquire(db: &Path, shown: &str) -> Result<Self> {
        let path = lock_path(db);
        let io_err = |e: std::io::Error| Error::Unreachable {
            url: shown.to_string(),
            reason: format!("open lock file {}: {e}", path.display()),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let key = std::fs::canonicalize(&path).map_err(io_err)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if closing_here(&key) && started.elapsed() < CLOSING_WAIT {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    return Err(Error::Locked {
                        path: shown.to_string(),
                        pid: holder_pid(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        // Ours now: record who holds it.
        let record = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = record {
            tracing::warn!(path = %path.display(), error = %e, "cannot record the pid in the embedded bus lock file");
        }
        let closing = Arc::new(AtomicBool::new(false));
        registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), closing.clone());
        Ok(Self {
            _file: file,
            key,
            closing,
        })
    }

    /// The flag the bus sets when it is dropped (its writer is finishing).
    pub(crate) fn closing(&self) -> Arc<AtomicBool> {
        self.closing.clone()
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Release the lock before leaving the registry: a writer of this
        // process opening the file meanwhile then either gets the lock or
        // sees this one closing and waits, never a false "in use" (with the
        // registry entry gone first and the file still locked it got one).
        let _ = self._file.unlock();
        let mut reg = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reg
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.closing))
        {
            reg.remove(&self.key);
        }
    }
}

/// `PATH.lock` next to the bus file.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A bus of this process holds `key` and has been dropped.
fn closing_here(key: &Path) -> bool {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .is_some_and(|c| c.load(Ordering::Acquire))
}

/// The pid the holder wrote into the lock file, if readable.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
