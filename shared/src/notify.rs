//! What a run's notifications say to people in a chat channel (Slack's
//! incoming webhooks take `{"text": …}`): the state machine publishes JSON
//! to SNS (statemachine/README.md: the start notice, the summary, the
//! failure's `{Error, Cause}`); this turns one into a few readable lines.
//! Pure: the Lambda function that posts it lives in pkgrelay-aws.

use serde_json::Value;

/// Slack shows at most about 40,000 characters of a message; a failure's
/// cause can be long, so each field is cut well below that.
const FIELD_MAX: usize = 1_000;

fn cut(s: &str) -> String {
    if s.chars().count() <= FIELD_MAX {
        return s.to_owned();
    }
    let head: String = s.chars().take(FIELD_MAX).collect();
    format!("{head}… ({} characters)", s.chars().count())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(cut(s)),
        other => Some(cut(&other.to_string())),
    }
}

/// The message for `subject` (`pkgrelay brew: published`) and the SNS
/// message body (JSON, or any text).
pub fn chat_text(subject: &str, message: &str) -> String {
    let mut lines = vec![format!("*{}*", cut(subject))];
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(message) else {
        lines.push(cut(message));
        return lines.join("\n");
    };
    let field = |k: &str| doc.get(k).and_then(text);
    // A failure: {Error, Cause}.
    if let Some(error) = field("Error") {
        lines.push(format!("error: {error}"));
        if let Some(cause) = field("Cause") {
            lines.push(format!("cause: {cause}"));
        }
        return lines.join("\n");
    }
    if let Some(trigger) = field("trigger") {
        let forced = doc.get("force_rebuild").and_then(Value::as_bool) == Some(true);
        lines.push(format!("trigger: {trigger}{}", if forced { " (force rebuild)" } else { "" }));
    }
    if let Some(publish) = doc.get("publish").filter(|p| p.is_object()) {
        let generation = publish.get("generation").and_then(text).unwrap_or_else(|| "?".into());
        let packages = publish.get("packages").and_then(text).unwrap_or_else(|| "?".into());
        let url = publish.get("url").and_then(text).unwrap_or_default();
        lines.push(format!("generation {generation}: {packages} packages at {url}"));
    }
    if let Some(items) = doc.get("items").filter(|i| i.is_object()) {
        let count = |k: &str| items.get(k).and_then(Value::as_u64).unwrap_or(0);
        lines.push(format!(
            "new: {}, already present: {}, failed: {}",
            count("inserted_count"),
            count("already_present_count"),
            count("failed_count")
        ));
        for f in items.get("failed").and_then(Value::as_array).into_iter().flatten().take(5) {
            let id = f.get("package_id").and_then(text).unwrap_or_default();
            let error = f.get("error").and_then(text).unwrap_or_default();
            lines.push(format!("  failed {id}: {error}"));
        }
    }
    if let Some(failures) = doc.get("source_failures").and_then(Value::as_array).filter(|f| !f.is_empty()) {
        lines.push(format!("sources that failed: {}", failures.len()));
    }
    if let Some(n) = doc.get("staging_rejected_count").and_then(Value::as_u64).filter(|n| *n > 0) {
        lines.push(format!("staged uploads refused: {n} (staging/rejected/)"));
    }
    if let Some(execution) = field("execution") {
        lines.push(format!("execution: {execution}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_failures_and_plain_text() {
        let summary = serde_json::json!({
            "execution": "arn:aws:states:us-east-1:1:execution:p:x",
            "repository": "brew",
            "trigger": "schedule",
            "force_rebuild": false,
            "status": "published",
            "publish": {"generation": 3, "packages": 40, "url": "https://d.example/brew"},
            "items": {"inserted_count": 2, "already_present_count": 0, "failed_count": 1,
                      "failed": [{"package_id": "wget#1.0#sonoma", "error": "TransientError"}]},
            "source_failures": [],
        });
        let t = chat_text("pkgrelay brew: published", &summary.to_string());
        assert!(t.starts_with("*pkgrelay brew: published*\ntrigger: schedule\n"), "{t}");
        assert!(t.contains("generation 3: 40 packages at https://d.example/brew"), "{t}");
        assert!(t.contains("new: 2, already present: 0, failed: 1\n  failed wget#1.0#sonoma: TransientError"), "{t}");
        assert!(t.ends_with("execution: arn:aws:states:us-east-1:1:execution:p:x"), "{t}");

        let failure = serde_json::json!({"Error": "InternalError", "Cause": "x".repeat(5000)});
        let t = chat_text("pkgrelay apt: pipeline failed", &failure.to_string());
        assert!(t.contains("error: InternalError\ncause: xxx"), "{t}");
        assert!(t.ends_with("(5000 characters)"), "{}", &t[t.len() - 40..]);

        assert_eq!(chat_text("s", "not json"), "*s*\nnot json");
    }
}
