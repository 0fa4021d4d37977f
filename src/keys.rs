//! `pkgrelay key`: show, export or create the archive signing key.

use crate::Dirs;
use clap::Subcommand;
use pkgrelay_core::local;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeyAction {
    /// Print the key's fingerprint (creating the key if there is none yet).
    Show,
    /// Print the public key, ASCII-armored.
    Export,
    /// Write the public key as a binary keyring (what apt's signed-by expects).
    ExportKeyring {
        /// Output file.
        path: std::path::PathBuf,
    },
}

pub fn run(action: KeyAction, dirs: &Dirs) -> anyhow::Result<ExitCode> {
    let config = dirs.load()?;
    let (key, generated) = local::load_or_generate_key(&config, &dirs.paths())?;
    if generated {
        eprintln!("generated a new archive signing key in {}", dirs.paths().key_file().display());
    }
    match action {
        KeyAction::Show => println!("{}", key.fingerprint()),
        KeyAction::Export => print!("{}", key.public_armored()?),
        KeyAction::ExportKeyring { path } => std::fs::write(&path, key.public_keyring()?)?,
    }
    Ok(ExitCode::SUCCESS)
}
