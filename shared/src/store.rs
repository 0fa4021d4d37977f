//! The package store: the single source of truth for what the repository holds.
//!
//! [`PackageStore`] is what the steps use; DynamoDB implements it on AWS and
//! [`SqliteStore`] on one machine. Writes are conditional: a new package id is
//! inserted, the same id with the same SHA256 is a no-op, the same id with other
//! bytes is a conflict that changes nothing. A small per-suite record holds the
//! generation counter and the published generation; a small per-source record
//! ([`SourceState`]) what a `latest_url` source last recorded.

use crate::model::{Lease, PackageEntry, Publication, Rejection, SourceState, SuiteState};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store: record {id} is unreadable: {message}")]
    Corrupt { id: String, message: String },
    /// The entry is larger than the backend can hold in one record (DynamoDB: 400 KB).
    #[error("store: {id} is {bytes} bytes as a record; the store holds records of at most {limit} bytes")]
    TooLarge { id: String, bytes: usize, limit: usize },
}

/// Outcome of a conditional insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// Same id, same SHA256: nothing to do.
    AlreadyPresent,
    /// Same id, other bytes: refused, the stored entry is kept.
    Conflict {
        existing_sha256: String,
    },
}

/// Outcome of recording a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRecord {
    Recorded,
    /// A newer (or the same) generation is already published.
    Superseded {
        published: u64,
    },
    /// The generation no longer holds the suite's lease (it ran out).
    LeaseLost,
}

/// Outcome of asking for the next generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// The new generation, which now holds the suite's lease.
    Granted(u64),
    /// Another generation holds the lease.
    Busy(Lease),
}

#[async_trait]
pub trait PackageStore: Send + Sync {
    async fn get(&self, package_id: &str) -> Result<Option<PackageEntry>, StoreError>;
    /// The entries of those of `package_ids` that exist (check-sources asks for
    /// every candidate at once: DynamoDB answers 100 keys per request).
    async fn get_many(&self, package_ids: &[String]) -> Result<Vec<PackageEntry>, StoreError> {
        let mut out = Vec::new();
        for id in package_ids {
            out.extend(self.get(id).await?);
        }
        Ok(out)
    }
    /// Conditional insert. A new entry also raises `suite`'s `recorded` mark,
    /// in the same transaction, so that the next run knows it is unpublished
    /// until a generation built after it goes live.
    async fn insert(&self, suite: &str, entry: &PackageEntry) -> Result<InsertOutcome, StoreError>;
    /// [`PackageStore::insert`] for each of `entries`, in order; a backend that
    /// can do it in one transaction does (a bulk import on SQLite: one commit).
    async fn insert_batch(&self, suite: &str, entries: &[PackageEntry]) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            out.push(self.insert(suite, entry).await?);
        }
        Ok(out)
    }
    /// Every entry, one at a time, in no particular order (a table scan):
    /// build-index renders each as it comes instead of holding the store in memory.
    async fn for_each_entry(&self, f: &mut (dyn FnMut(PackageEntry) + Send)) -> Result<(), StoreError>;
    /// Every entry, in no particular order.
    async fn all(&self) -> Result<Vec<PackageEntry>, StoreError> {
        let mut out = Vec::new();
        self.for_each_entry(&mut |e| out.push(e)).await?;
        Ok(out)
    }
    /// Every version of one package (the `package-name-index`).
    async fn versions_of(&self, package_name: &str) -> Result<Vec<PackageEntry>, StoreError>;
    async fn suite(&self, suite: &str) -> Result<SuiteState, StoreError>;
    /// Atomically increment the suite's generation counter and give the new
    /// generation the lease until `now + lease_secs` — unless another
    /// generation holds an unexpired lease.
    async fn allocate_generation(&self, suite: &str, now: i64, lease_secs: i64) -> Result<Allocation, StoreError>;
    /// Give the lease back (after a failed build); no-op unless `generation` holds it.
    async fn release_lease(&self, suite: &str, generation: u64) -> Result<(), StoreError>;
    /// Record `publication` as live and release its lease, provided its
    /// generation holds the lease and no generation at least as new is live.
    async fn record_published(&self, suite: &str, publication: &Publication) -> Result<PublishRecord, StoreError>;
    /// The per-source record of `package` (a `latest_url` source), if any.
    async fn source_state(&self, package: &str) -> Result<Option<SourceState>, StoreError>;
    /// Replace the per-source record of `state.package`. Last writer wins: two
    /// runs recording the same file write the same validators, and a record
    /// left behind by an older file only costs the next run one download
    /// (which then finds the entry already recorded and corrects the record).
    async fn record_source(&self, state: &SourceState) -> Result<(), StoreError>;
    /// Remember a refused candidate (replacing an older refusal of the same id).
    async fn record_rejection(&self, rejection: &Rejection) -> Result<(), StoreError>;
    /// The refusals of those of `package_ids` that were refused.
    async fn rejections(&self, package_ids: &[String]) -> Result<Vec<Rejection>, StoreError>;
    /// Every refusal (operators' `pkgrelay status`).
    async fn all_rejections(&self) -> Result<Vec<Rejection>, StoreError>;
    /// Forget a refusal: the next run fetches the candidate again. `false` when
    /// there was none.
    async fn clear_rejection(&self, package_id: &str) -> Result<bool, StoreError>;
}

