//! Retention: when objects that no index lists any more may leave the
//! repository, for every format alike.
//!
//! A generation's manifest lists what it *references*
//! ([`crate::repository::Manifest::references`]): the artifacts its index
//! names (APT: each listed version's pool file and its companions; Homebrew:
//! the blob of each bottle the published API files reference) and its
//! content-addressed index files (APT's and a mirror's `by-hash/`). Objects
//! published at fixed names (InRelease, Packages, `bottles_hash.json`, …)
//! are replaced by each publish and never collected.
//!
//! The rule (DESIGN.md "Retention"): an object leaves only after a grace
//! period, only after a run with no failures, and never while a published
//! generation within the grace period references it. A generation is
//! *within the grace period* while it is live and for `grace` after the
//! next one replaced it: clients and caches (apt's lists, a CDN's copy of
//! InRelease, brew's cached API files) keep an older index that long and
//! fetch what it names.
//!
//! The [`Ledger`] is what lets publish apply the rule without reading every
//! manifest of the grace period: one private object per repository
//! (`generations/<suite>/retention.json`) that publish updates each time a
//! generation goes live, holding
//!
//! - `unreferenced`: each object that the live generation does not reference
//!   but an earlier published one did, with the time the first generation
//!   without it went live — from then on no generation going live referenced
//!   it, so every published generation that did was replaced at or before
//!   that time;
//! - `retired`: the manifests of replaced (or never published) generations,
//!   with the time they stopped being live;
//! - `through`: the published generation it accounts for.
//!
//! Its size is what changed within the grace period, not the repository's:
//! an idle run never reads it (it stops before build-index), and a publish
//! reads and writes it once. Pure logic here; the deleting is done by
//! publish through [`crate::blob::ObjectStore`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Private key of a suite's ledger (beside its generations' directories).
pub fn ledger_key(suite: &str) -> String {
    format!("generations/{suite}/retention.json")
}

/// A manifest waiting for its grace period to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    pub generation: u64,
    /// Private key of its manifest.
    pub manifest_key: String,
    /// Unix seconds it stopped being live (or was passed over unpublished).
    pub since: i64,
}

/// What publish knows of the objects no longer referenced (see the module).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The published generation the ledger accounts through; `None`: never
    /// updated.
    #[serde(default)]
    pub through: Option<u64>,
    /// Public key (relative to the repository's prefix) → unix seconds since
    /// which no generation going live has referenced it.
    #[serde(default)]
    pub unreferenced: BTreeMap<String, i64>,
    #[serde(default)]
    pub retired: Vec<Retired>,
    /// Unix seconds of the last publish that deleted (or set out to delete)
    /// an artifact. build-index checks that the artifacts of entries recorded
    /// before then still exist; entries recorded later cannot have lost theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deletion: Option<i64>,
}

/// How much later than [`Ledger::last_deletion`] an entry's recording time
/// must be for build-index to trust its artifact without a check: the clocks
/// of two Lambda functions may differ a little.
pub const CLOCK_SLACK_SECS: i64 = 300;

/// One generation as the ledger sees it.
#[derive(Debug, Clone, Copy)]
pub struct Generation<'a> {
    pub number: u64,
    pub manifest_key: &'a str,
    pub references: &'a [String],
}

/// What may be deleted now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Public keys whose grace period is over.
    pub objects: Vec<String>,
    /// Manifests whose grace period is over.
    pub manifests: Vec<Retired>,
}

