//! Executions of the deployed state machine, through `aws-sdk-sfn`: follow one
//! to its end (its history read as it grows, the Distributed Map's progress
//! from DescribeMapRun), tell which state failed and why, read what the
//! pipeline's output says it published, and describe past executions
//! (trigger, status, duration, result) for `pkgrelay aws history`.
//!
//! What is shown while following is a [`View`]: one live line per state with
//! indicatif on a terminal, plain lines otherwise, nothing for `--json`.

use anyhow::{Context as _, anyhow};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pkgrelay_core::steps::PublishOutput;
use pkgrelay_core::steps::items::ItemsSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// The AWS console's page of an execution.
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).filter(|r| !r.is_empty()).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

fn time_of(t: &aws_sdk_sfn::primitives::DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-29 18:40:01`, UTC.
pub fn clock(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// `0.8s`, `12s`, `3m 04s`, `1h 02m`.
pub fn took(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        s if s < 10 => format!("{:.1}s", ms as f64 / 1000.0),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A Lambda function error's Cause is the JSON `{errorMessage, errorType, …}`:
/// its message is what a person reads. Any other cause is shown as it is.
pub fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

/// What started an execution, from its input (statemachine/README.md: the
/// schedule's `{"trigger": "schedule"}`, the staging rule's
/// `{"trigger": "staging_upload", "key"}`, anything else is manual).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Trigger {
    /// `schedule`, `staging_upload` or `manual`.
    pub kind: String,
    /// The staging key of a staging upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub force_rebuild: bool,
    /// The repository the input names (absent: the APT one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

impl Trigger {
    pub fn of_input(input: Option<&str>) -> Trigger {
        let v: Value = input.and_then(|i| serde_json::from_str(i).ok()).unwrap_or(Value::Null);
        let kind = match v.get("trigger").and_then(Value::as_str) {
            Some(k @ ("schedule" | "staging_upload")) => k.to_owned(),
            _ => "manual".to_owned(),
        };
        let key = (kind == "staging_upload").then(|| v.get("key").and_then(Value::as_str).map(str::to_owned)).flatten();
        let repository = v.get("repository").and_then(Value::as_str).map(str::to_owned);
        Trigger { kind, key, force_rebuild: v.get("force_rebuild").and_then(Value::as_bool).unwrap_or(false), repository }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind.as_str(), &self.key) {
            ("staging_upload", Some(key)) => write!(f, "staging upload {key}")?,
            ("staging_upload", None) => write!(f, "staging upload")?,
            (kind, _) => write!(f, "{kind}")?,
        }
        if self.force_rebuild {
            write!(f, " (force rebuild)")?;
        }
        if let Some(r) = &self.repository {
            write!(f, " [{r}]")?;
        }
        Ok(())
    }
}

/// The pipeline's own summary (the Summarize state, `$.summary` of the output).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Summary {
    /// `published`, `superseded`, or `unchanged` (nothing to publish, but
    /// staged uploads were refused: the SummarizeUnchanged state).
    pub status: String,
    /// Absent when nothing was published.
    #[serde(default)]
    pub publish: Option<PublishOutput>,
    /// The items' counts, first ids and failures; null when no candidate was downloaded.
    pub items: Option<ItemsSummary>,
    #[serde(default)]
    pub already_processed: usize,
    #[serde(default)]
    pub unpublished: u64,
    #[serde(default)]
    pub source_failures: Vec<Value>,
    /// Staged uploads this run moved to `staging/rejected/`: {key, moved_to, reason}.
    #[serde(default)]
    pub staging_rejected: Vec<StagedRejection>,
    /// How many there were (the list holds the first 20).
    #[serde(default)]
    pub staging_rejected_count: usize,
    /// Candidates not fetched because they were refused before, unchanged upstream.
    #[serde(default)]
    pub skipped_rejected: usize,
}

/// A staged upload the run refused (CheckSources' `rejected[]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StagedRejection {
    pub key: String,
    /// `None`: it could not be moved (the reason says why).
    #[serde(default)]
    pub moved_to: Option<String>,
    pub reason: String,
}

/// The state that stopped an execution and what it said.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The state whose task (or map) failed; `None` when the history names none.
    pub state: Option<String>,
    pub error: String,
    /// The cause as a person reads it (a Lambda error's message).
    pub cause: String,
}