/// [`PackageStore`] in one SQLite file (the embedded default, `.pkgrelay/state.db`).
///
/// SQLite calls are synchronous and short; the CLI runs them inline under a mutex
/// rather than on a blocking pool.
pub struct SqliteStore {
    conn: Mutex<rusqlite::Connection>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packages (
    package_id   TEXT PRIMARY KEY,
    package_name TEXT NOT NULL,
    version      TEXT NOT NULL,
    architecture TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS package_name_index ON packages (package_name, version);
CREATE TABLE IF NOT EXISTS suites (
    suite            TEXT PRIMARY KEY,
    generation       INTEGER NOT NULL DEFAULT 0,
    publication      TEXT,
    lease_generation INTEGER,
    lease_until      INTEGER,
    recorded         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sources (
    package TEXT PRIMARY KEY,
    record  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    package_id TEXT PRIMARY KEY,
    record     TEXT NOT NULL
);
";

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            rusqlite::Connection::open(path).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        // Stores written before the lease and the recorded mark existed lack their columns.
        for (column, definition) in [
            ("lease_generation", "INTEGER"),
            ("lease_until", "INTEGER"),
            ("recorded", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            let present: bool = conn
                .query_row("SELECT COUNT(*) FROM pragma_table_info('suites') WHERE name = ?1", [column], |r| r.get(0))
                .map_err(backend)?;
            if !present {
                conn.execute(&format!("ALTER TABLE suites ADD COLUMN {column} {definition}"), []).map_err(backend)?;
            }
        }
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(backend)
    }

    fn decode(id: &str, json: &str) -> Result<PackageEntry, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt { id: id.to_owned(), message: e.to_string() })
    }

    /// Every row of `sql` in turn, its first two columns (package id, JSON
    /// record) as text; `each` returns `false` to stop.
    fn each_row(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        each: &mut dyn FnMut(&str, &str) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
        let mut rows = stmt.query(args).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let text = |i| r.get_ref(i).and_then(|v| v.as_str().map_err(Into::into)).map_err(backend);
            if !each(text(0)?, text(1)?)? {
                break;
            }
        }
        Ok(())
    }

    /// Decode each row as it streams and hand it to `f`: no JSON text or
    /// entries accumulate here.
    fn query_each(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        f: &mut dyn FnMut(PackageEntry),
    ) -> Result<(), StoreError> {
        self.each_row(sql, args, &mut |id, json| {
            f(Self::decode(id, json)?);
            Ok(true)
        })
    }

    /// [`SqliteStore::query_each`] for whole-table scans: rows are read on this
    /// thread and decoded on a second one (decoding JSON is most of the work),
    /// in batches; `f` runs on the decoding thread.
    fn scan_each(&self, sql: &str, f: &mut (dyn FnMut(PackageEntry) + Send)) -> Result<(), StoreError> {
        const BATCH: usize = 256;
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(String, String)>>(4);
            let decoder = scope.spawn(move || -> Result<(), StoreError> {
                for batch in receiver {
                    for (id, json) in batch {
                        f(Self::decode(&id, &json)?);
                    }
                }
                Ok(())
            });
            let mut batch = Vec::with_capacity(BATCH);
            let read = self.each_row(sql, [], &mut |id, json| {
                batch.push((id.to_owned(), json.to_owned()));
                // A failed send: the decoder stopped at a corrupt record; it reports.
                Ok(batch.len() < BATCH || sender.send(std::mem::take(&mut batch)).is_ok())
            });
            if read.is_ok() {
                let _ = sender.send(batch);
            }
            drop(sender);
            decoder.join().map_err(|_| StoreError::Backend("the record decoder panicked".into()))??;
            read
        })
    }
}

