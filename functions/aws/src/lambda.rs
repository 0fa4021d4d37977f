//! The Lambda shell around a core step: JSON logs, clients built once per cold
//! start, the event envelope, and errors named for Step Functions.
//!
//! Every function binary is `main() { lambda::run(Needs::…, step).await }`.
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
use pkgrelay_core::steps::{Context, StepError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
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

fn diagnostic(e: &StepError) -> Diagnostic {
    Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
}

/// Decode the input, run the step inside a span naming the execution, encode the output.
async fn handle<I, O, F, Fut>(
    contexts: &Contexts,
    step: &'static str,
    event: Value,
    request_id: &str,
    f: &F,
) -> Result<Value, Diagnostic>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(Arc<Context>, I) -> Fut,
    Fut: Future<Output = Result<O, StepError>>,
{
    let Envelope { payload, execution_id, repository } = unwrap_event(event);
    let span = tracing::info_span!(
        "step",
        step,
        execution_id = execution_id.as_deref().unwrap_or("-"),
        repository = repository.as_deref().unwrap_or("-"),
        request_id
    );
    async move {
        let ctx = contexts.get(repository.as_deref()).map_err(|e| Diagnostic {
            error_type: "InternalError".into(),
            error_message: format!("{step}: {e:#}"),
        })?;
        let input: I = serde_json::from_value(payload).map_err(|e| Diagnostic {
            error_type: "InvalidInput".into(),
            error_message: format!("{step}: the event is not a valid input: {e}"),
        })?;
        match f(ctx, input).await {
            Ok(out) => serde_json::to_value(out).map_err(|e| Diagnostic {
                error_type: "InternalError".into(),
                error_message: format!("{step}: cannot encode the result: {e}"),
            }),
            Err(e) => {
                tracing::error!(error_type = e.error_type(), "{step} failed: {e}");
                Err(diagnostic(&e))
            }
        }
    }
    .instrument(span)
    .await
}

/// Run `f` as the Lambda function `step` (or once, with `--invoke`).
pub async fn run<I, O, F, Fut>(step: &'static str, needs: Needs, f: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Arc<Context>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send,
{
    init_logging();
    let invoke_once = std::env::args().any(|a| a == "--invoke");
    // The APT repository's context is made at once: a cold start that
    // cannot build one fails loudly before taking any event.
    let contexts = match FunctionEnv::from_env() {
        Ok(env) => env.connect(needs).await,
        Err(e) => Err(e),
    }
    .map(|connection| Contexts { connection, made: Default::default() })
    .and_then(|contexts| contexts.get(None).map(|_| contexts));
    let contexts = match contexts {
        Ok(contexts) => Arc::new(contexts),
        Err(e) => {
            // A cold start that cannot build its clients fails every invocation
            // with the reason; say it once, clearly.
            tracing::error!(step, "cannot start: {e:#}");
            if invoke_once {
                print_error("InternalError", &format!("{step}: cannot start: {e:#}"));
                std::process::exit(1);
            }
            return Err(e.into());
        }
    };

    if invoke_once {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match handle(&contexts, step, event, "local", &f).await {
            Ok(v) => println!("{v}"),
            Err(d) => {
                print_error(&d.error_type, &d.error_message);
                std::process::exit(1);
            }
        }
        return Ok(());
    }

    let f = Arc::new(f);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (contexts, f) = (contexts.clone(), f.clone());
        async move { handle(&contexts, step, event.payload, &event.context.request_id, f.as_ref()).await }
    }))
    .await
}

/// Run a function that is not a pipeline step (the Slack notifier): the
/// same JSON logs and `--invoke` as [`run`], a state made once per cold
/// start by `init`, the raw event handed to `f`; a failure is an
/// `InternalError` with its message.
pub async fn run_plain<S, I, F, Fut>(name: &'static str, init: I, f: F) -> Result<(), lambda_runtime::Error>
where
    S: Send + Sync + 'static,
    I: Future<Output = anyhow::Result<S>>,
    F: Fn(Arc<S>, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Value>> + Send,
{
    init_logging();
    let invoke_once = std::env::args().any(|a| a == "--invoke");
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
    let call = |state: Arc<S>, event: Value, request_id: String| {
        let span = tracing::info_span!("function", function = name, request_id);
        f(state, event).instrument(span)
    };
    if invoke_once {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match call(state, event, "local".into()).await {
            Ok(v) => println!("{v}"),
            Err(e) => {
                tracing::error!(function = name, "failed: {e:#}");
                print_error("InternalError", &format!("{name}: {e:#}"));
                std::process::exit(1);
            }
        }
        return Ok(());
    }
    let call = Arc::new(call);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (state, call) = (state.clone(), call.clone());
        async move {
            call(state, event.payload, event.context.request_id.clone()).await.map_err(|e| {
                tracing::error!(function = name, "failed: {e:#}");
                Diagnostic { error_type: "InternalError".into(), error_message: format!("{name}: {e:#}") }
            })
        }
    }))
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
}
