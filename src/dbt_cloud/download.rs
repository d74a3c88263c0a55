//! Downloading an artifact: streamed into a fresh sink per attempt, bytes as served, bounded in
//! size and speed, retried like every other call.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use reqwest::blocking::Response;

use super::client::DbtCloud;
use super::ids::RunId;
use super::plan::{Plan, Purpose};
use super::refusal::Refused;
use super::transport::Fetched;
use crate::error::UserError;
use crate::retry::{retry, AttemptError, DeadlineReached, Retry, SharedBudget};
use crate::termination::Termination;
use crate::timing::Stall;

/// Where each attempt of a download writes: a fresh sink per attempt, and what a complete one
/// becomes (e.g. a scratch file ready to be renamed into place).
pub trait Destination {
    type Sink: Write;
    type Done;
    /// Fails only for this machine's reasons, already worded for the user.
    fn open(&self) -> Result<Self::Sink>;
    /// Flushes the complete sink; a failure here is the disk's, not the network's.
    fn finish(&self, sink: Self::Sink) -> io::Result<Self::Done>;
}

/// One artifact of a run: its path below `target/`, and the step whose `target/` it is read
/// from (the run's last step without one, as the API has it).
#[derive(Debug, Clone, Copy)]
pub struct ArtifactRef<'a> {
    pub path: &'a str,
    pub step: Option<u32>,
}

/// What a 404 means for an artifact.
#[derive(Clone, Copy)]
pub enum IfMissing<'a> {
    /// Listed, so it exists or soon will (uploads lag the run): asked again, within this budget
    /// that every listed artifact shares.
    Wait(&'a SharedBudget),
    /// Asked for on the chance (another step's `run_results.json`): the step wrote none.
    Absent,
}

/// What a download may cost before it is given up.
pub struct DownloadLimits<'a> {
    /// Bytes: a larger artifact fails rather than fill the disk.
    pub max_size: u64,
    pub missing: IfMissing<'a>,
    /// Kept or only read: whether the phase under way bounds it.
    pub purpose: Purpose,
}

impl DbtCloud {
    /// Streams an artifact into a fresh `destination` sink per attempt, bytes as served, retried
    /// like every other call: a short, broken or stalled body is tried again from the start, so
    /// that a broken attempt's bytes never mix with the next. Returns what the destination made
    /// of the complete sink, and the bytes written; `None` when an artifact asked for on the
    /// chance ([`IfMissing::Absent`]) is not there.
    pub fn download_artifact<D: Destination>(
        &self,
        run: RunId,
        artifact: ArtifactRef,
        limits: &DownloadLimits,
        destination: &D,
    ) -> Result<Option<(D::Done, u64)>> {
        let path = artifact.path;
        let local = |error: io::Error| {
            AttemptError::Fatal(
                UserError::new(format!("could not save artifact {path}: {error}")).into(),
            )
        };
        let what = format!("Downloading artifact {}", subject_of(artifact));
        let plan = self.wire.download_plan(limits.purpose);
        retry(&what, &plan.policy, &plan.termination, || {
            let mut sink = destination.open().map_err(AttemptError::Fatal)?;
            match self.download_attempt(run, artifact, &mut sink, limits, &plan)? {
                Some(bytes) => Ok(Some((destination.finish(sink).map_err(local)?, bytes))),
                None => Ok(None),
            }
        })
        .map_err(|error| plan.named(error))
    }

    /// One attempt at streaming an artifact into `out`. Redirects are followed, but the token
    /// goes only to the dbt Cloud host. A short, broken or stalled body is retryable; one past
    /// `limits.max_size`, or one that cannot be written, is not.
    fn download_attempt(
        &self,
        run: RunId,
        artifact: ArtifactRef,
        out: &mut dyn Write,
        limits: &DownloadLimits,
        plan: &Plan,
    ) -> Result<Option<u64>, AttemptError> {
        let run_id = run.to_string();
        let segments: Vec<&str> = ["runs", run_id.as_str(), "artifacts"]
            .into_iter()
            .chain(artifact.path.split('/'))
            .collect();
        let mut url = self.wire.api_url(&segments);
        if let Some(step) = artifact.step {
            url.query_pairs_mut().append_pair("step", &step.to_string());
        }
        let subject = format!("artifact {} of run {run}", subject_of(artifact));
        match self.wire.fetch(url, &subject, plan)? {
            Fetched::Body(response) => {
                let bounds = BodyBounds {
                    max_size: limits.max_size,
                    stall: self.wire.timing().stall,
                    deadline: plan.deadline.into_iter().chain(plan.cutoff).min(),
                };
                save(response, out, &subject, &bounds, plan).map(Some)
            }
            Fetched::NotFound => match limits.missing {
                IfMissing::Wait(budget) => Err(not_there_yet(&subject, budget)),
                IfMissing::Absent => Ok(None),
            },
        }
    }
}

