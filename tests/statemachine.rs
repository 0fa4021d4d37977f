//! The ASL executor harness's own test (stand-in functions, stand-in SNS): the
//! definition's control flow — Retry, Catch per item, NothingToDo, the failure
//! path — as interpreted by aws-local-stepfunctions.

use std::process::Command;

#[test]
fn harness_selftest_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/stepfunctions/node_modules/aws-local-stepfunctions").exists(),
        "run the tests through `tests/run` (it installs the ASL interpreter with npm ci)"
    );
    let out =
        Command::new("node").arg(root.join("tests/stepfunctions/selftest.mjs")).output().expect("node is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "selftest failed");
    assert!(text.contains("checks passed"), "{text}");
}
