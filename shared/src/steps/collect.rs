//! Retention inside publish: once a generation's files are live, account for
//! it in the suite's ledger ([`crate::retention::Ledger`]) and delete what
//! is past its grace period.
//!
//! Why here, and in this order (deleting from a live repository):
//!
//! - **After the plan is written, before the publication is recorded.**
//!   The new generation is what clients now fetch, so "referenced by the
//!   live generation" means this one; and the suite's lease is still held,
//!   so no build-index runs meanwhile. A build never lists an artifact that
//!   is being deleted under it: build-index checks each artifact its
//!   generation lists and the live one did not (of entries recorded before
//!   the ledger's `last_deletion`), and that check cannot interleave with
//!   these deletes.
//! - **The ledger advances on every publish, deletes only on a clean one.**
//!   A run with failures (a source that could not be asked, a candidate that
//!   failed) may have left the index incomplete; it deletes nothing, but its
//!   generation still went live, and the ledger must hear of it or its
//!   times would be wrong.
//! - **Deletes before the ledger is written.** The ledger is written once
//!   before the first delete, saying only that deletion begins
//!   (`last_deletion`, which build-index's check relies on), and once after,
//!   without what was deleted. A crash in between leaves the deleted keys in
//!   the ledger: deleted again (a no-op) next time. Forgetting them first
//!   would lose them (a leak). A ledger written by a publish that then
//!   fails to record itself accounts through a generation that never
//!   became "live" in the store: the next publish sees the gap and restarts
//!   every pending grace period ([`crate::retention::Ledger::advance`]).
//! - **Only write-once objects.** Whatever a manifest or the ledger says, a
//!   key the format does not call immutable (a fixed name that each publish
//!   replaces: InRelease, Packages, `bottles_hash.json`, the API files) is
//!   never deleted, nor anything the live generation references, nor the
//!   live manifest.
//! - **Bounded.** At most [`MAX_DELETES`] deletions per publish (publish has
//!   minutes on Lambda); the rest wait for the next one and are counted as
//!   deferred. A failed delete never fails the publish: the generation is
//!   live, and the key stays in the ledger.

use super::Context;
use crate::blob::{BlobError, Caching, WriteMode};
use crate::model::Publication;
use crate::repository::Manifest;
use crate::retention::{Generation, Ledger, RetentionReport, ledger_key};

/// Deletions per publish, objects and manifests together.
pub const MAX_DELETES: usize = 1000;
/// Deletions at once.
const DELETE_CONCURRENCY: usize = 8;
/// Manifests of passed-over generations read for what they wrote (beyond,
/// only retired: what they alone wrote stays).
const PASSED_OVER_READ: u64 = 20;

/// The grace period of the context's repository: the format's own (a
/// mirror's settings), else `repository.yaml`'s.
pub fn grace(ctx: &Context) -> std::time::Duration {
    ctx.format.retention_grace().unwrap_or_else(|| ctx.config.repository.retention.grace())
}

