//! The Lambda shell around a core step: JSON logs, clients built once per cold
//! start, the event envelope, and errors named for Step Functions.
//!
//! Every function binary is `main() { lambda::run(Needs::…, step).await }`.
//! Events arrive as `{"payload": <step input>, "execution_id": "<arn>"}` (the
//! state machine adds the execution id so that every log line carries it); a
//! bare step input is accepted too, for invocations from the console.
//!
//! `<binary> --invoke` runs one event from stdin instead of polling the Lambda
//! runtime API: the result JSON goes to stdout, or on failure
//! `{"errorType", "errorMessage"}` with exit status 1. The tests execute the
//! state machine with an ASL interpreter whose Lambda tasks run exactly this.

use crate::env::{FunctionEnv, Needs};
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

/// Split an event into the step input and the execution id, if any.
pub fn unwrap_event(event: Value) -> (Value, Option<String>) {
    match event {
        Value::Object(mut map) if map.contains_key("payload") => {
            let execution_id = map.get("execution_id").and_then(Value::as_str).map(str::to_owned);
            (map.remove("payload").unwrap_or(Value::Null), execution_id)
        }
        other => (other, None),
    }
}

fn diagnostic(e: &StepError) -> Diagnostic {
    Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
}

/// Decode the input, run the step inside a span naming the execution, encode the output.
async fn handle<I, O, F, Fut>(
    ctx: Arc<Context>,
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
    let (payload, execution_id) = unwrap_event(event);
    let span = tracing::info_span!("step", step, execution_id = execution_id.as_deref().unwrap_or("-"), request_id);
    async move {
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
    let ctx = match FunctionEnv::from_env() {
        Ok(env) => env.context(needs).await,
        Err(e) => Err(e),
    };
    let ctx = match ctx {
        Ok(ctx) => Arc::new(ctx),
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
        match handle(ctx, step, event, "local", &f).await {
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
        let (ctx, f) = (ctx.clone(), f.clone());
        async move { handle(ctx, step, event.payload, &event.context.request_id, f.as_ref()).await }
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
        let (p, id) = unwrap_event(serde_json::json!({"payload": {"force_rebuild": true}, "execution_id": "arn:x"}));
        assert_eq!(p, serde_json::json!({"force_rebuild": true}));
        assert_eq!(id.as_deref(), Some("arn:x"));
        let (p, id) = unwrap_event(serde_json::json!({"force_rebuild": true}));
        assert_eq!(p, serde_json::json!({"force_rebuild": true}));
        assert_eq!(id, None);
    }
}