/// Where an execution ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub execution_arn: String,
    pub console_url: String,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stop: Option<OffsetDateTime>,
    pub duration_seconds: f64,
    pub trigger: Trigger,
    /// The pipeline's summary as the Summarize state wrote it (`$.summary` of
    /// the output); `None` when it stopped with nothing to do, or failed.
    #[serde(rename = "summary")]
    pub summary_document: Option<Value>,
    /// The same, read.
    #[serde(skip)]
    pub summary: Option<Summary>,
    /// CheckSources found nothing new, nothing unpublished, the index fresh: nothing was written.
    pub nothing_to_do: bool,
    pub failure: Option<Failure>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// What it published, in one line (`history`'s last column).
    pub fn published(&self) -> String {
        if let Some(f) = &self.failure {
            let at = f.state.as_deref().map(|s| format!(" at {s}")).unwrap_or_default();
            return format!("nothing: failed{at}: {}: {}", f.error, one_line(&f.cause, 100));
        }
        if self.status == "RUNNING" {
            return "(running)".into();
        }
        let refused = |s: &Summary| match s.staging_rejected_count.max(s.staging_rejected.len()) {
            0 => String::new(),
            1 => ", 1 staged upload refused".into(),
            n => format!(", {n} staged uploads refused"),
        };
        if self.nothing_to_do {
            return format!("nothing new{}", self.summary.as_ref().map(refused).unwrap_or_default());
        }
        let Some(s) = &self.summary else { return String::new() };
        let Some(p) = &s.publish else { return format!("nothing{}", refused(s)) };
        let mut out = match s.status.as_str() {
            "published" => format!("generation {}", p.generation),
            other => format!("generation {} {other} by {}", p.generation, p.published_generation),
        };
        let items = s.items.clone().unwrap_or_default();
        if items.inserted_count > 0 {
            out.push_str(&format!(": +{}", items.inserted_count));
            let names: Vec<String> = items.inserted.iter().map(|id| package_name(id)).collect();
            out.push_str(&format!(" ({})", names.join(", ")));
            if names.len() < items.inserted_count {
                out.push_str(", …");
            }
        } else {
            out.push_str(": no new package");
        }
        if s.unpublished > 0 {
            out.push_str(&format!(", {} recorded by an earlier run", s.unpublished));
        }
        if items.failed_count > 0 {
            out.push_str(&format!(", {} failed", items.failed_count));
        }
        out.push_str(&refused(s));
        out
    }

    /// The human-readable summary printed at the end of `start` (and `--wait`).
    pub fn report(&self) -> Vec<String> {
        let took = self.stop.map(|s| took(s - self.start)).unwrap_or_default();
        let mut lines = Vec::new();
        match (&self.failure, &self.summary) {
            (Some(f), _) => {
                let at = f.state.as_deref().map(|s| format!(" in state {s}")).unwrap_or_default();
                lines.push(format!("{} after {took}{at}", self.status));
                lines.push(format!("  error: {}", f.error));
                lines.push(format!("  cause: {}", f.cause));
            }
            (None, summary) if self.nothing_to_do => {
                lines.push(format!("{} in {took}: nothing new; the repository was left untouched", self.status));
                if let Some(s) = summary {
                    rejections(s, &mut lines);
                }
            }
            (None, Some(s)) if s.publish.is_some() => {
                let p = s.publish.as_ref().expect("matched");
                lines.push(match s.status.as_str() {
                    "published" => {
                        format!("{} in {took}: published generation {} at {}", self.status, p.generation, p.url)
                    }
                    other => format!(
                        "{} in {took}: generation {} {other}: generation {} is live at {}",
                        self.status, p.generation, p.published_generation, p.url
                    ),
                });
                let items = s.items.clone().unwrap_or_default();
                let mut new = format!("  new: {}", items.inserted_count);
                if !items.inserted.is_empty() {
                    new.push_str(&format!(" ({})", items.inserted.join(", ")));
                }
                lines.push(new);
                lines.push(format!(
                    "  skipped: {} (already recorded: {} by CheckSources, {} by RecordMetadata)",
                    s.already_processed + items.already_present,
                    s.already_processed,
                    items.already_present
                ));
                lines.push(format!("  failed: {}", items.failed_count));
                for f in &items.failed {
                    lines.push(format!("    {}: {}: {}", f.package_id, f.error, one_line(&f.cause, 300)));
                }
                for f in &s.source_failures {
                    let package = f.get("package").and_then(Value::as_str).unwrap_or("?");
                    let error = f.get("error").and_then(Value::as_str).unwrap_or("");
                    lines.push(format!("  source failed: {package}: {}", one_line(error, 300)));
                }
                if s.unpublished > 0 {
                    lines.push(format!("  published {} entries an earlier run had recorded", s.unpublished));
                }
                lines.push(format!("  packages in the index: {}, valid until {}", p.packages, p.valid_until));
                lines.extend(p.retention.iter().flat_map(|r| r.lines()).map(|l| format!("  {l}")));
                rejections(s, &mut lines);
            }
            (None, Some(s)) => {
                lines.push(format!("{} in {took}: {}", self.status, s.status));
                rejections(s, &mut lines);
            }
            (None, None) => lines.push(format!("{} after {took}", self.status)),
        }
        lines.push(format!("execution: {}", self.execution_arn));
        lines.push(format!("console: {}", self.console_url));
        lines
    }
}

