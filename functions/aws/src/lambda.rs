//! The Lambda shell around a core step: JSON logs, clients built once per cold
//! start, the event envelope, and errors named for Step Functions.
//!
//! Every function binary is `main() { lambda::run(Needs::…, step).await }`
//! (`lambda::run_media(step)` for the media pipeline's four; one shell,
//! [`serve`], under both and under the Slack notifier's `run_plain`).
//! Events arrive as `{"payload": <step input>, "execution_id": "<arn>"}` (the
//! state machine adds the execution id so that every log line carries it); a
//! bare step input is accepted too, for invocations from the console. An
//! envelope may name the repository of `repositories.yaml` it is for
//! (`"repository": "<name>"`; absent: the APT repository): one function
//! serves every repository, each with the context `pkgrelay_core::context`
//! builds for it, made on its first invocation and kept.
//!
//! `<binary> --invoke` runs one event from stdin instead of polling the Lambda
//! runtime API: the result JSON goes to stdout, or on failure
//! `{"errorType", "errorMessage"}` with exit status 1. The tests execute the
//! state machine with an ASL interpreter whose Lambda tasks run exactly this.

use crate::env::{Connection, FunctionEnv, Needs};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use pkgrelay_core::media::steps::{MediaContext, MediaStepError};
use pkgrelay_core::steps::{Context, StepError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// One JSON object per line on stderr (CloudWatch Logs), with the span fields
/// (step, execution id, request id) on every event. Secrets never reach a log:
/// the signing key's Debug shows only its fingerprint.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PKGRELAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

/// An event taken apart.
#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub payload: Value,
    pub execution_id: Option<String>,
    /// The repository it is for (`None`: the APT repository).
    pub repository: Option<String>,
}

/// Split an event into the step input, the execution id and the repository.
pub fn unwrap_event(event: Value) -> Envelope {
    match event {
        Value::Object(mut map) if map.contains_key("payload") => {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            Envelope {
                execution_id: text(map.get("execution_id")),
                repository: text(map.get("repository")),
                payload: map.remove("payload").unwrap_or(Value::Null),
            }
        }
        other => Envelope { payload: other, execution_id: None, repository: None },
    }
}

/// The contexts of the repositories this function served so far.
struct Contexts {
    connection: Connection,
    made: std::sync::Mutex<std::collections::HashMap<Option<String>, Arc<Context>>>,
}

impl Contexts {
    fn get(&self, repository: Option<&str>) -> anyhow::Result<Arc<Context>> {
        // The state machine names every repository, the APT one too (its
        // default input says `apt`); that one is the context made at cold start.
        let repository = repository.filter(|name| !self.connection.is_apt(name));
        let key = repository.map(str::to_owned);
        if let Some(ctx) = self.made.lock().unwrap().get(&key) {
            return Ok(ctx.clone());
        }
        let ctx = Arc::new(self.connection.context(repository)?);
        self.made.lock().unwrap().insert(key, ctx.clone());
        Ok(ctx)
    }
}

/// A step's error, named for Step Functions (`errorType`, what `ErrorEquals` matches).
pub trait NamedError: std::fmt::Display {
    fn error_type(&self) -> &'static str;
}

impl NamedError for StepError {
    fn error_type(&self) -> &'static str {
        StepError::error_type(self)
    }
}

impl NamedError for MediaStepError {
    fn error_type(&self) -> &'static str {
        MediaStepError::error_type(self)
    }
}

/// What an invocation brings besides its event.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// When the function must have answered (Lambda's deadline; under
    /// `--invoke`, `PKGRELAY_INVOKE_TIMEOUT_SECS` from the start, if set).
    pub deadline: Option<Instant>,
}

/// The deadline Lambda gives in milliseconds since the epoch, as an [`Instant`].
fn deadline_from_epoch_ms(ms: u64) -> Option<Instant> {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let left = at.duration_since(SystemTime::now()).ok().filter(|_| ms > 0)?;
    Some(Instant::now() + left)
}

/// Whether this process runs one event from stdin (`--invoke`).
pub fn invoke_once() -> bool {
    std::env::args().any(|a| a == "--invoke")
}

