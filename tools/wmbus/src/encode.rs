//! `wmbus encode`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::ValueEnum;
use wmbus_host::encode::{Description, FormatDesc, encode};

/// Output frame format, overriding the description's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Format A with CRCs.
    A,
    /// Format B with CRCs.
    B,
    /// No CRCs.
    None,
}

/// `wmbus encode` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Description file, TOML or JSON (`-` for stdin); `docs/encode.md` lists the fields.
    pub description: PathBuf,
    /// Frame format of the output (default: the description's `link.format`, else A).
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
}

/// Prints the frames, one hex line each (fragments in order).
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let text = if args.description.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&args.description)
            .with_context(|| format!("reading {}", args.description.display()))?
    };
    let mut desc = Description::parse(&text)?;
    if let Some(f) = args.format {
        desc.link.format = match f {
            Format::A => FormatDesc::A,
            Format::B => FormatDesc::B,
            Format::None => FormatDesc::None,
        };
    }
    let encoded = encode(&desc)?;
    for frame in encoded.frames {
        println!("{}", hex::encode_upper(frame));
    }
    Ok(ExitCode::SUCCESS)
}
