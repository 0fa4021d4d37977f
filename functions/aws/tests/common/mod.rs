//! What the backends' tests share: the emulator's endpoint (`tests/run` starts
//! moto and tests/localaws and exports it) and the operator's SDK configuration.

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub fn endpoint() -> String {
    match std::env::var("PKGRELAY_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => panic!(
            "PKGRELAY_AWS_ENDPOINT is not set: these tests need the moto emulator. \
             Run them through tests/run, which starts moto and tests/localaws and sets it."
        ),
    }
}

/// The operator's (account administrator's) key: IAM is the pipeline tests' subject, not these.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIAPKGRELAYTESTONLY",
            "pkgrelay/test/secret+access+key/never+logged",
            None,
            None,
            "test",
        ))
        .load()
        .await
}
