//! `pkgrelay verify`: check the published directory like a client would.

use crate::Dirs;
use pkgrelay_core::apt::verify;
use pkgrelay_core::blob::DirStore;
use std::process::ExitCode;

pub async fn run(dirs: &Dirs) -> anyhow::Result<ExitCode> {
    let repository = pkgrelay_core::config::Config::load_repository(&dirs.config)?;
    let store = DirStore::new(&dirs.out)?;
    let scratch = tempfile::tempdir()?;
    let report = verify::verify(&store, &repository, scratch.path()).await;
    for p in &report.problems {
        println!("problem: {p}");
    }
    println!(
        "{}: {} index files, {} package entries, {} problems",
        dirs.out.display(),
        report.index_files,
        report.packages,
        report.problems.len()
    );
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
