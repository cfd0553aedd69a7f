//! SIGINT, SIGTERM and SIGHUP never leave a temporary file behind. The signals are blocked in
//! every thread and taken by one waiting thread ([`install`]), which removes every registered
//! temporary file and exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
//! Outputs are renamed into place inside [`critical`], which the waiting thread lets finish (or
//! roll back) before it cleans up, so an interrupted run leaves either all its outputs or none
//! of them, and never a temporary file.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Temporary files to remove on a signal.
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Held while outputs are being renamed into place.
static COMMIT: Mutex<()> = Mutex::new(());

fn pending() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    // A panic while holding the lock cannot leave the set half-updated (one insert or remove).
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file this process created that is removed when dropped (unless [`Registered::disarm`]ed)
/// and by the signal handler.
#[derive(Debug)]
pub struct Registered {
    path: PathBuf,
    armed: bool,
}

impl Registered {
    /// Runs `create`, which makes a new file and returns its path, with the registry locked, so
    /// that no signal finds a file it does not know about.
    pub fn create(create: impl FnOnce() -> io::Result<PathBuf>) -> io::Result<Registered> {
        let mut set = pending();
        let path = create()?;
        set.insert(path.clone());
        Ok(Registered { path, armed: true })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops removing the file: it was renamed away or is to be kept.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
        pending().remove(&self.path);
    }
}

/// Runs `f` (the renames of a commit) without a signal cleaning up in the middle of it.
pub fn critical<R>(f: impl FnOnce() -> R) -> R {
    let _guard = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that waits for them. Call it first
/// in `main`, before any other thread exists: threads inherit the blocked set, so only the
/// waiting thread ever receives these signals.
#[cfg(unix)]
pub fn install() -> Result<(), String> {
    // SAFETY: `sigset_t` is plain data; `sigemptyset` initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed `sigset_t` for each call; the signal
    // numbers are valid constants. `pthread_sigmask` only changes this thread's mask.
    let blocked = unsafe {
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if blocked != 0 {
        return Err(format!(
            "cannot block signals: {}",
            io::Error::from_raw_os_error(blocked)
        ));
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || wait_and_clean(set))
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

#[cfg(not(unix))]
pub fn install() -> Result<(), String> {
    Ok(())
}

#[cfg(unix)]
fn wait_and_clean(set: libc::sigset_t) {
    loop {
        let mut signal = 0;
        // SAFETY: `set` holds the blocked signals, `signal` is a valid out-pointer; sigwait
        // only reads the one and writes the other.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        // Let a commit in progress finish or roll back, then remove what is left; the lock is
        // held until the process exits, so no commit starts after the cleanup.
        let _commit = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
        for path in pending().iter() {
            let _ = std::fs::remove_file(path);
        }
        std::process::exit(128 + signal);
    }
}
