//! `pkgrelay config-package publish --outputs-file` against a deployed stack
//! (the emulator, with a stack outputs file as `cdk deploy --outputs-file`
//! writes it): the package lands in the bucket's staging/, the staging
//! execution publishes it, and the next version is read from DynamoDB.

mod common;

use common::aws::*;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn config_package_publish_uploads_to_the_stack_staging_prefix() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    aws.write_outputs_file(&ws.path("cdk-outputs.json"));
    let env = |cmd: &mut std::process::Command| {
        aws.operator_env(cmd);
    };
    let publish = |extra: &[&str]| {
        let mut args = vec!["config-package", "publish", "--env", "dev", "--outputs-file", "cdk-outputs.json"];
        args.extend_from_slice(extra);
        let out = ws.pkgrelay_with(&args, env);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };

    // Dry run: nothing uploaded.
    let dry = publish(&["--dry-run"]);
    assert!(dry.contains("would put kiro-repo_1.0_all.deb"), "{dry}");
    assert!(aws.get("staging/kiro-repo_1.0_all.deb").await.is_none());

    // First version: 1.0 (nothing recorded yet), uploaded to staging/.
    let url = publish(&[]);
    assert_eq!(url, format!("s3://{}/staging/kiro-repo_1.0_all.deb", aws.bucket));
    let staged = aws.get("staging/kiro-repo_1.0_all.deb").await.expect("uploaded");

    // The S3 event's input starts the execution; kiro-repo is published.
    publish_kiro(&up, "0.7.45");
    let r = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(aws.get("kiro-repo.deb").await.unwrap(), staged, "the convenience copy is the staged package");

    // The next version is the one after the newest recorded in DynamoDB.
    let url = publish(&[]);
    assert_eq!(url, format!("s3://{}/staging/kiro-repo_1.1_all.deb", aws.bucket));
    let deb = aws.get("staging/kiro-repo_1.1_all.deb").await.unwrap();
    let control = pkgrelay_core::deb::read_control_from(&deb[..]).unwrap();
    assert_eq!(control.get("Version"), Some("1.1"));
}