impl Ledger {
    /// Account for `current` going live at `now` after `previous` (the
    /// generation live until now; `None`: nothing was published).
    /// `passed_over`: generations built after `previous` and before `current`
    /// that never went live (a failed or superseded publish); what they
    /// wrote and no published generation references may go too.
    ///
    /// Called for every generation that goes live, whether or not the run
    /// may delete anything: the ledger's times are only right if no
    /// transition is skipped. When one was (the ledger does not account
    /// through `previous`: a publish that died between writing the ledger
    /// and recording itself, or a ledger lost), the unknown generations may
    /// have referenced any pending object, so every pending time restarts
    /// at `now` — later deletion, never earlier. Objects only such unknown
    /// generations referenced are not learnt of, and stay (a leak, not a
    /// loss).
    pub fn advance(
        &mut self,
        previous: Option<Generation<'_>>,
        passed_over: &[Generation<'_>],
        current: Generation<'_>,
        now: i64,
    ) {
        let contiguous = self.through == previous.map(|p| p.number);
        if !contiguous {
            tracing::warn!(
                through = ?self.through,
                previous = ?previous.map(|p| p.number),
                "the retention ledger missed a generation: every pending object's grace period restarts now"
            );
            for since in self.unreferenced.values_mut() {
                *since = now;
            }
        }
        let current_refs: HashSet<&str> = current.references.iter().map(String::as_str).collect();
        for generation in previous.iter().chain(passed_over) {
            for key in generation.references {
                if !current_refs.contains(key.as_str()) {
                    // Already pending: keep the earlier time (a passed-over
                    // generation was never live, so it did not extend it; a
                    // contiguous previous never holds a pending key).
                    self.unreferenced.entry(key.clone()).or_insert(now);
                }
            }
        }
        // Referenced again (a raised `keep`, a bottle back in the API): live,
        // so not pending; its clock starts afresh when it is dropped again.
        for key in current.references {
            self.unreferenced.remove(key);
        }
        for generation in previous.iter().chain(passed_over) {
            if generation.number != current.number && !self.retired.iter().any(|r| r.generation == generation.number) {
                self.retired.push(Retired {
                    generation: generation.number,
                    manifest_key: generation.manifest_key.to_owned(),
                    since: now,
                });
            }
        }
        self.retired.retain(|r| r.generation != current.number);
        self.through = Some(current.number);
    }

    /// What is past its grace period at `now`. `live` is the generation live
    /// now: its references and its manifest are never due, whatever the
    /// ledger says (a second guard beside [`Ledger::advance`]).
    pub fn due(&self, now: i64, grace_secs: i64, live: Generation<'_>) -> Due {
        let live_refs: HashSet<&str> = live.references.iter().map(String::as_str).collect();
        let over = |since: i64| since.saturating_add(grace_secs) <= now;
        Due {
            objects: self
                .unreferenced
                .iter()
                .filter(|(key, since)| over(**since) && !live_refs.contains(key.as_str()))
                .map(|(key, _)| key.clone())
                .collect(),
            manifests: self
                .retired
                .iter()
                .filter(|r| over(r.since) && r.generation != live.number && r.manifest_key != live.manifest_key)
                .cloned()
                .collect(),
        }
    }

    /// Forget objects and manifests that were deleted.
    pub fn forget(&mut self, objects: &[String], manifests: &[u64]) {
        for key in objects {
            self.unreferenced.remove(key);
        }
        self.retired.retain(|r| !manifests.contains(&r.generation));
    }
}

/// What retention did in a publish: the run's summary carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// The grace period in force, in seconds.
    pub grace_seconds: u64,
    /// Objects (pool files, bottles, by-hash files) deleted by this publish.
    pub deleted: usize,
    /// Manifests of replaced generations deleted by this publish.
    pub deleted_generations: usize,
    /// Objects no longer referenced, kept until their grace period ends.
    pub in_grace: usize,
    /// Manifests of replaced generations kept until their grace period ends.
    pub generations_in_grace: usize,
    /// Past their grace period but left for the next publish (more than
    /// one publish deletes, or a delete that failed).
    pub deferred: usize,
    /// Why nothing was deleted although something was due (the run had
    /// failures), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl RetentionReport {
    /// One line for a person (`pkgrelay sync`, `pkgrelay aws start`), and
    /// why nothing was deleted when something was due.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "retention (grace {} s): deleted {}, in grace {}, manifests deleted {}, manifests in grace {}, deferred {}",
            self.grace_seconds,
            self.deleted,
            self.in_grace,
            self.deleted_generations,
            self.generations_in_grace,
            self.deferred
        )];
        if let Some(why) = &self.held {
            out.push(format!("  held: {why}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn generation<'a>(number: u64, references: &'a [String], key: &'a str) -> Generation<'a> {
        Generation { number, manifest_key: key, references }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn an_object_is_due_a_grace_period_after_the_first_generation_without_it_went_live() {
        let mut ledger = Ledger::default();
        let g1 = keys(&["pool/a_1.deb", "pool/a_2.deb", "by-hash/x"]);
        let g2 = keys(&["pool/a_2.deb", "pool/a_3.deb", "by-hash/y"]);
        ledger.advance(None, &[], generation(1, &g1, "m1"), 0);
        assert!(ledger.unreferenced.is_empty());
        ledger.advance(Some(generation(1, &g1, "m1")), &[], generation(2, &g2, "m2"), 10 * DAY);
        assert_eq!(ledger.unreferenced.keys().collect::<Vec<_>>(), ["by-hash/x", "pool/a_1.deb"]);
        let live = generation(2, &g2, "m2");
        assert_eq!(ledger.due(17 * DAY - 1, 7 * DAY, live), Due::default(), "within grace: nothing");
        let due = ledger.due(17 * DAY, 7 * DAY, live);
        assert_eq!(due.objects, ["by-hash/x", "pool/a_1.deb"]);
        assert_eq!(due.manifests.iter().map(|r| r.generation).collect::<Vec<_>>(), [1]);
        ledger.forget(&due.objects, &[1]);
        assert_eq!(ledger, Ledger { through: Some(2), ..Ledger::default() });
    }

    #[test]
    fn an_object_referenced_again_is_not_pending_and_its_clock_restarts() {
        let mut ledger = Ledger::default();
        let with = keys(&["pool/a_1.deb"]);
        let without: Vec<String> = vec![];
        ledger.advance(None, &[], generation(1, &with, "m1"), 0);
        ledger.advance(Some(generation(1, &with, "m1")), &[], generation(2, &without, "m2"), DAY);
        ledger.advance(Some(generation(2, &without, "m2")), &[], generation(3, &with, "m3"), 2 * DAY);
        assert!(ledger.unreferenced.is_empty(), "live again (a raised keep)");
        assert!(ledger.due(100 * DAY, 7 * DAY, generation(3, &with, "m3")).objects.is_empty());
        ledger.advance(Some(generation(3, &with, "m3")), &[], generation(4, &without, "m4"), 20 * DAY);
        assert_eq!(ledger.unreferenced["pool/a_1.deb"], 20 * DAY, "dropped again: generation 3 was live until day 20");
        assert!(ledger.due(26 * DAY, 7 * DAY, generation(4, &without, "m4")).objects.is_empty());
    }

    #[test]
    fn a_missed_generation_restarts_every_pending_clock() {
        let mut ledger = Ledger::default();
        let g1 = keys(&["pool/a_1.deb"]);
        let g2: Vec<String> = vec![];
        ledger.advance(None, &[], generation(1, &g1, "m1"), 0);
        ledger.advance(Some(generation(1, &g1, "m1")), &[], generation(2, &g2, "m2"), DAY);
        // Generation 3 went live without the ledger hearing of it (it might
        // have listed pool/a_1.deb again); now 4 replaces 3.
        let g3: Vec<String> = vec![];
        ledger.advance(Some(generation(3, &g3, "m3")), &[], generation(4, &g2, "m4"), 30 * DAY);
        assert_eq!(ledger.unreferenced["pool/a_1.deb"], 30 * DAY);
        assert!(ledger.due(36 * DAY, 7 * DAY, generation(4, &g2, "m4")).objects.is_empty());
        assert_eq!(ledger.due(37 * DAY, 7 * DAY, generation(4, &g2, "m4")).objects, ["pool/a_1.deb"]);
    }

    #[test]
    fn what_a_passed_over_generation_wrote_is_collected_and_its_manifest_too() {
        let mut ledger = Ledger::default();
        let g1 = keys(&["by-hash/a"]);
        let g2 = keys(&["by-hash/a", "by-hash/b"]); // built, never published
        let g3 = keys(&["by-hash/a", "by-hash/c"]);
        ledger.advance(None, &[], generation(1, &g1, "m1"), 0);
        ledger.advance(Some(generation(1, &g1, "m1")), &[generation(2, &g2, "m2")], generation(3, &g3, "m3"), DAY);
        assert_eq!(ledger.unreferenced.keys().collect::<Vec<_>>(), ["by-hash/b"]);
        let due = ledger.due(DAY, 0, generation(3, &g3, "m3"));
        assert_eq!(due.objects, ["by-hash/b"]);
        assert_eq!(due.manifests.iter().map(|r| r.generation).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn the_live_generation_is_never_due_whatever_the_ledger_says() {
        let refs = keys(&["pool/a_1.deb"]);
        let ledger = Ledger {
            through: Some(5),
            unreferenced: BTreeMap::from([("pool/a_1.deb".to_owned(), 0)]),
            retired: vec![Retired { generation: 5, manifest_key: "m5".into(), since: 0 }],
            last_deletion: None,
        };
        assert_eq!(ledger.due(100 * DAY, 0, generation(5, &refs, "m5")), Due::default());
    }
}