/// The staged uploads a run refused and the candidates it did not fetch again, one line each.
fn rejections(s: &Summary, lines: &mut Vec<String>) {
    for r in &s.staging_rejected {
        let moved = r.moved_to.as_deref().map(|to| format!(" (moved to {to})")).unwrap_or_default();
        lines.push(format!("  refused upload: {}{moved}: {}", r.key, one_line(&r.reason, 300)));
    }
    if s.staging_rejected_count > s.staging_rejected.len() {
        lines.push(format!(
            "  refused uploads: {} more in staging/rejected/, each with a .reason beside it",
            s.staging_rejected_count - s.staging_rejected.len()
        ));
    }
    if s.skipped_rejected > 0 {
        lines.push(format!(
            "  not fetched: {} candidate(s) refused before and unchanged upstream (pkgrelay status)",
            s.skipped_rejected
        ));
    }
}

/// `kiro#0.7.45#amd64` -> `kiro 0.7.45`.
fn package_name(id: &str) -> String {
    let mut parts = id.split('#');
    match (parts.next(), parts.next()) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        _ => id.to_owned(),
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max { flat } else { format!("{}…", flat.chars().take(max).collect::<String>()) }
}

/// What the live display is told while an execution runs.
pub trait View: Send {
    /// A line about the run itself (its ARN, what is being waited for).
    fn note(&mut self, line: &str);
    fn entered(&mut self, state: &str);
    /// The state was left; `failed`: its last task failed (the error was caught).
    fn exited(&mut self, state: &str, took: time::Duration, failed: bool);
    /// A Distributed Map's items: done (succeeded, failed, timed out or aborted) of total.
    fn map_progress(&mut self, state: &str, done: i64, total: i64, failed: i64);
    /// A task of `state` failed (it may be retried or caught).
    fn task_failed(&mut self, state: &str, error: &str, cause: &str);
    /// The execution ended; `failed_state` is the state that stopped it.
    fn finished(&mut self, failed_state: Option<&str>);
}

/// Nothing live (`--json`).
pub struct Quiet;

impl View for Quiet {
    fn note(&mut self, _: &str) {}
    fn entered(&mut self, _: &str) {}
    fn exited(&mut self, _: &str, _: time::Duration, _: bool) {}
    fn map_progress(&mut self, _: &str, _: i64, _: i64, _: i64) {}
    fn task_failed(&mut self, _: &str, _: &str, _: &str) {}
    fn finished(&mut self, _: Option<&str>) {}
}

/// Plain lines on stdout (not a terminal: logs, CI, pipes).
#[derive(Default)]
pub struct Lines {
    last_progress: HashMap<String, (i64, i64, i64)>,
}

impl View for Lines {
    fn note(&mut self, line: &str) {
        println!("{line}");
    }
    fn entered(&mut self, state: &str) {
        println!("{state}: started");
    }
    fn exited(&mut self, state: &str, d: time::Duration, failed: bool) {
        if failed {
            println!("{state}: failed after {}", took(d));
        } else {
            println!("{state}: done in {}", took(d));
        }
    }
    fn map_progress(&mut self, state: &str, done: i64, total: i64, failed: i64) {
        if self.last_progress.insert(state.to_owned(), (done, total, failed)) != Some((done, total, failed)) {
            let failed = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
            println!("{state}: {done}/{total} items{failed}");
        }
    }
    fn task_failed(&mut self, state: &str, error: &str, cause: &str) {
        println!("{state}: {error}: {}", one_line(cause, 300));
    }
    fn finished(&mut self, _: Option<&str>) {}
}

