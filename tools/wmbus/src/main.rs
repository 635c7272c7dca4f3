//! `wmbus`: decode, build and test Wireless M-Bus telegrams.
#![forbid(unsafe_code)]
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod decode;
mod encode;
mod meter;
mod port;
mod simulate;
mod synth;
mod vectors;

/// Wireless M-Bus (EN 13757-4/-3/-7, OMS) telegrams: decode every layer and security mode.
#[derive(Debug, Parser)]
#[command(name = "wmbus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode telegrams given as arguments, or one per line on stdin or in files.
    Decode(decode::Args),
    /// Build a telegram from a TOML or JSON description.
    Encode(encode::Args),
    /// Write a deterministic set of vectors: every mode, frame format, header, authentication
    /// type and fragmentation, with descriptions and expected decodes.
    Vectors(vectors::Args),
    /// Write a large deterministic capture of mode-5 (or 7) water-meter telegrams and its
    /// key file, for measuring decode speed.
    Synth(synth::Args),
    /// A simulated USB dongle on a pseudo-terminal (prints its path first), delivering
    /// telegrams from a file or from simulated meters.
    Simulate(simulate::Args),
    /// Bench-test battery meters over a dongle: a live table per meter, verdicts against
    /// expectations, JSON/CSV reports and plots.
    Bench(bench::Args),
    /// Talk to a bidirectional meter over a dongle: install, read, command, list keys, rotate
    /// a key (OMS, SITP key distribution).
    Meter(Box<meter::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Encode(args) => encode::run(args),
        Command::Vectors(args) => vectors::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Meter(args) => meter::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wmbus: {e:#}");
            ExitCode::from(2)
        }
    }
}