/// Account for `manifest` (generation `current`, whose files were just
/// written) replacing `previous` (the live generation and its manifest, if
/// readable), and delete what is due. Never fails: what goes wrong is
/// logged, and what was not deleted is deleted by a later publish.
pub(super) async fn collect(
    ctx: &Context,
    suite: &str,
    previous: Option<(&Publication, Option<&Manifest>)>,
    current_key: &str,
    manifest: &Manifest,
) -> RetentionReport {
    let grace = grace(ctx);
    let mut report = RetentionReport { grace_seconds: grace.as_secs(), ..Default::default() };
    let now = super::now().unix_timestamp();
    let key = ledger_key(suite);
    let mut ledger = match ctx.private.get_bytes(&key).await {
        Ok(bytes) => serde_json::from_slice::<Ledger>(&bytes).unwrap_or_else(|e| {
            // Starting afresh is safe: the gap restarts nothing that was
            // pending (it is forgotten: a leak, not a loss).
            tracing::warn!(ledger = %key, "retention ledger unreadable, starting a new one: {e}");
            Ledger::default()
        }),
        Err(BlobError::NotFound { .. }) => Ledger::default(),
        Err(e) => {
            // Without the ledger nothing can be accounted; the next publish
            // sees the gap and restarts the pending grace periods.
            tracing::warn!(ledger = %key, "retention skipped: the ledger cannot be read: {e}");
            report.held = Some(format!("the retention ledger {key} could not be read: {e}"));
            return report;
        }
    };

    // Generations built after the live one that never went live.
    let from = previous.map_or(1, |(p, _)| p.generation + 1);
    let mut passed_over: Vec<(u64, String, Vec<String>)> = Vec::new();
    for g in from..manifest.generation {
        let manifest_key = format!("{}/manifest.json", super::build_index::generation_prefix(suite, g));
        let references = if manifest.generation - g <= PASSED_OVER_READ {
            match ctx.private.get_bytes(&manifest_key).await {
                Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).map(|m| m.references).unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        passed_over.push((g, manifest_key, references));
    }
    let empty = Vec::new();
    let previous_generation = previous.map(|(p, m)| Generation {
        number: p.generation,
        manifest_key: &p.manifest_key,
        references: m.map_or(&empty, |m| &m.references),
    });
    let passed: Vec<Generation<'_>> =
        passed_over.iter().map(|(g, k, r)| Generation { number: *g, manifest_key: k, references: r }).collect();
    let current =
        Generation { number: manifest.generation, manifest_key: current_key, references: &manifest.references };
    ledger.advance(previous_generation, &passed, current, now);

    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let mut due = ledger.due(now, grace_secs, current);
    // The manifest of the generation replaced just now waits for the next
    // publish even with no grace at all: until this publish is recorded,
    // the store still calls that generation live, and a build reads its
    // manifest (what to reuse, what was listed).
    let just_replaced = previous.map(|(p, _)| p.generation);
    due.manifests.retain(|r| Some(r.generation) != just_replaced);
    let due_count = due.objects.len() + due.manifests.len();
    let mut deleted_objects = Vec::new();
    let mut deleted_manifests = Vec::new();
    if due_count > 0 && !manifest.clean {
        report.held = Some("the run had failures: nothing is deleted until a run without any".into());
        tracing::info!(due = due_count, "retention: the run had failures, nothing deleted");
    } else if due_count > 0 {
        use futures_util::StreamExt;
        // Names a rewrite in front of the store resolves (a mirror's flat
        // bottle names) leave its table, not the store; without such a
        // rewrite (locally) there is nothing to remove.
        let (names, objects): (Vec<String>, Vec<String>) =
            due.objects.into_iter().partition(|k| ctx.format.is_edge_name(k));
        if !names.is_empty() {
            let full: Vec<String> = names.iter().map(|k| format!("{}{k}", ctx.repository.prefix)).collect();
            match &ctx.edge_names {
                Some(table) => match table.delete(&full).await {
                    Ok(()) => {
                        tracing::info!(names = names.len(), "retention: names removed from the rewrite's table");
                        deleted_objects.extend(names);
                    }
                    Err(e) => tracing::warn!("retention: could not remove names, left for the next publish: {e}"),
                },
                None => deleted_objects.extend(names),
            }
        }
        // The format must call each object write-once; anything else is a
        // fixed name a publish replaces, never collected.
        let objects: Vec<String> = objects
            .into_iter()
            .filter(|k| {
                let immutable = ctx.format.object_meta(k).caching == Caching::Immutable;
                if !immutable {
                    tracing::error!(key = %k, "retention: not a write-once object, never deleted");
                }
                immutable
            })
            .take(MAX_DELETES)
            .collect();
        // Say so before the first delete: build-index checks the artifacts of
        // entries recorded before the last deletion, and a publish that dies
        // midway must not leave a deleted file unannounced.
        if !objects.is_empty() {
            ledger.last_deletion = Some(now);
            write_ledger(ctx, &key, &ledger).await;
        }
        let results: Vec<(String, Result<(), BlobError>)> = futures_util::stream::iter(objects)
            .map(|k| async move {
                let r = ctx.public.delete(&k).await;
                (k, r)
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .collect()
            .await;
        for (k, r) in results {
            match r {
                Ok(()) => {
                    tracing::info!(key = %k, "retention: deleted (no generation within the grace period references it)");
                    deleted_objects.push(k);
                }
                Err(e) => tracing::warn!(key = %k, "retention: could not delete, left for the next publish: {e}"),
            }
        }
        for retired in due.manifests.into_iter().take(MAX_DELETES.saturating_sub(deleted_objects.len())) {
            match ctx.private.delete(&retired.manifest_key).await {
                Ok(()) => {
                    tracing::info!(generation = retired.generation, manifest = %retired.manifest_key, "retention: manifest deleted");
                    deleted_manifests.push(retired.generation);
                }
                Err(e) => tracing::warn!(
                    manifest = %retired.manifest_key,
                    "retention: could not delete the manifest, left for the next publish: {e}"
                ),
            }
        }
    }
    ledger.forget(&deleted_objects, &deleted_manifests);
    report.deleted = deleted_objects.len();
    report.deleted_generations = deleted_manifests.len();
    report.deferred = due_count - report.deleted - report.deleted_generations;
    // What is left and not past its grace period (the rest is `deferred`).
    let still_due = ledger.due(now, grace_secs, current);
    report.in_grace = ledger.unreferenced.len().saturating_sub(still_due.objects.len());
    report.generations_in_grace = ledger.retired.len().saturating_sub(still_due.manifests.len());
    write_ledger(ctx, &key, &ledger).await;
    tracing::info!(
        deleted = report.deleted,
        deleted_generations = report.deleted_generations,
        in_grace = report.in_grace,
        generations_in_grace = report.generations_in_grace,
        deferred = report.deferred,
        "retention"
    );
    report
}

/// Write the ledger; a failure is logged (the next publish sees the gap and
/// restarts the pending grace periods: later deletion, never earlier).
async fn write_ledger(ctx: &Context, key: &str, ledger: &Ledger) {
    match serde_json::to_vec(ledger) {
        Ok(json) => {
            if let Err(e) = ctx.private.put_bytes(key, json, WriteMode::Overwrite).await {
                tracing::warn!(ledger = %key, "retention ledger not written (the next publish restarts pending grace periods): {e}");
            }
        }
        Err(e) => tracing::warn!(ledger = %key, "retention ledger not serialisable: {e}"),
    }
}