/// One indicatif line per state, live (stdout is a terminal).
pub struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()), bars: HashMap::new() }
    }
    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template).expect("valid template").progress_chars("=> ")
    }
}

impl Default for Bars {
    fn default() -> Bars {
        Bars::new()
    }
}

impl View for Bars {
    fn note(&mut self, line: &str) {
        // A line of its own among the bars (text printed beside a
        // MultiProgress can be drawn over when it redraws).
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(Bars::style("{msg}"));
        bar.finish_with_message(line.to_owned());
    }
    fn entered(&mut self, state: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(Bars::style("{spinner:.cyan} {prefix:16} {elapsed:>4} {msg}"));
        bar.set_prefix(state.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.insert(state.to_owned(), bar);
    }
    fn exited(&mut self, state: &str, d: time::Duration, failed: bool) {
        if let Some(bar) = self.bars.get(state) {
            if failed {
                bar.set_style(Bars::style("✗ {prefix:16} {msg}"));
                bar.abandon_with_message(format!("failed after {}: {}", took(d), bar.message()));
                return;
            }
            bar.set_style(Bars::style("✓ {prefix:16} {msg}"));
            let detail = match bar.length() {
                Some(total) if total > 0 => format!("{}/{total} items, {}", bar.position(), took(d)),
                _ => took(d),
            };
            bar.finish_with_message(detail);
        }
    }
    fn map_progress(&mut self, state: &str, done: i64, total: i64, failed: i64) {
        if let Some(bar) = self.bars.get(state) {
            bar.set_style(Bars::style("{spinner:.cyan} {prefix:16} {elapsed:>4} [{bar:30}] {pos}/{len} items {msg}"));
            bar.set_length(total.max(0) as u64);
            bar.set_position(done.max(0) as u64);
            bar.set_message(if failed > 0 { format!("{failed} failed") } else { String::new() });
        }
    }
    fn task_failed(&mut self, state: &str, error: &str, cause: &str) {
        if let Some(bar) = self.bars.get(state) {
            bar.set_message(format!("{error}: {}", one_line(cause, 60)));
        }
    }
    fn finished(&mut self, failed_state: Option<&str>) {
        for (state, bar) in &self.bars {
            if bar.is_finished() {
                continue;
            }
            if Some(state.as_str()) == failed_state || state == "Failed" {
                bar.set_style(Bars::style("✗ {prefix:16} {msg}"));
                bar.abandon();
            } else {
                bar.set_style(Bars::style("  {prefix:16} {msg}"));
                bar.finish();
            }
        }
    }
}

/// The live display for a command: bars on a terminal, lines otherwise, nothing for `--json`.
pub fn view_for(json: bool) -> Box<dyn View> {
    use std::io::IsTerminal;
    if json {
        Box::new(Quiet)
    } else if std::io::stdout().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::default())
    }
}

/// What the history says, read as it grows.
#[derive(Default)]
struct Walk {
    last_id: i64,
    /// The state entered last, with when (the parent's states run one at a time).
    current: Option<(String, OffsetDateTime)>,
    /// A map run in progress: (state, map run ARN).
    map_run: Option<(String, String)>,
    /// Task failures in order: (state, error, cause).
    task_failures: Vec<(Option<String>, String, String)>,
    /// Every state entered, in order.
    entered: Vec<String>,
    /// The current state's last task failed.
    current_failed: bool,
    closed: Option<(String, Option<String>, Option<String>)>,
}

fn event_type(e: &HistoryEvent) -> &str {
    e.r#type().as_str()
}

