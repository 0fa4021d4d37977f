//! The repository's index.html as a person sees it: rendered by headless
//! Chromium (Debian's chromium package) from `pkgrelay serve`, with the install
//! commands on the page, and a screenshot written for a person to look at.

mod common;

use common::*;
use std::process::Command;

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Debian's chromium package is required (.ci/run installs it)")
}

fn headless(profile: &std::path::Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn index_page_renders_the_install_commands() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.45");
    std::fs::create_dir_all(ws.path(".pkgrelay/staging")).unwrap();
    std::fs::write(ws.path(".pkgrelay/staging/kiro-repo_1.0_all.deb"), deb("kiro-repo", "1.0", "all", None)).unwrap();
    ws.sync(&[]);
    let served = ws.serve();
    let page = format!("{}/index.html", served.url.trim_end_matches('/'));

    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path()).args(["--dump-dom", &page]).output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for text in [
        "Kiro APT repository",
        "Step 1.",
        "sudo apt install ./kiro-repo.deb",
        "Step 2.",
        "sudo apt install kiro</code>",
        "APT keeps it",
        "Manual install",
        "deb [signed-by=/usr/share/keyrings/kiro-archive-keyring.gpg] http://127.0.0.1:8080 stable main",
        "kiro-archive-keyring.gpg",
        "0.7.45",
    ] {
        assert!(dom.contains(text), "{text:?} not on the rendered page:\n{dom}");
    }

    // A screenshot, kept where a person can open it.
    let dir = std::env::var_os("PKGRELAY_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pkgrelay-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("index.png");
    let _ = std::fs::remove_file(&png);
    let out = headless(profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .args(["--window-size=1100,1500", &page])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000, "a real screenshot: {} bytes", bytes.len());
    eprintln!("screenshot of index.html: {}", png.display());
}
