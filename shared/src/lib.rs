//! pkgrelay core: everything the `pkgrelay` CLI and the five Lambda functions share.
//!
//! The crate is organised by what things are, not by where they run:
//! - [`model`]: the records that flow between steps and into the store;
//! - [`config`]: `config/repository.yaml` and `config/packages/*.yaml`, validated;
//! - [`sources`]: where candidates come from (Kiro metadata, staging uploads, GitHub releases);
//! - [`fetch`]: streaming HTTP downloads with retries and one-pass digests, held to hosts and limits;
//! - [`limits`]: what upstream may make a run take (bytes, time, unpacked sizes), and where each is set;
//! - [`deb`]: reading and building Debian binary packages;
//! - [`apt`]: rendering the APT index (Packages, Release, index.html);
//! - [`brew`]: the Homebrew bottle mirror's rules (bottle names, images, manifests) and planning from the formulae API;
//! - [`sign`]: OpenPGP signing of Release files;
//! - [`notify`]: a run's notification (SNS JSON) as chat text;
//! - [`media`]: cloud media sync (GoPro): the `MediaProvider` trait, credentials, items, statuses, object keys;
//! - [`store`]: the package store (`PackageStore`), SQLite locally;
//! - [`blob`]: object storage (`ObjectStore`), a directory locally;
//! - [`steps`]: the five pipeline steps as plain async functions;
//! - [`context`]: the one place a step's context is built from config and backends;
//! - [`retention`]: when objects no published index lists any more may leave (the ledger publish keeps);
//! - [`pipeline`]: the in-process runner that chains the steps like the state machine does;
//! - [`migrate`]: the one-time migration of the earlier single-package system's store.
//!
//! Nothing here imports an AWS SDK: AWS backends implement the traits in their own crate.

pub mod apt;
pub mod blob;
pub mod brew;
pub mod brew_import;
pub mod config;
pub mod context;
pub mod deb;
pub mod digest;
pub mod fetch;
pub mod limits;
pub mod local;
pub mod media;
pub mod migrate;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod repository;
pub mod retention;
pub mod sign;
pub mod sources;
pub mod steps;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod version;