/// Decode the envelope and the input, run `call` inside a span naming the
/// execution, encode the output or name the error.
async fn handle_step<I, O, E, C, Fut>(
    step: &'static str,
    event: Value,
    invocation: &Invocation,
    call: C,
) -> Result<Value, Diagnostic>
where
    I: DeserializeOwned,
    O: Serialize,
    E: NamedError,
    C: FnOnce(Envelope, I) -> Fut,
    Fut: Future<Output = Result<O, E>>,
{
    let Envelope { payload, execution_id, repository } = unwrap_event(event);
    let span = tracing::info_span!(
        "step",
        step,
        execution_id = execution_id.as_deref().unwrap_or("-"),
        repository = repository.as_deref().unwrap_or("-"),
        request_id = invocation.request_id.as_str()
    );
    async move {
        let input: I = serde_json::from_value(payload).map_err(|e| Diagnostic {
            error_type: "InvalidInput".into(),
            error_message: format!("{step}: the event is not a valid input: {e}"),
        })?;
        match call(Envelope { payload: Value::Null, execution_id, repository }, input).await {
            Ok(out) => serde_json::to_value(out).map_err(|e| Diagnostic {
                error_type: "InternalError".into(),
                error_message: format!("{step}: cannot encode the result: {e}"),
            }),
            Err(e) => {
                tracing::error!(error_type = e.error_type(), "{step} failed: {e}");
                Err(Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() })
            }
        }
    }
    .instrument(span)
    .await
}

/// The shell every function runs in: JSON logs; a state made once per cold
/// start by `init` (a failure fails every invocation with its reason, said
/// once); then each event to `handler`, from the Lambda runtime API, or once
/// from stdin with `--invoke` (the result JSON on stdout, or
/// `{"errorType", "errorMessage"}` and exit status 1).
async fn serve<S, Init, H, Fut>(name: &'static str, init: Init, handler: H) -> Result<(), lambda_runtime::Error>
where
    S: Send + Sync + 'static,
    Init: Future<Output = anyhow::Result<S>>,
    H: Fn(Arc<S>, Value, Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, Diagnostic>> + Send,
{
    init_logging();
    let invoke_once = invoke_once();
    let state = match init.await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(function = name, "cannot start: {e:#}");
            if invoke_once {
                print_error("InternalError", &format!("{name}: cannot start: {e:#}"));
                std::process::exit(1);
            }
            return Err(e.into());
        }
    };
    if invoke_once {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let deadline = std::env::var("PKGRELAY_INVOKE_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|secs| Instant::now() + Duration::from_secs(secs));
        match handler(state, event, Invocation { request_id: "local".into(), deadline }).await {
            Ok(v) => println!("{v}"),
            Err(d) => {
                print_error(&d.error_type, &d.error_message);
                std::process::exit(1);
            }
        }
        return Ok(());
    }
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (state, handler) = (state.clone(), handler.clone());
        let invocation = Invocation {
            request_id: event.context.request_id.clone(),
            deadline: deadline_from_epoch_ms(event.context.deadline),
        };
        async move { handler(state, event.payload, invocation).await }
    }))
    .await
}

