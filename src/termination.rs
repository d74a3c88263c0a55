//! SIGTERM and SIGINT. Keboola stops a job with SIGTERM and kills it about 10 s later, so on the
//! first signal every pause ends at once, the caller cancels the dbt run and records it, and a
//! watchdog exits the process after [`GRACE`] whatever is still in flight.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Well inside Keboola's 10 s, leaving room for the process to exit.
pub const GRACE: Duration = Duration::from_millis(4500);
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

impl Termination {
    /// Takes over SIGTERM and SIGINT for the rest of the process.
    pub fn install() -> Result<Termination> {
        let termination = Termination::none();
        let signal = termination.signal.clone();
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
            .context("could not listen for SIGTERM and SIGINT")?;
        std::thread::spawn(move || {
            if let Some(received) = signals.forever().next() {
                signal.store(received, Ordering::SeqCst);
                log::warn!("Received {}: stopping", name(received));
                std::thread::sleep(GRACE);
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
        let end = Instant::now() + duration;
        loop {
            self.check()?;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(SLICE));
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