/// The body of a 200, bounded, and exactly as long as it said it would be.
fn save(
    response: Response,
    out: &mut dyn Write,
    subject: &str,
    bounds: &BodyBounds,
    plan: &Plan,
) -> Result<u64, AttemptError> {
    let expected = response.content_length();
    if let Some(size) = expected.filter(|&size| size > bounds.max_size) {
        return Err(AttemptError::Fatal(too_large(
            subject,
            size,
            bounds.max_size,
        )));
    }
    let written = copy_body(response, out, subject, bounds, &plan.termination)?;
    match expected {
        Some(expected) if written != expected => Err(AttemptError::retryable(anyhow!(
            "the download of {subject} ended after {written} of {}",
            crate::text::counted(expected, "byte", "bytes")
        ))),
        _ => Ok(written),
    }
}

/// `run_results.json`, or `run_results.json of step 4`.
fn subject_of(artifact: ArtifactRef) -> String {
    match artifact.step {
        Some(step) => format!("{} of step {step}", artifact.path),
        None => artifact.path.to_owned(),
    }
}

/// A listed artifact that answers 404: right after a run finishes it can still be on its way, so
/// it is asked again, within the time all missing artifacts share.
fn not_there_yet(subject: &str, missing: &SharedBudget) -> AttemptError {
    let ends = missing.ends();
    let error: anyhow::Error = Refused::not_found(format!(
        "{subject} is listed but not there (HTTP 404), within the {:.0} s that all missing \
             artifacts share",
        missing.length().as_secs_f64()
    ))
    .into();
    if Instant::now() >= ends {
        return AttemptError::Fatal(error);
    }
    AttemptError::Retryable(Retry {
        not_after: Some(ends),
        quiet: true,
        ..Retry::new(error)
    })
}

/// What bounds a download's body: its size, its speed, and its plan's deadline.
struct BodyBounds {
    max_size: u64,
    stall: Stall,
    deadline: Option<Instant>,
}

/// Streams a download's body into `out`, counting bytes. A read that fails, or a body slower than
/// `stall` allows, is the network's (retryable); a write that fails is ours (not retried); past
/// the plan's deadline (the job's, or the phase's for a file only read) the download is given
/// up, the plan naming that deadline. The body is read on a thread of its own ([`pump`]), so
/// that a server that stops sending holds the download neither past its deadline nor past the
/// stall guard's window nor a signal.
fn copy_body(
    body: Response,
    out: &mut dyn Write,
    subject: &str,
    bounds: &BodyBounds,
    termination: &Termination,
) -> Result<u64, AttemptError> {
    let BodyBounds {
        max_size, stall, ..
    } = *bounds;
    let chunks = pump(body);
    let mut written = 0u64;
    let mut window = (Instant::now(), 0u64);
    loop {
        termination.check()?;
        let now = Instant::now();
        if bounds.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(AttemptError::Fatal(
                DeadlineReached(format!(
                    "the download of {subject} was given up after {}",
                    crate::text::size(written)
                ))
                .into(),
            ));
        }
        if now.saturating_duration_since(window.0) >= stall.window {
            if written - window.1 < stall.min_bytes {
                return Err(AttemptError::retryable(anyhow!(
                    "{subject} came at {} in the last {:.0} s, slower than the {}/s a download \
                     must keep up; broken off",
                    crate::text::size(written - window.1),
                    stall.window.as_secs_f64(),
                    crate::text::size(stall.min_bytes / stall.window.as_secs().max(1))
                )));
            }
            window = (now, written);
        }
        let wait = bounds.deadline.map_or(PUMP_SLICE, |deadline| {
            deadline.saturating_duration_since(now).min(PUMP_SLICE)
        });
        let chunk = match chunks.recv_timeout(wait) {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                return Err(AttemptError::retryable(anyhow!(
                    "downloading {subject} broke off: {e}"
                )))
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(written),
        };
        written += chunk.len() as u64;
        if written > max_size {
            return Err(AttemptError::Fatal(too_large(subject, written, max_size)));
        }
        out.write_all(&chunk).map_err(|e| {
            AttemptError::Fatal(UserError::new(format!("could not save {subject}: {e}")).into())
        })?;
    }
}

/// How often a download waiting for its body looks at the clock and the signal.
const PUMP_SLICE: Duration = Duration::from_millis(50);

/// Reads `body` on a thread of its own, a chunk at a time (a few ahead at most), until its end
/// (the channel closes) or a failure (sent); a thread whose reader stopped listening ends with
/// its next chunk, or with its read's timeout.
fn pump(mut body: Response) -> Receiver<io::Result<Vec<u8>>> {
    let (chunks, receiver) = std::sync::mpsc::sync_channel(4);
    std::thread::spawn(move || loop {
        let mut buffer = vec![0u8; 64 * 1024];
        match body.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => {
                buffer.truncate(read);
                if chunks.send(Ok(buffer)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        }
    });
    receiver
}

fn too_large(subject: &str, size: u64, max_size: u64) -> anyhow::Error {
    UserError::new(format!(
        "{subject} is larger than max_artifact_size ({} > {}); not saved. Raise \
         max_artifact_size, or leave it out with artifacts_include.",
        crate::text::size(size),
        crate::text::size(max_size)
    ))
    .into()
}
