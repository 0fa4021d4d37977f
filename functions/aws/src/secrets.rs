//! The archive signing key from Secrets Manager: an armored OpenPGP secret key
//! stored as the secret's string value. Read once per cold start; never logged.

use anyhow::{Context as _, anyhow};
use pkgrelay_core::sign::SigningKey;

pub async fn signing_key(client: &aws_sdk_secretsmanager::Client, secret_arn: &str) -> anyhow::Result<SigningKey> {
    let out = client.get_secret_value().secret_id(secret_arn).send().await.map_err(|e| {
        anyhow!("reading signing key secret {secret_arn}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))
    })?;
    let text = out
        .secret_string()
        .ok_or_else(|| anyhow!("signing key secret {secret_arn} has no string value (put the armored key in it)"))?;
    if text.trim().is_empty() {
        return Err(anyhow!("signing key secret {secret_arn} is empty: put an armored OpenPGP secret key in it"));
    }
    let key = crate::env::key_from_armored(text).with_context(|| format!("signing key secret {secret_arn}"))?;
    tracing::info!(fingerprint = %key.fingerprint(), "signing key loaded");
    Ok(key)
}