impl Walk {
    /// Take in one event; map runs that just ended are returned to be counted.
    fn event(&mut self, e: &HistoryEvent, view: &mut dyn View) -> Option<(String, String)> {
        self.last_id = e.id();
        let at = time_of(e.timestamp());
        let t = event_type(e);
        let current = self.current.as_ref().map(|(s, _)| s.clone());
        // A task (or the map run) failed: (error, cause).
        let mut failed: Option<(Option<&str>, Option<&str>)> = None;
        let mut ended_map_run = None;
        if let Some(d) = e.state_entered_event_details() {
            view.entered(d.name());
            self.entered.push(d.name().to_owned());
            self.current = Some((d.name().to_owned(), at));
            self.current_failed = false;
        } else if let Some(d) = e.state_exited_event_details() {
            let since = self.current.as_ref().filter(|(s, _)| s == d.name()).map(|(_, t)| *t).unwrap_or(at);
            view.exited(d.name(), at - since, self.current_failed);
        } else if matches!(t, "LambdaFunctionSucceeded" | "TaskSucceeded") {
            self.current_failed = false;
        } else if let Some(d) = e.map_run_started_event_details() {
            if let (Some(state), Some(arn)) = (current.clone(), d.map_run_arn()) {
                self.map_run = Some((state, arn.to_owned()));
            }
        } else if matches!(t, "MapRunSucceeded" | "MapRunFailed" | "MapRunAborted") {
            if t != "MapRunSucceeded" {
                let d = e.map_run_failed_event_details();
                failed = Some((d.and_then(|d| d.error()), d.and_then(|d| d.cause())));
            }
            ended_map_run = self.map_run.take();
        } else if let Some(d) = e.lambda_function_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.lambda_function_timed_out_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.lambda_function_schedule_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.lambda_function_start_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.task_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.task_timed_out_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.task_start_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.task_submit_failed_event_details() {
            failed = Some((d.error(), d.cause()));
        } else if let Some(d) = e.execution_failed_event_details() {
            self.closed = Some(("FAILED".into(), d.error().map(str::to_owned), d.cause().map(str::to_owned)));
        } else if let Some(d) = e.execution_aborted_event_details() {
            self.closed = Some(("ABORTED".into(), d.error().map(str::to_owned), d.cause().map(str::to_owned)));
        } else if let Some(d) = e.execution_timed_out_event_details() {
            self.closed = Some(("TIMED_OUT".into(), d.error().map(str::to_owned), d.cause().map(str::to_owned)));
        } else if t == "ExecutionSucceeded" {
            self.closed = Some(("SUCCEEDED".into(), None, None));
        } else if matches!(t, "ExecutionFailed" | "ExecutionAborted" | "ExecutionTimedOut") {
            self.closed = Some((t.trim_start_matches("Execution").to_uppercase(), None, None));
        }
        if let Some((error, cause)) = failed {
            let error = error.unwrap_or("States.TaskFailed").to_owned();
            let cause = readable_cause(cause.unwrap_or(""));
            if let Some(state) = &current {
                view.task_failed(state, &error, &cause);
            }
            self.task_failures.push((current, error, cause));
            self.current_failed = true;
        }
        ended_map_run
    }

    /// The state that stopped the execution: the last task failure with the
    /// execution's error (the pipeline's Fail state repeats the failed step's
    /// error), else the last task failure outside the failure notification,
    /// else the last state entered before the Fail state.
    fn failed_state(&self, error: &str) -> Option<String> {
        let notify = |s: &Option<String>| s.as_deref() == Some("NotifyFailure");
        self.task_failures
            .iter()
            .rev()
            .find(|(s, e, _)| e == error && !notify(s))
            .or_else(|| self.task_failures.iter().rev().find(|(s, _, _)| !notify(s)))
            .and_then(|(s, _, _)| s.clone())
            .or_else(|| self.entered.iter().rev().find(|s| !matches!(s.as_str(), "NotifyFailure" | "Failed")).cloned())
    }
}

/// Reads executions of one state machine.
pub struct Executions {
    pub sfn: aws_sdk_sfn::Client,
    /// Between two looks at a running execution.
    pub poll: Duration,
}

fn sdk_error<E: std::error::Error + 'static>(what: &str, e: aws_sdk_sfn::error::SdkError<E>) -> anyhow::Error {
    anyhow!("{what}: {}", aws_sdk_sfn::error::DisplayErrorContext(&e))
}

impl Executions {
    pub fn new(sdk: &aws_config::SdkConfig) -> Executions {
        Executions { sfn: aws_sdk_sfn::Client::new(sdk), poll: Duration::from_secs(1) }
    }

