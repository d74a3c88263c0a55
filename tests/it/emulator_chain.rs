//! The emulator's job chaining ("Run when another job finishes"), driven over HTTP as the
//! component sees it: a parent run's end enqueues the runs of the jobs chained to it, with the
//! trigger dbt Cloud gives them, and nothing else.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use dbt_cloud_emulator::Demo;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::common::*;

/// Every wait for an event ends here at the latest, however busy the machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The project of the jobs `Job::new` makes.
fn project_of(job_id: u64) -> u64 {
    Job::new(ACCOUNT, job_id).project_id
}

fn quick_job(id: u64, outcome: Outcome) -> Job {
    Job::new(ACCOUNT, id)
        .timeline(Timeline::lasting(Duration::from_millis(600)))
        .outcome(outcome)
}

struct Api<'a> {
    emulator: &'a Emulator,
    http: Client,
    account: u64,
    token: &'a str,
}

impl Api<'_> {
    fn of(emulator: &Emulator) -> Api<'_> {
        Api {
            emulator,
            http: Client::new(),
            account: ACCOUNT,
            token: TOKEN,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!(
            "{}/api/v2/accounts/{}/{path}",
            self.emulator.base_url(),
            self.account
        );
        let mut request = self
            .http
            .request(method, url)
            .header("Authorization", format!("Token {}", self.token));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().unwrap()).unwrap(),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body["data"].clone()
    }

    fn trigger(&self, job_id: u64) -> u64 {
        let (status, body) = self.call(
            reqwest::Method::POST,
            &format!("jobs/{job_id}/run/"),
            Some(json!({"cause": "Triggered from Keboola"})),
        );
        assert_eq!(status, 200, "{body}");
        body["data"]["id"].as_u64().unwrap()
    }

    fn run(&self, run_id: u64) -> Value {
        self.get(&format!("runs/{run_id}/?include_related=[\"trigger\"]"))
    }

    /// The runs of `job_id`, oldest first, all seen at one moment.
    fn runs_of(&self, job_id: u64) -> Vec<Value> {
        let runs = self.get(&format!(
            "runs/?job_definition_id={job_id}&order_by=id&include_related=[\"trigger\"]"
        ));
        runs.as_array().unwrap().clone()
    }

    /// The runs of `job_id` once `done` holds of them, polled.
    fn runs_once(&self, job_id: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let runs = self.runs_of(job_id);
            if done(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id}'s runs never got there: {runs:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The run once final, polled.
    fn final_run(&self, run_id: u64) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let run = self.run(run_id);
            if run["is_complete"] == true {
                return run;
            }
            assert!(Instant::now() < deadline, "run {run_id} never ended: {run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_final(run: &Value) -> bool {
    run["is_complete"] == true
}

fn at(run: &Value, field: &str) -> DateTime<Utc> {
    let text = run[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {run}"));
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f+00:00")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
}

fn id(run: &Value) -> u64 {
    run["id"].as_u64().unwrap()
}

#[test]
fn a_parent_runs_end_enqueues_its_child_with_the_cause_naming_the_run_and_the_childs_outcome() {
    const CHILD: u64 = JOB + 1;
    let emulator = emulator_with(quick_job(JOB, Outcome::Success));
    emulator.add_job(
        quick_job(CHILD, Outcome::Error)
            .named("Downstream", "Production")
            .chained_to(JOB, project_of(JOB), &[10]),
    );
    let api = Api::of(&emulator);
    let parent = api.trigger(JOB);
    assert!(
        api.runs_of(CHILD).is_empty(),
        "nothing before the parent ends"
    );

    let child = api.runs_once(CHILD, |runs| !runs.is_empty())[0].clone();
    let parent = api.final_run(parent);
    assert_eq!(parent["status"], 10);
    assert_eq!(
        child["trigger"]["cause"],
        format!("Triggered by completion of run {}", id(&parent))
    );
    assert_eq!(child["trigger"]["cause_category"], "job completion");
    assert_eq!(child["trigger"]["job_definition_id"], CHILD);
    assert_eq!(child["job_definition_id"], CHILD);
    assert!(id(&child) > id(&parent));
    // Made from the parent's end, not measured: exactly the default delay after it.
    assert_eq!(
        at(&child, "created_at") - at(&parent, "finished_at"),
        chrono::Duration::milliseconds(200)
    );

    let child = api.final_run(id(&child));
    assert_eq!(child["status"], 20, "the child's own outcome: {child}");
    assert_eq!(emulator.runs_of_job(CHILD), [id(&child)]);
    assert_eq!(emulator.runs_created(), 2);
    let seen = emulator.run_json(id(&child));
    assert_eq!(seen["trigger"], child["trigger"]);
    assert_eq!(seen["status"], 20);
    assert_eq!(api.runs_of(CHILD).len(), 1, "enqueued once");
}

#[test]
fn the_chain_delay_is_the_tests() {
    const CHILD: u64 = JOB + 1;
    let emulator = emulator_with(quick_job(JOB, Outcome::Success));
    emulator.add_job(quick_job(CHILD, Outcome::Success).chained_to(JOB, project_of(JOB), &[10]));
    emulator.chain_delay(Duration::from_millis(1500));
    let api = Api::of(&emulator);
    let parent = api.trigger(JOB);
    let child = api.runs_once(CHILD, |runs| !runs.is_empty())[0].clone();
    let parent = api.final_run(parent);
    assert_eq!(
        at(&child, "created_at") - at(&parent, "finished_at"),
        chrono::Duration::milliseconds(1500)
    );
}

/// Runs of `parent_outcome` enqueue exactly the jobs whose condition names the parent, the
/// parent's project and that status. The control job, enqueued at the same instant as any
/// other, says when the others would have been.
fn enqueued_on(parent_outcome: Outcome, cancel: bool) -> Vec<u64> {
    const SUCCESS: u64 = JOB + 10;
    const ERROR: u64 = JOB + 20;
    const CANCELLED: u64 = JOB + 30;
    const ANY: u64 = JOB + 40;
    const OTHER_PROJECT: u64 = JOB + 50;
    const CONTROL: u64 = JOB + 60;
    let parent_job = Job::new(ACCOUNT, JOB)
        .timeline(Timeline::lasting(match cancel {
            true => Duration::from_secs(3600),
            false => Duration::from_millis(600),
        }))
        .outcome(parent_outcome);
    let emulator = emulator_with(parent_job);
    let project = project_of(JOB);
    for (id, statuses) in [
        (SUCCESS, &[10][..]),
        (ERROR, &[20]),
        (CANCELLED, &[30]),
        (ANY, &[10, 20, 30]),
    ] {
        emulator.add_job(quick_job(id, Outcome::Success).chained_to(JOB, project, statuses));
    }
    emulator.add_job(quick_job(OTHER_PROJECT, Outcome::Success).chained_to(
        JOB,
        project + 1,
        &[10, 20, 30],
    ));
    emulator.add_job(quick_job(CONTROL, Outcome::Success).chained_to(JOB, project, &[10, 20, 30]));
    let api = Api::of(&emulator);
    let parent = api.trigger(JOB);
    if cancel {
        let (status, body) = api.call(
            reqwest::Method::POST,
            &format!("runs/{parent}/cancel/"),
            None,
        );
        assert_eq!(status, 200, "{body}");
    }
    api.runs_once(CONTROL, |runs| !runs.is_empty());
    [SUCCESS, ERROR, CANCELLED, ANY, OTHER_PROJECT]
        .into_iter()
        .filter(|job| !api.runs_of(*job).is_empty())
        .collect()
}

#[test]
fn only_the_statuses_in_the_condition_enqueue_and_only_with_the_parents_project() {
    assert_eq!(enqueued_on(Outcome::Success, false), [JOB + 10, JOB + 40]);
    assert_eq!(enqueued_on(Outcome::Error, false), [JOB + 20, JOB + 40]);
    assert_eq!(enqueued_on(Outcome::Cancelled, false), [JOB + 30, JOB + 40]);
    // Cancelled by the API while running: its end is the cancel.
    assert_eq!(enqueued_on(Outcome::Success, true), [JOB + 30, JOB + 40]);
}

#[test]
fn deleted_and_deactivated_jobs_and_other_accounts_jobs_are_not_enqueued() {
    const DELETED: u64 = JOB + 1;
    const DEACTIVATED: u64 = JOB + 2;
    const ELSEWHERE: u64 = JOB + 3;
    const CONTROL: u64 = JOB + 4;
    const OTHER_ACCOUNT: u64 = ACCOUNT + 1;
    let emulator = emulator_with(quick_job(JOB, Outcome::Success));
    let project = project_of(JOB);
    emulator.add_account(Account::new(OTHER_ACCOUNT), &[TOKEN]);
    emulator.add_job(
        quick_job(DELETED, Outcome::Success)
            .chained_to(JOB, project, &[10])
            .deleted(),
    );
    emulator.add_job(
        quick_job(DEACTIVATED, Outcome::Success)
            .chained_to(JOB, project, &[10])
            .deactivated(),
    );
    emulator.add_job(
        Job::new(OTHER_ACCOUNT, ELSEWHERE)
            .timeline(Timeline::lasting(Duration::from_millis(600)))
            .chained_to(JOB, project, &[10]),
    );
    emulator.add_job(quick_job(CONTROL, Outcome::Success).chained_to(JOB, project, &[10]));
    let api = Api::of(&emulator);
    api.trigger(JOB);
    api.runs_once(CONTROL, |runs| !runs.is_empty());
    assert!(api.runs_of(DELETED).is_empty());
    assert!(api.runs_of(DEACTIVATED).is_empty());
    let elsewhere = Api {
        account: OTHER_ACCOUNT,
        ..Api::of(&emulator)
    };
    assert!(elsewhere.runs_of(ELSEWHERE).is_empty());
    assert_eq!(emulator.runs_of_job(DELETED), Vec::<u64>::new());
    assert_eq!(emulator.runs_of_job(DEACTIVATED), Vec::<u64>::new());
    assert_eq!(emulator.runs_of_job(ELSEWHERE), Vec::<u64>::new());
}

#[test]
fn a_child_whose_job_is_busy_stays_queued_until_the_other_run_ends() {
    const CHILD: u64 = JOB + 1;
    let emulator = emulator_with(quick_job(JOB, Outcome::Success));
    emulator.add_job(quick_job(CHILD, Outcome::Success).chained_to(JOB, project_of(JOB), &[10]));
    let busy = emulator.add_scheduled_run(
        CHILD,
        Timeline::lasting(Duration::from_secs(4)),
        Outcome::Success,
    );
    let api = Api::of(&emulator);
    api.trigger(JOB);

    // Each look sees both runs at one moment: the chained one is queued while the other runs.
    let runs = api.runs_once(CHILD, |runs| {
        if let [busy, chained] = runs {
            if !is_final(busy) {
                assert_eq!(chained["status"], 1, "the job is busy: {runs:#?}");
            }
        }
        runs.len() == 2 && runs.iter().all(is_final)
    });
    let (busy_run, chained) = (&runs[0], &runs[1]);
    assert_eq!(id(busy_run), busy);
    let busy = busy_run;
    assert_eq!(chained["trigger"]["cause_category"], "job completion");
    assert!(
        at(chained, "created_at") < at(busy, "finished_at"),
        "enqueued while the job was busy"
    );
    assert!(
        at(chained, "dequeued_at") >= at(busy, "finished_at"),
        "dequeued only once the other run ended: {chained:#}\n{busy:#}"
    );
    assert_eq!(chained["status"], 10);
}

#[test]
fn a_chained_runs_end_enqueues_the_next_level_and_all_are_made_at_their_moments() {
    const MIDDLE: u64 = JOB + 1;
    const LAST: u64 = JOB + 2;
    let emulator = emulator_with(quick_job(JOB, Outcome::Success));
    emulator.add_job(quick_job(MIDDLE, Outcome::Error).chained_to(JOB, project_of(JOB), &[10]));
    emulator.add_job(
        quick_job(LAST, Outcome::Success)
            .project(project_of(JOB) + 7)
            .chained_to(MIDDLE, project_of(MIDDLE), &[20]),
    );
    emulator.add_job(quick_job(JOB + 3, Outcome::Success).chained_to(JOB, project_of(JOB), &[20]));
    let api = Api::of(&emulator);
    let first = api.trigger(JOB);
    // Nobody looks until the whole chain is over: the runs are made when someone looks, each at
    // its own moment. The emulator's clock says when, so a slow machine only waits longer.
    let first_ends = emulator.run_finishes_at(first).unwrap();
    let whole_chain = first_ends + (Duration::from_millis(600) + Duration::from_millis(200)) * 2;
    std::thread::sleep(
        whole_chain.saturating_duration_since(Instant::now()) + Duration::from_millis(500),
    );

    let runs = api.get("runs/?order_by=id&include_related=[\"trigger\"]");
    let runs = runs.as_array().unwrap();
    let of = |job: u64| -> Vec<&Value> {
        runs.iter()
            .filter(|run| run["job_definition_id"] == job)
            .collect()
    };
    assert_eq!(
        [of(JOB).len(), of(MIDDLE).len(), of(LAST).len()],
        [1, 1, 1],
        "{runs:#?}"
    );
    assert_eq!(of(JOB + 3).len(), 0, "the first run succeeded");
    let (first, middle, last) = (of(JOB)[0], of(MIDDLE)[0], of(LAST)[0]);
    assert_eq!(first["status"], 10);
    assert_eq!(
        middle["trigger"]["cause"],
        format!("Triggered by completion of run {}", id(first))
    );
    assert_eq!(
        last["trigger"]["cause"],
        format!("Triggered by completion of run {}", id(middle))
    );
    assert_eq!(last["trigger"]["cause_category"], "job completion");
    assert_eq!(middle["status"], 20);
    assert_eq!(last["status"], 10);
    assert!(id(first) < id(middle) && id(middle) < id(last));
    assert!(at(middle, "created_at") > at(first, "finished_at"));
    assert!(at(last, "created_at") > at(middle, "finished_at"));
}

#[test]
fn a_cycle_keeps_enqueuing_as_dbt_cloud_would() {
    const OTHER: u64 = JOB + 1;
    let emulator =
        emulator_with(quick_job(JOB, Outcome::Success).chained_to(OTHER, project_of(OTHER), &[10]));
    emulator.add_job(quick_job(OTHER, Outcome::Success).chained_to(JOB, project_of(JOB), &[10]));
    let api = Api::of(&emulator);
    let first = api.trigger(JOB);
    let runs = api.runs_once(JOB, |runs| runs.len() >= 2);
    let other = api.runs_once(OTHER, |runs| !runs.is_empty())[0].clone();
    assert_eq!(
        other["trigger"]["cause"],
        format!("Triggered by completion of run {first}")
    );
    assert_eq!(
        runs[1]["trigger"]["cause"],
        format!("Triggered by completion of run {}", id(&other))
    );
}

#[test]
fn a_run_cancelled_by_someone_ends_cancelled_and_enqueues_what_a_cancel_enqueues() {
    const ON_CANCEL: u64 = JOB + 1;
    const ON_SUCCESS: u64 = JOB + 2;
    let emulator = emulator_with(
        Job::new(ACCOUNT, JOB).timeline(Timeline::lasting(Duration::from_secs(3600))),
    );
    emulator.add_job(quick_job(ON_CANCEL, Outcome::Success).chained_to(
        JOB,
        project_of(JOB),
        &[30],
    ));
    emulator.add_job(quick_job(ON_SUCCESS, Outcome::Success).chained_to(
        JOB,
        project_of(JOB),
        &[10],
    ));
    let api = Api::of(&emulator);
    let run = api.trigger(JOB);
    assert!(!is_final(&api.run(run)));
    emulator.cancel_run(run);
    let cancelled = api.run(run);
    assert_eq!(cancelled["status"], 30);
    assert_eq!(cancelled["status_message"], "Cancelled by user.");
    let child = api.runs_once(ON_CANCEL, |runs| !runs.is_empty())[0].clone();
    assert_eq!(
        child["trigger"]["cause"],
        format!("Triggered by completion of run {run}")
    );
    assert!(api.runs_of(ON_SUCCESS).is_empty());
    emulator.cancel_run(run);
    assert_eq!(
        api.run(run)["finished_at"],
        cancelled["finished_at"],
        "a final run stays so"
    );
}

#[test]
fn the_jobs_list_shows_the_condition_and_hides_deleted_jobs_unless_asked() {
    const CHILD: u64 = JOB + 1;
    const GONE: u64 = JOB + 2;
    const TIRED: u64 = JOB + 3;
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    emulator.add_job(Job::new(ACCOUNT, CHILD).chained_to(JOB, 270542, &[10, 20]));
    emulator.add_job(Job::new(ACCOUNT, GONE).deleted());
    emulator.add_job(Job::new(ACCOUNT, TIRED).deactivated());
    let api = Api::of(&emulator);
    let ids = |jobs: &Value| -> Vec<u64> {
        jobs.as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_u64().unwrap())
            .collect()
    };

    let listed = api.get("jobs/");
    assert_eq!(ids(&listed), [JOB, CHILD, TIRED]);
    let job = |id: u64| -> Value {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|job| job["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(job(JOB)["job_completion_trigger_condition"], Value::Null);
    assert!(job(JOB)
        .as_object()
        .unwrap()
        .contains_key("job_completion_trigger_condition"));
    assert_eq!(
        job(CHILD)["job_completion_trigger_condition"],
        json!({"condition": {"job_id": JOB, "project_id": 270542, "statuses": [10, 20]}})
    );
    assert_eq!(job(CHILD)["state"], 1);
    assert_eq!(job(JOB)["deactivated"], false);
    assert_eq!(job(TIRED)["deactivated"], true);
    for id in [JOB, TIRED] {
        assert!(job(id)
            .as_object()
            .unwrap()
            .contains_key("deactivation_reason"));
        assert_eq!(job(id)["deactivation_reason"], Value::Null);
    }
    assert_eq!(
        api.get(&format!("jobs/{CHILD}/"))["job_completion_trigger_condition"],
        job(CHILD)["job_completion_trigger_condition"]
    );

    for state in ["active", "1"] {
        assert_eq!(
            ids(&api.get(&format!("jobs/?state={state}"))),
            [JOB, CHILD, TIRED]
        );
    }
    for state in ["deleted", "2"] {
        assert_eq!(ids(&api.get(&format!("jobs/?state={state}"))), [GONE]);
    }
    assert_eq!(ids(&api.get("jobs/?state=all")), [JOB, CHILD, GONE, TIRED]);
    let (status, body) = api.call(reqwest::Method::GET, "jobs/", None);
    assert_eq!(
        (status, &body["extra"]["filters"]["state"]),
        (200, &json!("active"))
    );
    let (status, body) = api.call(reqwest::Method::GET, "jobs/?state=gone", None);
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["state"].is_array(), "{body}");

    let gone = api.get(&format!("jobs/{GONE}/"));
    assert_eq!(gone["state"], 2);
}

#[test]
fn the_demo_chains_downstream_marts_to_the_demo_job_on_success() {
    let emulator = Emulator::start();
    emulator.serve_demo();
    let api = Api {
        account: Demo::ACCOUNT_ID,
        token: Demo::TOKEN,
        ..Api::of(&emulator)
    };
    let chained = api.get(&format!("jobs/{}/", Demo::CHAINED_JOB_ID));
    assert_eq!(chained["name"], "Downstream marts");
    let parent_job = api.get(&format!("jobs/{}/", Demo::JOB_ID));
    assert_eq!(chained["project_id"], parent_job["project_id"]);
    assert_eq!(
        chained["job_completion_trigger_condition"],
        json!({"condition": {"job_id": Demo::JOB_ID, "project_id": parent_job["project_id"], "statuses": [10]}})
    );

    let parent = api.trigger(Demo::JOB_ID);
    let child = api.runs_once(Demo::CHAINED_JOB_ID, |runs| !runs.is_empty())[0].clone();
    assert_eq!(
        child["trigger"]["cause"],
        format!("Triggered by completion of run {parent}")
    );
    assert_eq!(
        at(&child, "created_at") - at(&api.final_run(parent), "finished_at"),
        chrono::Duration::from_std(Demo::CHAIN_DELAY).unwrap()
    );
    let child = api.final_run(id(&child));
    assert_eq!(child["status"], 10);
    let run = emulator.run_json(id(&child));
    let steps: Vec<&str> = run["run_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    let artifacts = api.get(&format!("runs/{}/artifacts/", id(&child)));
    assert!(
        artifacts
            .as_array()
            .unwrap()
            .contains(&json!("run_results.json")),
        "{artifacts}"
    );
    let (status, file) = api.call(
        reqwest::Method::GET,
        &format!("runs/{}/artifacts/run_results.json", id(&child)),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        file["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{file}"
    );
    assert_eq!(
        file["results"].as_array().unwrap().len(),
        4,
        "the chained job's own run_results.json"
    );
    assert_eq!(emulator.runs_of_job(Demo::JOB_ID), [parent]);
}