/// Run `f` as the Lambda function `step` of the package pipeline (or once, with `--invoke`).
pub async fn run<I, O, F, Fut>(step: &'static str, needs: Needs, f: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Arc<Context>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send,
{
    // The APT repository's context is made at once: a cold start that
    // cannot build one fails loudly before taking any event.
    let init = async move {
        let connection = FunctionEnv::from_env()?.connect(needs).await?;
        let contexts = Contexts { connection, made: Default::default() };
        contexts.get(None)?;
        Ok(contexts)
    };
    let f = Arc::new(f);
    serve(step, init, move |contexts: Arc<Contexts>, event, invocation| {
        let f = f.clone();
        async move {
            handle_step(step, event, &invocation, |envelope, input: I| async move {
                let ctx = contexts.get(envelope.repository.as_deref()).map_err(StepError::Internal)?;
                f(ctx, input).await
            })
            .await
        }
    })
    .await
}

/// Run `f` as the Lambda function `step` of the media pipeline (statemachine/media.md):
/// the same shell as [`run`], over the [`MediaContext`] made once from the
/// media environment ([`crate::media::MediaEnv`]) and given each invocation's
/// execution and deadline.
pub async fn run_media<I, O, F, Fut>(step: &'static str, f: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(MediaContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, MediaStepError>> + Send,
{
    // Under --invoke stdout is the result: the metric line goes to stderr (the log).
    let init = async { crate::media::MediaEnv::from_env()?.connect(invoke_once()).await };
    let f = Arc::new(f);
    serve(step, init, move |base: Arc<MediaContext>, event, invocation| {
        let f = f.clone();
        async move {
            let deadline = invocation.deadline;
            let request_id = invocation.request_id.clone();
            handle_step(step, event, &invocation, |envelope, input: I| async move {
                let execution = envelope.execution_id.unwrap_or(request_id);
                f(base.for_run(&execution, deadline), input).await
            })
            .await
        }
    })
    .await
}

/// Run a function that is not a pipeline step (the Slack notifier): the
/// same shell as [`run`], a state made once per cold start by `init`, the
/// raw event handed to `f`; a failure is an `InternalError` with its message.
pub async fn run_plain<S, I, F, Fut>(name: &'static str, init: I, f: F) -> Result<(), lambda_runtime::Error>
where
    S: Send + Sync + 'static,
    I: Future<Output = anyhow::Result<S>>,
    F: Fn(Arc<S>, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Value>> + Send + 'static,
{
    let f = Arc::new(f);
    serve(name, init, move |state, event, invocation| {
        let span = tracing::info_span!("function", function = name, request_id = invocation.request_id.as_str());
        let call = f(state, event);
        async move {
            call.await.map_err(|e| {
                tracing::error!(function = name, "failed: {e:#}");
                Diagnostic { error_type: "InternalError".into(), error_message: format!("{name}: {e:#}") }
            })
        }
        .instrument(span)
    })
    .await
}

fn print_error(error_type: &str, message: &str) {
    println!("{}", serde_json::json!({"errorType": error_type, "errorMessage": message}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let e = unwrap_event(serde_json::json!({"payload": {"force_rebuild": true}, "execution_id": "arn:x"}));
        assert_eq!(e.payload, serde_json::json!({"force_rebuild": true}));
        assert_eq!((e.execution_id.as_deref(), e.repository), (Some("arn:x"), None));
        let e = unwrap_event(serde_json::json!({"payload": {}, "execution_id": "arn:x", "repository": "brew"}));
        assert_eq!(e.repository.as_deref(), Some("brew"));
        let e = unwrap_event(serde_json::json!({"force_rebuild": true}));
        assert_eq!(e.payload, serde_json::json!({"force_rebuild": true}));
        assert_eq!((e.execution_id, e.repository), (None, None));
    }

    #[test]
    fn deadlines_from_lambda() {
        assert_eq!(deadline_from_epoch_ms(0), None);
        let in_a_minute = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
        let left = deadline_from_epoch_ms(in_a_minute).unwrap() - Instant::now();
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60), "{left:?}");
        assert_eq!(deadline_from_epoch_ms(1_000), None, "passed already");
    }

    #[tokio::test]
    async fn a_media_step_gets_its_execution_and_names_its_error() {
        let invocation = Invocation { request_id: "r".into(), deadline: None };
        let event = serde_json::json!({"payload": {"force_refresh": true}, "execution_id": "arn:x:execution:sm:run-7"});
        let seen = handle_step("authenticate", event, &invocation, |envelope, input: serde_json::Value| async move {
            assert_eq!(input, serde_json::json!({"force_refresh": true}));
            Err::<serde_json::Value, _>(MediaStepError::LoginRequired(format!("{:?}", envelope.execution_id)))
        })
        .await
        .unwrap_err();
        assert_eq!(seen.error_type, "LoginRequired");
        assert!(seen.error_message.contains("run-7"));
        let bad = handle_step("summarize", serde_json::json!({"payload": 3}), &invocation, |_, _: Envelope2| async {
            Ok::<_, MediaStepError>(1)
        })
        .await
        .unwrap_err();
        assert_eq!(bad.error_type, "InvalidInput");
    }

    #[derive(serde::Deserialize)]
    struct Envelope2 {
        #[allow(dead_code)]
        x: u8,
    }
}
