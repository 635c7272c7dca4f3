//! `wmbus vectors`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use wmbus_host::vectors;

/// `wmbus vectors` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seed: the same seed gives the same vectors, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created; existing vector files are overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes the vector set.
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let set = vectors::generate(args.seed);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let files = vectors::files(&set).map_err(anyhow::Error::msg)?;
    for (name, contents) in &files {
        std::fs::write(args.out.join(name), contents).with_context(|| format!("writing {name}"))?;
    }
    eprintln!(
        "{} vectors (seed {}) in {}",
        set.len(),
        args.seed,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