    /// StartExecution with `input`; the execution's ARN.
    pub async fn start(&self, state_machine_arn: &str, name: &str, input: &Value) -> anyhow::Result<String> {
        let out = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("StartExecution on {state_machine_arn}"), e))?;
        Ok(out.execution_arn().to_owned())
    }

    /// The whole history, oldest first (without state data: small).
    async fn history(&self, arn: &str) -> anyhow::Result<Vec<HistoryEvent>> {
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(arn)
                .include_execution_data(false)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("GetExecutionHistory of {arn}"), e))?;
            events.extend(page.events().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(events);
            }
        }
    }

    async fn map_progress(&self, state: &str, map_run_arn: &str, view: &mut dyn View) -> anyhow::Result<()> {
        let run = self
            .sfn
            .describe_map_run()
            .map_run_arn(map_run_arn)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DescribeMapRun {map_run_arn}"), e))?;
        if let Some(c) = run.item_counts() {
            let done = c.succeeded() + c.failed() + c.timed_out() + c.aborted();
            view.map_progress(state, done, c.total(), c.failed() + c.timed_out() + c.aborted());
        }
        Ok(())
    }

    /// Follow an execution to its end, telling `view` what happens.
    pub async fn follow(&self, arn: &str, view: &mut dyn View) -> anyhow::Result<Outcome> {
        let mut walk = Walk::default();
        loop {
            let described = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("DescribeExecution {arn}"), e))?;
            let running = described.status() == &ExecutionStatus::Running;
            for e in self.history(arn).await? {
                if e.id() <= walk.last_id {
                    continue;
                }
                if let Some((state, map_run)) = walk.event(&e, view) {
                    self.map_progress(&state, &map_run, view).await?;
                }
            }
            if let Some((state, map_run)) = walk.map_run.clone() {
                self.map_progress(&state, &map_run, view).await?;
            }
            if !running {
                let outcome = outcome(arn, &described, Some(&walk))?;
                view.finished(outcome.failure.as_ref().and_then(|f| f.state.as_deref()));
                return Ok(outcome);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// An execution as it stands (for `history`): what started it, how it
    /// ended; the failed state is read from its history.
    pub async fn describe(&self, arn: &str) -> anyhow::Result<Outcome> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DescribeExecution {arn}"), e))?;
        let walk = if matches!(
            described.status(),
            ExecutionStatus::Failed | ExecutionStatus::Aborted | ExecutionStatus::TimedOut
        ) {
            let mut walk = Walk::default();
            for e in self.history(arn).await? {
                walk.event(&e, &mut Quiet);
            }
            Some(walk)
        } else {
            None
        };
        outcome(arn, &described, walk.as_ref())
    }

    /// The newest `n` executions of the state machine (its own, not its map runs' children).
    pub async fn recent(&self, state_machine_arn: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let mut arns = Vec::new();
        let mut token = None;
        while arns.len() < n {
            let page = self
                .sfn
                .list_executions()
                .state_machine_arn(state_machine_arn)
                .max_results((n - arns.len()).min(1000) as i32)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("ListExecutions of {state_machine_arn}"), e))?;
            arns.extend(page.executions().iter().map(|e| e.execution_arn().to_owned()));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        arns.truncate(n);
        Ok(arns)
    }

    /// The execution whose input names `key` (the staging rule's
    /// `{"trigger": "staging_upload", "key"}`), started at or after `since`;
    /// looked for until `deadline`.
    pub async fn find_by_staging_key(
        &self,
        state_machine_arn: &str,
        key: &str,
        since: OffsetDateTime,
        deadline: std::time::Instant,
    ) -> anyhow::Result<String> {
        let mut inspected = std::collections::HashSet::new();
        loop {
            let page = self
                .sfn
                .list_executions()
                .state_machine_arn(state_machine_arn)
                .max_results(50)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("ListExecutions of {state_machine_arn}"), e))?;
            for e in page.executions() {
                if time_of(e.start_date()) < since || !inspected.insert(e.execution_arn().to_owned()) {
                    continue;
                }
                let d = self
                    .sfn
                    .describe_execution()
                    .execution_arn(e.execution_arn())
                    .send()
                    .await
                    .map_err(|err| sdk_error(&format!("DescribeExecution {}", e.execution_arn()), err))?;
                let trigger = Trigger::of_input(d.input());
                if trigger.kind == "staging_upload" && trigger.key.as_deref() == Some(key) {
                    return Ok(e.execution_arn().to_owned());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(anyhow!(
                    "no execution of {state_machine_arn} with input key {key:?} started after the upload ({}): \
                     the staging rule (EventBridge, statemachine/staging-rule.json) did not start one; \
                     see `pkgrelay aws history`, or start a run with `pkgrelay aws start`",
                    clock(since)
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

fn outcome(
    arn: &str,
    d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput,
    walk: Option<&Walk>,
) -> anyhow::Result<Outcome> {
    let status = d.status().as_str().to_owned();
    let start = time_of(d.start_date());
    let stop = d.stop_date().map(time_of);
    let end = stop.unwrap_or_else(OffsetDateTime::now_utc);
    let output: Option<Value> = match d.output() {
        Some(text) => Some(serde_json::from_str(text).with_context(|| format!("the output of {arn} is not JSON"))?),
        None => None,
    };
    let summary_document = output.as_ref().and_then(|o| o.get("summary")).cloned();
    let summary = match &summary_document {
        Some(s) => Some(
            serde_json::from_value::<Summary>(s.clone())
                .with_context(|| format!("the output of {arn}: $.summary is not the pipeline's summary"))?,
        ),
        None => None,
    };
    let nothing_to_do = status == "SUCCEEDED"
        && summary.as_ref().is_none_or(|s| s.publish.is_none())
        && output.as_ref().and_then(|o| o.pointer("/check/proceed")).and_then(Value::as_bool) == Some(false);
    let failure = match status.as_str() {
        "FAILED" | "ABORTED" | "TIMED_OUT" => {
            let closed = walk.and_then(|w| w.closed.clone());
            let error = d
                .error()
                .map(str::to_owned)
                .or_else(|| closed.as_ref().and_then(|c| c.1.clone()))
                .unwrap_or_else(|| if status == "TIMED_OUT" { "States.Timeout".into() } else { status.clone() });
            let cause = d.cause().map(str::to_owned).or_else(|| closed.and_then(|c| c.2)).unwrap_or_default();
            Some(Failure { state: walk.and_then(|w| w.failed_state(&error)), error, cause: readable_cause(&cause) })
        }
        _ => None,
    };
    Ok(Outcome {
        execution_arn: arn.to_owned(),
        console_url: console_url(arn),
        status,
        start,
        stop,
        duration_seconds: (end - start).as_seconds_f64(),
        trigger: Trigger::of_input(d.input()),
        summary_document,
        summary,
        nothing_to_do,
        failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_from_inputs() {
        assert_eq!(Trigger::of_input(Some(r#"{"trigger": "schedule"}"#)).to_string(), "schedule");
        assert_eq!(
            Trigger::of_input(Some(r#"{"trigger": "staging_upload", "key": "staging/kiro-repo_1.1_all.deb"}"#))
                .to_string(),
            "staging upload staging/kiro-repo_1.1_all.deb"
        );
        assert_eq!(Trigger::of_input(Some(r#"{"force_rebuild": true}"#)).to_string(), "manual (force rebuild)");
        assert_eq!(Trigger::of_input(Some("{}")).to_string(), "manual");
        assert_eq!(Trigger::of_input(None).to_string(), "manual");
    }

    #[test]
    fn console_url_names_the_region_of_the_execution() {
        assert_eq!(
            console_url("arn:aws:states:eu-west-1:123456789012:execution:pkgrelay-dev-pipeline:x"),
            "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:123456789012:execution:pkgrelay-dev-pipeline:x"
        );
    }

    #[test]
    fn lambda_causes_are_read_for_their_message() {
        assert_eq!(
            readable_cause(
                r#"{"errorMessage": "AccessDenied: no", "errorType": "InternalError", "requestId": "r", "stackTrace": []}"#
            ),
            "AccessDenied: no"
        );
        assert_eq!(readable_cause("plain text"), "plain text");
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(took(time::Duration::milliseconds(830)), "0.8s");
        assert_eq!(took(time::Duration::seconds(42)), "42s");
        assert_eq!(took(time::Duration::seconds(184)), "3m 04s");
        assert_eq!(took(time::Duration::seconds(3720)), "1h 02m");
    }
}
