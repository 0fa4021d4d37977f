//! The pipeline on AWS's terms when AWS says no: a role without one of its
//! statements, upstream text of any size, a run that records and then fails.
//! Everything runs through tests/localaws (IAM from the synthesized template,
//! states of 256 KiB at most, items of 400 KB, Lambda memory sizes and
//! timeouts) with the real function binaries.

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::deb::{ControlParagraph, DebBuilder};
use pkgrelay_core::store::PackageStore;
use serde_json::{Value, json};

/// A run succeeded, its states stayed under 256 KiB, and it published.
fn succeeded(r: &Value) {
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_states_within_limit(r);
    assert_eq!(r["output"]["publish"]["status"], "published", "{r:#}");
}

/// One statement less in one role: the run fails, naming the action and the
/// resource AWS refused; the package it recorded before failing stays
/// unpublished until the next scheduled run, which publishes it although
/// upstream has nothing new; and apt sees it.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_statement_fails_the_run_by_name_and_the_next_run_publishes_what_was_recorded() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    publish_kiro(&up, "0.7.44");
    succeeded(&aws.execute(json!({"trigger": "schedule"})).await);

    // publish may no longer write the public files.
    let removed = aws.remove_statement("publish", "WritePublicFiles").await;
    assert_eq!(removed["removed"]["Action"], "s3:PutObject", "{removed}");
    publish_kiro(&up, "0.7.45");
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "FAILED", "{r:#}");
    let entered = states_entered(&r);
    assert!(entered.iter().any(|s| s == "NotifyFailure"), "the failure path ran: {entered:?}");
    assert!(!entered.iter().any(|s| s == "NotifySuccess"), "{entered:?}");
    let cause = r["cause"].as_str().unwrap();
    assert!(
        cause.contains("s3:PutObject")
            && cause.contains(&format!("arn:aws:s3:::{}/dists/stable/", aws.bucket))
            && cause.contains("AccessDenied"),
        "the error names the action and the resource: {cause}"
    );
    let denials = aws.denials().await;
    assert!(
        denials.iter().any(|d| d["action"] == "s3:PutObject" && d["principal"].as_str().is_some_and(|p| p.contains("publish"))),
        "{denials:#?}"
    );
    // 0.7.45 is recorded, not published.
    let state = aws.store().await.suite("stable").await.unwrap();
    assert_eq!(state.unpublished(), 1, "{state:?}");
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.44"]);

    // The statement restored, the next hourly run finds nothing new upstream
    // yet publishes the recorded entry.
    aws.restore_policy("publish").await;
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    succeeded(&r);
    assert_eq!(r["output"]["check"]["candidate_count"], 0, "nothing new upstream: {r:#}");
    assert_eq!(r["output"]["check"]["unpublished"], 1, "{r:#}");
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45", "0.7.44"]);
    assert_eq!(aws.store().await.suite("stable").await.unwrap().unpublished(), 0);

    // And quiet again: the idle path.
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
}

/// Release notes of 300 KB ride in no state: they are cut (with a marker) in
/// the candidate and the entry.
#[tokio::test(flavor = "multi_thread")]
async fn release_notes_of_300_kb() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    let version = "0.7.50";
    let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::Body(deb("kiro", version, "amd64", None)));
    let notes = "Fixed a thing.\n".repeat(20_000); // 300,000 bytes
    let metadata = json!({"currentRelease": version, "releases": [
        {"version": version, "updateTo": {"version": version, "pub_date": "2025-11-20T10:00:00Z", "notes": notes, "url": up.url(&deb_path)}}]});
    up.set("/stable/metadata.json", Reply::Body(metadata.to_string().into_bytes()));
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    succeeded(&r);
    let entry = aws.store().await.get(&format!("kiro#{version}#amd64")).await.unwrap().unwrap();
    let kept = entry.notes.unwrap();
    assert!(kept.len() <= pkgrelay_core::model::NOTES_LIMIT && kept.ends_with("[cut: 300000 bytes in all]"), "{kept}");
    aws.apt_accepts().await;
}

