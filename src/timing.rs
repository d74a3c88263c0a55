//! Timeouts and retry budgets. One set for production; the tests switch to a fast set with
//! `DBT_CLOUD_TRIGGER_TEST_TIMING=fast`, so that a fault test takes seconds, not minutes.

use std::time::Duration;

use crate::retry::RetryPolicy;

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub connect_timeout: Duration,
    /// For an API answer as a whole; for a download, each read.
    pub read_timeout: Duration,
    /// For every call except the ones below.
    pub retry: RetryPolicy,
    /// For the cancel and last look after SIGTERM, which must fit in the grace period.
    pub after_signal: RetryPolicy,
    pub after_signal_timeout: Duration,
}

impl Timing {
    pub fn from_env() -> Timing {
        match std::env::var("DBT_CLOUD_TRIGGER_TEST_TIMING").as_deref() {
            Ok("fast") => Timing::fast(),
            _ => Timing::standard(),
        }
    }

    /// The UI waits about 30 s for a synchronous action: retries must end well before.
    pub fn for_sync_action(self) -> Timing {
        Timing {
            read_timeout: self.read_timeout.min(Duration::from_secs(10)),
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts.min(3),
                max_total: self.retry.max_total.min(Duration::from_secs(10)),
                ..self.retry
            },
            ..self
        }
    }

    pub fn standard() -> Timing {
        Timing {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 8,
                first_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                max_total: Duration::from_secs(300),
            },
            after_signal: AFTER_SIGNAL,
            after_signal_timeout: Duration::from_millis(1500),
        }
    }

    pub fn fast() -> Timing {
        Timing {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 6,
                first_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(400),
                max_total: Duration::from_secs(5),
            },
            after_signal: AFTER_SIGNAL,
            after_signal_timeout: Duration::from_millis(1500),
        }
    }
}

/// Two quick tries within the 4.5 s grace: cancel, then one last look at the run.
const AFTER_SIGNAL: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_millis(200),
    max_total: Duration::from_millis(1500),
};
