//! pkgrelay on AWS: the backends behind the core traits and the Lambda wiring.
//!
//! - [`dynamo`]: `PackageStore` on DynamoDB (packages table + per-suite record);
//! - [`s3`]: `ObjectStore` on S3 (streaming multipart upload, write-once keys);
//! - [`media_s3`]: the media bucket as `MultipartStore` (full-object CRC-64/NVME, resumable uploads);
//! - [`secrets`]: the signing key from Secrets Manager;
//! - [`kvs`]: `EdgeNames` on a CloudFront key value store (a Homebrew mirror's flat bottle names);
//! - [`slack`]: the optional Slack notifier (SNS -> an incoming webhook);
//! - [`legacy`]: the earlier system's table, for `pkgrelay migrate`;
//! - [`media`]: the media pipeline's status table (DynamoDB), credentials secret and environment;
//! - [`env`]: the functions' configuration from the environment, and the `Context`;
//! - [`lambda`]: the shell every function binary runs in.
//!
//! The five function binaries (`functions/<step>/`) only call [`lambda::run`]
//! with their core step.

pub mod dynamo;
pub mod env;
pub mod kvs;
pub mod lambda;
pub mod legacy;
pub mod media;
pub mod media_s3;
pub mod s3;
pub mod secrets;
pub mod slack;
