//! SIGTERM and SIGINT. Keboola stops a job with SIGTERM and kills it about 10 s later, so on the
//! first signal every pause ends at once, a request in flight is abandoned
//! ([`Termination::abandonable`]), the caller cancels the dbt run and records it, and a watchdog
//! exits the process after [`GRACE`] whatever is still going, cleaning up first.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Well inside Keboola's 10 s, leaving room for the process to exit.
const GRACE: Duration = Duration::from_millis(4500);
const SLICE: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Termination {
    signal: Arc<AtomicI32>,
}

/// The error a pause returns once a signal came.
#[derive(Debug)]
pub struct Terminated {
    pub signal: &'static str,
}

impl std::fmt::Display for Terminated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", self.signal)
    }
}

impl std::error::Error for Terminated {}

/// True when the error, or any it wraps, says that a signal stopped us.
pub fn is_terminated(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Terminated>())
}

impl Termination {
    /// Takes over SIGTERM and SIGINT for the rest of the process. The watchdog runs `cleanup`
    /// before it exits, since `process::exit` runs no destructors.
    pub fn install(cleanup: impl FnOnce() + Send + 'static) -> Result<Termination> {
        let termination = Termination::none();
        let signal = termination.signal.clone();
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
            .context("could not listen for SIGTERM and SIGINT")?;
        std::thread::spawn(move || {
            if let Some(received) = signals.forever().next() {
                signal.store(received, Ordering::SeqCst);
                // Said from a thread of its own: a log that cannot be written (stdout's reader
                // stalled, its lock held by a blocked write) must not hold the watchdog.
                std::thread::spawn(move || log::warn!("Received {}: stopping", name(received)));
                std::thread::sleep(GRACE);
                cleanup();
                eprintln!(
                    "Stopped by {} before the component could finish cleanly.",
                    name(received)
                );
                std::process::exit(1);
            }
        });
        Ok(termination)
    }

    /// Never signalled: for library use and tests.
    pub fn none() -> Termination {
        Termination {
            signal: Arc::new(AtomicI32::new(0)),
        }
    }

    pub fn check(&self) -> Result<(), Terminated> {
        match self.signal.load(Ordering::SeqCst) {
            0 => Ok(()),
            received => Err(Terminated {
                signal: name(received),
            }),
        }
    }

    /// Sleeps for `duration`, or less when a signal comes.
    pub fn sleep(&self, duration: Duration) -> Result<(), Terminated> {
        let Some(end) = Instant::now().checked_add(duration) else {
            return self.sleep_forever();
        };
        loop {
            self.check()?;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(SLICE));
        }
    }

    fn sleep_forever(&self) -> Result<(), Terminated> {
        loop {
            self.check()?;
            std::thread::sleep(SLICE);
        }
    }

    /// Runs `work` on a thread of its own and waits for it, or returns at once when a signal
    /// comes (`Err`) or `until` passes (`Ok(None)`): a request in flight to a slow server must not
    /// hold up the cancel, nor outlast the job's deadline. The abandoned thread ends with its
    /// request's timeout, or with the process.
    pub fn abandonable<T: Send + 'static>(
        &self,
        until: Option<Instant>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, Terminated> {
        self.check()?;
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(work());
        });
        loop {
            let slice = until.map_or(SLICE, |until| {
                until.saturating_duration_since(Instant::now()).min(SLICE)
            });
            match result.recv_timeout(slice) {
                Ok(value) => return Ok(Some(value)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.check()?;
                    if until.is_some_and(|until| Instant::now() >= until) {
                        return Ok(None);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    // Justified panic: the work itself panicked (a bug of ours), and this carries
                    // it to the caller's thread, where `cli::guarded` turns it into exit 2.
                    panic!("a request thread ended without an answer")
                }
            }
        }
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_sleep_ends_with_the_signal() {
        let termination = Termination::none();
        let signal = termination.signal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            signal.store(SIGTERM, Ordering::SeqCst);
        });
        let started = Instant::now();
        assert!(termination.sleep(Duration::MAX).is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn abandonable_work_is_left_behind_on_a_signal() {
        let termination = Termination::none();
        assert_eq!(termination.abandonable(None, || 7).unwrap(), Some(7));
        let soon = Instant::now() + Duration::from_millis(100);
        let slow = termination.abandonable(Some(soon), || {
            std::thread::sleep(Duration::from_secs(30));
        });
        assert_eq!(slow.unwrap(), None, "given up at its deadline");
        assert!(Instant::now() < soon + Duration::from_secs(2));
        let signal = termination.signal.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            signal.store(SIGINT, Ordering::SeqCst);
        });
        let started = Instant::now();
        let result = termination.abandonable(None, || std::thread::sleep(Duration::from_secs(30)));
        assert_eq!(result.unwrap_err().signal, "SIGINT");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