/// A GitHub release whose body is 125,000 four-byte characters (500,000 bytes).
#[tokio::test(flavor = "multi_thread")]
async fn a_github_release_body_of_125000_four_byte_characters() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    std::fs::write(
        ws.path("config/packages/gh-tool.yaml"),
        format!(
            "name: gh-tool\ndescription: |-\n  A tool\n  Released on GitHub.\nmaintainer: T <t@example.com>\n\
             homepage: https://example.com\nsection: devel\npriority: optional\narchitecture: amd64\n\
             source:\n  type: github_release\n  releases_url: {}\n",
            up.url("/gh/releases")
        ),
    )
    .unwrap();
    let aws = Aws::setup(&ws).await;
    up.set("/gh/gh-tool_3.0.0_amd64.deb", Reply::Body(deb("gh-tool", "3.0.0", "amd64", None)));
    let body = "𝄞".repeat(125_000);
    let releases = json!([{"tag_name": "v3.0.0", "draft": false, "prerelease": false, "published_at": "2025-11-20T10:00:00Z",
        "body": body, "assets": [{"name": "gh-tool_3.0.0_amd64.deb", "browser_download_url": up.url("/gh/gh-tool_3.0.0_amd64.deb")}]}]);
    up.set("/gh/releases", Reply::Body(releases.to_string().into_bytes()));
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    succeeded(&r);
    let entry = aws.store().await.get("gh-tool#3.0.0#amd64").await.unwrap().unwrap();
    let notes = entry.notes.unwrap();
    assert!(notes.starts_with('𝄞') && notes.ends_with("[cut: 500000 bytes in all]"), "{}", &notes[notes.len() - 40..]);
}

/// A staged .deb whose control paragraph is 200 KB: its entry goes from
/// download-package to record-metadata through the bucket, not in a state.
#[tokio::test(flavor = "multi_thread")]
async fn a_staged_deb_whose_control_paragraph_is_200_kb() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    let description = format!("configuration\n{}", " line of a very long description.\n".repeat(6_000));
    let mut b = DebBuilder::new(ControlParagraph {
        fields: [("Package", "kiro-repo"), ("Version", "7.0"), ("Architecture", "all"), ("Description", description.trim_end())]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    b.file("/etc/kiro-repo/x", 0o644, "x");
    let staged = b.build().unwrap();
    aws.put("staging/kiro-repo_7.0_all.deb", staged).await;
    let r = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_7.0_all.deb"})).await;
    succeeded(&r);
    let entry = aws.store().await.get("kiro-repo#7.0#all").await.unwrap().unwrap();
    assert!(entry.apt().unwrap().control.get("Description").unwrap().len() > 200_000);
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro-repo"), ["7.0"]);
}

/// A metadata file listing 2,000 historical releases: one candidate list in
/// the bucket, 2,000 child executions of the Distributed Map (an inline Map
/// would pass the 25,000-event history of one execution), check-sources well
/// within its timeout, every state under 256 KiB. The slow scenario of this
/// file (4,000 function invocations).
#[tokio::test(flavor = "multi_thread")]
async fn a_metadata_file_of_2000_historical_releases() {
    const N: usize = 2000;
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    let mut releases = Vec::new();
    for i in 0..N {
        let version = format!("0.{}.{}", i / 100, i % 100);
        let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
        up.set(&deb_path, Reply::Body(deb("kiro", &version, "amd64", None)));
        releases.push(json!({"version": version, "updateTo": {"version": version, "pub_date": "2025-11-20T10:00:00Z",
            "notes": format!("Kiro {version}: {}", "fixes ".repeat(50)), "url": up.url(&deb_path)}}));
    }
    let metadata = json!({"currentRelease": "0.19.99", "releases": releases});
    up.set("/stable/metadata.json", Reply::Body(metadata.to_string().into_bytes()));

    let t = std::time::Instant::now();
    let r = aws.execute(json!({"trigger": "schedule", "max_concurrency": 8})).await;
    eprintln!("2,000 releases: {:.0}s, counts {}", t.elapsed().as_secs_f64(), r["counts"]);
    succeeded(&r);
    assert_eq!(r["output"]["check"]["candidate_count"], N, "{}", r["output"]["check"]);
    let items = &r["output"]["summary"]["items"];
    assert_eq!((items["inserted_count"].as_u64(), items["failed_count"].as_u64()), (Some(N as u64), Some(0)), "{items}");
    assert_eq!(r["counts"]["executions"], N + 1, "one child execution per candidate");
    assert!(r["counts"]["historyEvents"].as_u64().unwrap() < 100, "the parent's history stays short: {}", r["counts"]);
    let check = r["invocations"].as_array().unwrap().iter().find(|i| i["function"] == "check-sources").unwrap().clone();
    let timeout = aws.info["functions"]["check-sources"]["timeout_seconds"].as_f64().unwrap();
    eprintln!("check-sources with {N} releases: {:.1}s of its {timeout}s timeout", check["durationMs"].as_f64().unwrap() / 1000.0);
    assert!(check["durationMs"].as_f64().unwrap() < timeout * 1000.0 / 4.0, "{check}");

    // A second run finds all 2,000 recorded: one small state, no map.
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert_eq!(r["output"]["check"]["already_processed"], N, "{}", r["output"]["check"]);
}
