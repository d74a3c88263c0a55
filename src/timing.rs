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
    /// For the last look and the cancel once `max_wait_time` has passed.
    pub after_deadline: Duration,
    /// Each phase of the job before and after the wait ends within `max_wait_time` and this.
    pub phase_margin: Duration,
    /// No trigger is sent with less time than this before the job's deadline: half for its
    /// answer, half to look for the run a lost answer may hide and record it.
    pub trigger_need: Duration,
    pub cooldown: Cooldown,
    /// A download slower than `min_bytes` per `window` is broken off and tried again.
    pub stall: Stall,
    /// How long a finished run may take to report its artifacts saved: uploads take seconds; a
    /// run that failed before dbt wrote anything never reports them.
    pub save_grace: Duration,
    /// How long, in all, listed artifacts may keep answering 404.
    pub missing_artifacts: Duration,
    /// Bytes: an API answer larger than this is refused rather than read.
    pub max_answer: u64,
    /// A chained run is looked for this long after its parent ended, at most...
    pub chain_appear: Duration,
    /// ...this often.
    pub chain_look: Duration,
}

/// dbt Cloud's 429: past 5,000 requests a minute the account answers 429 for five minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooldown {
    /// The window the account's limit counts requests in (a minute; shorter in the tests), in
    /// which this component keeps to its share.
    pub window: Duration,
    /// Without `Retry-After`, the first probe of whether the cooldown ended comes this late...
    pub first_probe: Duration,
    /// ...and the pause between probes doubles up to this.
    pub max_probe_interval: Duration,
    /// The longest a cooldown is waited out, and the cap on any `Retry-After`.
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub window: Duration,
    pub min_bytes: u64,
}

impl Timing {
    /// The UI waits about 30 s for a synchronous action: retries must end well before.
    pub fn for_sync_action(self) -> Timing {
        let ceiling = Duration::from_secs(10);
        Timing {
            read_timeout: self.read_timeout.min(ceiling),
            retry: RetryPolicy {
                max_attempts: Some(self.retry.max_attempts.map_or(3, |max| max.min(3))),
                max_total: self.retry.max_total.min(ceiling),
                max_throttled: self.retry.max_throttled.min(ceiling),
                ..self.retry
            },
            cooldown: Cooldown {
                max: self.cooldown.max.min(ceiling),
                ..self.cooldown
            },
            ..self
        }
    }

    pub fn standard() -> Timing {
        // The documented five minutes, and a margin for clocks and the probe's interval.
        let cooldown = Duration::from_secs(330);
        Timing {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: Some(8),
                first_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                max_total: Duration::from_secs(300),
                // Three cooldowns: an account that others keep at its limit may cool down again
                // right after the first.
                max_throttled: cooldown * 3,
                deadline: None,
            },
            after_signal: AFTER_SIGNAL,
            after_signal_timeout: Duration::from_millis(1500),
            after_deadline: Duration::from_secs(20),
            phase_margin: Duration::from_secs(30),
            trigger_need: Duration::from_secs(20),
            cooldown: Cooldown {
                window: Duration::from_secs(60),
                first_probe: Duration::from_secs(5),
                max_probe_interval: Duration::from_secs(30),
                max: cooldown,
            },
            stall: Stall {
                window: Duration::from_secs(60),
                min_bytes: 600_000,
            },
            save_grace: Duration::from_secs(30),
            missing_artifacts: Duration::from_secs(60),
            chain_appear: Duration::from_secs(120),
            chain_look: Duration::from_secs(5),
            // Far past any real answer (a run with its steps' logs is kilobytes to megabytes),
            // yet never a disk's or a container's worth.
            max_answer: 256_000_000,
        }
    }

    pub fn fast() -> Timing {
        let cooldown = Duration::from_secs(3);
        Timing {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: Some(6),
                first_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(400),
                max_total: Duration::from_secs(5),
                max_throttled: cooldown * 3,
                deadline: None,
            },
            after_signal: AFTER_SIGNAL,
            after_signal_timeout: Duration::from_millis(1500),
            after_deadline: Duration::from_secs(2),
            phase_margin: Duration::from_secs(2),
            trigger_need: Duration::from_secs(2),
            cooldown: Cooldown {
                window: Duration::from_secs(2),
                first_probe: Duration::from_millis(100),
                max_probe_interval: Duration::from_millis(400),
                max: cooldown,
            },
            stall: Stall {
                window: Duration::from_secs(1),
                min_bytes: 10_000,
            },
            save_grace: Duration::from_secs(5),
            missing_artifacts: Duration::from_secs(1),
            // Past the demo job's chained run, enqueued 5 s after its parent ends.
            chain_appear: Duration::from_secs(10),
            chain_look: Duration::from_millis(200),
            max_answer: 8_000_000,
        }
    }
}

/// Two quick tries within the 4.5 s grace: cancel, then one last look at the run.
const AFTER_SIGNAL: RetryPolicy = RetryPolicy {
    max_attempts: Some(2),
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_millis(200),
    max_total: Duration::from_millis(1500),
    max_throttled: Duration::ZERO,
    deadline: None,
};