#[async_trait]
impl PackageStore for SqliteStore {
    async fn get(&self, package_id: &str) -> Result<Option<PackageEntry>, StoreError> {
        let json: Option<String> = self.with(|c| {
            c.prepare_cached("SELECT record FROM packages WHERE package_id = ?1")?
                .query_row([package_id], |r| r.get(0))
                .optional()
        })?;
        json.map(|j| Self::decode(package_id, &j)).transpose()
    }

    async fn insert(&self, suite: &str, entry: &PackageEntry) -> Result<InsertOutcome, StoreError> {
        Ok(self.insert_batch(suite, std::slice::from_ref(entry)).await?.remove(0))
    }

    async fn insert_batch(&self, suite: &str, entries: &[PackageEntry]) -> Result<Vec<InsertOutcome>, StoreError> {
        let records: Vec<String> = entries.iter().map(serde_json::to_string).collect::<Result<_, _>>().map_err(backend)?;
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(entries.len());
            let mut inserted = 0i64;
            for (entry, json) in entries.iter().zip(&records) {
                // Cached statements: a bulk import runs these thousands of times.
                let existing: Option<String> = tx
                    .prepare_cached("SELECT sha256 FROM packages WHERE package_id = ?1")?
                    .query_row([&entry.package_id], |r| r.get(0))
                    .optional()?;
                out.push(match existing {
                    Some(sha) if sha == entry.checksums.sha256 => InsertOutcome::AlreadyPresent,
                    Some(sha) => InsertOutcome::Conflict { existing_sha256: sha },
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO packages (package_id, package_name, version, architecture, sha256, record)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                                entry.package_id,
                                entry.package_name,
                                entry.version,
                                entry.architecture,
                                entry.checksums.sha256,
                                json
                            ],
                        )?;
                        inserted += 1;
                        InsertOutcome::Inserted
                    }
                });
            }
            if inserted > 0 {
                tx.execute(
                    "INSERT INTO suites (suite, generation, recorded) VALUES (?1, 0, ?2)
                     ON CONFLICT (suite) DO UPDATE SET recorded = recorded + excluded.recorded",
                    params![suite, inserted],
                )?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    async fn for_each_entry(&self, f: &mut (dyn FnMut(PackageEntry) + Send)) -> Result<(), StoreError> {
        self.scan_each("SELECT package_id, record FROM packages", f)
    }

    async fn versions_of(&self, package_name: &str) -> Result<Vec<PackageEntry>, StoreError> {
        let mut out = Vec::new();
        self.query_each("SELECT package_id, record FROM packages WHERE package_name = ?1", [package_name], &mut |e| {
            out.push(e)
        })?;
        Ok(out)
    }

    async fn suite(&self, suite: &str) -> Result<SuiteState, StoreError> {
        type Row = (i64, Option<String>, Option<i64>, Option<i64>, i64);
        let row: Option<Row> = self.with(|c| {
            c.query_row(
                "SELECT generation, publication, lease_generation, lease_until, recorded FROM suites WHERE suite = ?1",
                [suite],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
        })?;
        let Some((generation, publication, lease_generation, lease_until, recorded)) = row else {
            return Ok(SuiteState { suite: suite.to_owned(), ..Default::default() });
        };
        let published = publication
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::Corrupt { id: format!("suite {suite}"), message: e.to_string() })?;
        let lease = match (lease_generation, lease_until) {
            (Some(g), Some(until)) => Some(Lease { generation: g as u64, until }),
            _ => None,
        };
        Ok(SuiteState { suite: suite.to_owned(), generation: generation as u64, published, lease, recorded: recorded as u64 })
    }

    async fn allocate_generation(&self, suite: &str, now: i64, lease_secs: i64) -> Result<Allocation, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let held: Option<(Option<i64>, Option<i64>)> = tx
                .query_row("SELECT lease_generation, lease_until FROM suites WHERE suite = ?1", [suite], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some((Some(generation), Some(until))) = held
                && until > now
            {
                return Ok(Allocation::Busy(Lease { generation: generation as u64, until }));
            }
            let n: i64 = tx.query_row(
                "INSERT INTO suites (suite, generation, lease_generation, lease_until) VALUES (?1, 1, 1, ?2)
                 ON CONFLICT (suite) DO UPDATE SET generation = generation + 1,
                     lease_generation = generation + 1, lease_until = excluded.lease_until
                 RETURNING generation",
                params![suite, now + lease_secs],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(Allocation::Granted(n as u64))
        })
    }

    async fn release_lease(&self, suite: &str, generation: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE suites SET lease_generation = NULL, lease_until = NULL WHERE suite = ?1 AND lease_generation = ?2",
                params![suite, generation as i64],
            )
            .map(drop)
        })
    }

    async fn record_published(&self, suite: &str, publication: &Publication) -> Result<PublishRecord, StoreError> {
        let json = serde_json::to_string(publication).map_err(backend)?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row: Option<(Option<String>, Option<i64>)> = tx
                .query_row("SELECT publication, lease_generation FROM suites WHERE suite = ?1", [suite], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let (current, lease) = row.unwrap_or((None, None));
            let published =
                current.and_then(|p| serde_json::from_str::<Publication>(&p).ok()).map(|p| p.generation).unwrap_or(0);
            if published >= publication.generation {
                return Ok(PublishRecord::Superseded { published });
            }
            if lease != Some(publication.generation as i64) {
                return Ok(PublishRecord::LeaseLost);
            }
            tx.execute(
                "UPDATE suites SET publication = ?2, lease_generation = NULL, lease_until = NULL WHERE suite = ?1",
                params![suite, json],
            )?;
            tx.commit()?;
            Ok(PublishRecord::Recorded)
        })
    }

    async fn source_state(&self, package: &str) -> Result<Option<SourceState>, StoreError> {
        let json: Option<String> = self.with(|c| {
            c.query_row("SELECT record FROM sources WHERE package = ?1", [package], |r| r.get(0)).optional()
        })?;
        json.map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| StoreError::Corrupt { id: format!("source {package}"), message: e.to_string() })
    }

    async fn record_source(&self, state: &SourceState) -> Result<(), StoreError> {
        let json = serde_json::to_string(state).map_err(backend)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO sources (package, record) VALUES (?1, ?2)
                 ON CONFLICT (package) DO UPDATE SET record = excluded.record",
                params![state.package, json],
            )
            .map(drop)
        })
    }
    async fn record_rejection(&self, rejection: &Rejection) -> Result<(), StoreError> {
        let json = serde_json::to_string(rejection).map_err(backend)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO rejections (package_id, record) VALUES (?1, ?2)
                 ON CONFLICT (package_id) DO UPDATE SET record = excluded.record",
                params![rejection.package_id, json],
            )
            .map(drop)
        })
    }

    async fn rejections(&self, package_ids: &[String]) -> Result<Vec<Rejection>, StoreError> {
        let mut out = Vec::new();
        for id in package_ids {
            let json: Option<String> = self.with(|c| {
                c.query_row("SELECT record FROM rejections WHERE package_id = ?1", [id], |r| r.get(0)).optional()
            })?;
            if let Some(json) = json {
                out.push(serde_json::from_str(&json).map_err(|e| StoreError::Corrupt { id: id.clone(), message: e.to_string() })?);
            }
        }
        Ok(out)
    }

    async fn all_rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let mut out = Vec::new();
        self.each_row("SELECT package_id, record FROM rejections ORDER BY package_id", [], &mut |id, json| {
            out.push(serde_json::from_str(json).map_err(|e| StoreError::Corrupt { id: id.to_owned(), message: e.to_string() })?);
            Ok(true)
        })?;
        Ok(out)
    }

    async fn clear_rejection(&self, package_id: &str) -> Result<bool, StoreError> {
        self.with(|c| c.execute("DELETE FROM rejections WHERE package_id = ?1", [package_id]).map(|n| n > 0))
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::entry;

    #[tokio::test]
    async fn conditional_insert() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let a = entry("kiro", "0.7.45", "amd64", b"one");
        assert_eq!(s.insert("stable", &a).await.unwrap(), InsertOutcome::Inserted);
        assert_eq!(s.insert("stable", &a).await.unwrap(), InsertOutcome::AlreadyPresent);
        let b = entry("kiro", "0.7.45", "amd64", b"two");
        assert!(matches!(s.insert("stable", &b).await.unwrap(), InsertOutcome::Conflict { .. }));
        assert_eq!(s.get(&a.package_id).await.unwrap().unwrap(), a);
        s.insert("stable", &entry("kiro", "0.9.9", "amd64", b"x")).await.unwrap();
        s.insert("stable", &entry("kiro-cli", "1.0", "arm64", b"y")).await.unwrap();
        assert_eq!(s.versions_of("kiro").await.unwrap().len(), 2);
        assert_eq!(s.all().await.unwrap().len(), 3);
        // Three inserts, whatever the no-ops and the conflict in between.
        assert_eq!(s.suite("stable").await.unwrap().recorded, 3);
        assert_eq!(s.suite("stable").await.unwrap().unpublished(), 3);
        let ids = vec![a.package_id.clone(), "nope#1#all".to_owned()];
        assert_eq!(s.get_many(&ids).await.unwrap(), vec![a]);
    }

    #[tokio::test]
    async fn scans_stream_every_entry_and_name_a_corrupt_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        for i in 0..600 {
            s.insert("stable", &entry("p", &format!("1.{i}"), "amd64", format!("{i}").as_bytes())).await.unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        s.for_each_entry(&mut |e| {
            seen.insert(e.version);
        })
        .await
        .unwrap();
        assert_eq!(seen.len(), 600);
        s.with(|c| c.execute("UPDATE packages SET record = '{' WHERE package_id = 'p#1.300#amd64'", [])).unwrap();
        let e = s.for_each_entry(&mut |_| {}).await.unwrap_err().to_string();
        assert!(e.contains("p#1.300#amd64") && e.contains("unreadable"), "{e}");
    }

    #[tokio::test]
    async fn source_records_are_replaced_and_kept_apart_per_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.source_state("kiro-cli").await.unwrap(), None);
        let mut state = SourceState {
            package: "kiro-cli".into(),
            url: "https://example.com/latest/kiro-cli.deb".into(),
            validators: crate::fetch::Validators {
                etag: Some("\"one\"".into()),
                last_modified: Some("Tue, 04 Nov 2025 12:00:00 GMT".into()),
                size: Some(10),
            },
            package_id: "kiro-cli#2.20.2#amd64".into(),
            sha256: "aa".into(),
            conflict: None,
            recorded_at: "2026-01-01T00:00:00Z".into(),
        };
        s.record_source(&state).await.unwrap();
        state.validators.etag = Some("\"two\"".into());
        state.conflict = Some("other bytes".into());
        s.record_source(&state).await.unwrap();
        let other = SourceState { package: "other".into(), ..state.clone() };
        s.record_source(&other).await.unwrap();
        drop(s);
        // Kept across opening the store again.
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.source_state("kiro-cli").await.unwrap(), Some(state));
        assert_eq!(s.source_state("other").await.unwrap(), Some(other));
        s.with(|c| c.execute("UPDATE sources SET record = '{' WHERE package = 'other'", [])).unwrap();
        let e = s.source_state("other").await.unwrap_err().to_string();
        assert!(e.contains("source other") && e.contains("unreadable"), "{e}");
    }

    #[tokio::test]
    async fn generations_and_publication() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        // The first generation holds the lease; a second build waits until it is
        // published (or the lease runs out).
        assert_eq!(s.allocate_generation("stable", 100, 60).await.unwrap(), Allocation::Granted(1));
        assert_eq!(
            s.allocate_generation("stable", 110, 60).await.unwrap(),
            Allocation::Busy(Lease { generation: 1, until: 160 })
        );
        assert_eq!(s.allocate_generation("stable", 161, 60).await.unwrap(), Allocation::Granted(2));
        let p = |generation| Publication {
            generation,
            date: "2026-01-01T00:00:00Z".into(),
            valid_until: "2026-01-08T00:00:00Z".into(),
            manifest_key: format!("generations/{generation}/manifest.json"),
            recorded: 0,
        };
        // Generation 1 lost its lease to 2 when it ran out.
        assert_eq!(s.record_published("stable", &p(1)).await.unwrap(), PublishRecord::LeaseLost);
        assert_eq!(s.suite("stable").await.unwrap().lease, Some(Lease { generation: 2, until: 221 }));
        assert_eq!(s.record_published("stable", &p(2)).await.unwrap(), PublishRecord::Recorded);
        assert_eq!(s.record_published("stable", &p(1)).await.unwrap(), PublishRecord::Superseded { published: 2 });
        let st = s.suite("stable").await.unwrap();
        assert_eq!((st.generation, st.published.unwrap().generation, st.lease), (2, 2, None));
        // Publishing released the lease; a failed build gives its own back.
        assert_eq!(s.allocate_generation("stable", 300, 60).await.unwrap(), Allocation::Granted(3));
        s.release_lease("stable", 2).await.unwrap();
        assert!(s.suite("stable").await.unwrap().lease.is_some(), "only the holder releases");
        s.release_lease("stable", 3).await.unwrap();
        assert_eq!(s.allocate_generation("stable", 301, 60).await.unwrap(), Allocation::Granted(4));
    }
}
