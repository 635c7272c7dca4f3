//! `wmbus synth`: a large, deterministic capture of water-meter telegrams and its key file,
//! for measuring `wmbus decode` end to end (docs/PERFORMANCE.md).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wmbus_host::encode::{Description, encode};
use wmbus_host::vectors::Rng;

/// The benchmark meter: mode 5, six encrypted blocks, 111 bytes on air without CRCs.
const TEMPLATE: &str = include_str!("../../../testdata/bench/water-mode5.toml");

/// `wmbus synth` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Telegrams to write.
    #[arg(long, default_value_t = 200_000)]
    pub count: usize,
    /// Distinct meters (each with its own key); telegrams cycle through them.
    #[arg(long, default_value_t = 1000)]
    pub meters: usize,
    /// Seed: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Security mode of the telegrams (5 or 7).
    #[arg(long, default_value_t = 5)]
    pub mode: u8,
    /// Output capture: one hex telegram per line.
    #[arg(long)]
    pub out: PathBuf,
    /// Output key file.
    #[arg(long)]
    pub keys: PathBuf,
}

/// Writes the capture and the key file.
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    if args.meters == 0 || args.meters > 99_999_999 {
        bail!("--meters must be between 1 and 99999999");
    }
    if !matches!(args.mode, 5 | 7) {
        bail!("--mode must be 5 or 7");
    }
    let template = Description::parse(TEMPLATE).map_err(anyhow::Error::msg)?;
    let mut rng = Rng::new(args.seed);
    let meters: Vec<(String, String)> = (0..args.meters)
        .map(|i| {
            let id = format!("{:08}", 10_000_000 + i);
            (id, hex::encode_upper(rng.bytes::<16>()))
        })
        .collect();
    let mut keys = BufWriter::new(
        File::create(&args.keys).with_context(|| format!("creating {}", args.keys.display()))?,
    );
    writeln!(keys, "# wmbus synth --seed {}: test keys only", args.seed)?;
    for (id, key) in &meters {
        writeln!(keys, "ZRI.{id} {key}")?;
    }
    keys.flush()?;
    let mut out = BufWriter::new(
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    for n in 0..args.count {
        let (id, key) = meters.get(n % args.meters).context("meter list is empty")?;
        let round = n / args.meters;
        let mut d = template.clone();
        d.meter.id.clone_from(id);
        d.key = Some(key.clone());
        d.tpl.access_number = round as u8;
        if args.mode == 7 {
            d.tpl.security_mode = 7;
            d.afl = Some(wmbus_host::encode::AflDesc {
                message_counter: Some(u32::try_from(round + 1).unwrap_or(u32::MAX)),
                ..Default::default()
            });
        }
        // The current volume grows a little with every telegram.
        if let Some(r) = d.records.first_mut() {
            let litres = 1_234_567 + (round as u64) * 7 + rng.below(5);
            r.value = Some(serde_json::json!(litres as f64 / 1000.0));
        }
        let frames = encode(&d).map_err(anyhow::Error::msg)?;
        for f in frames.frames {
            writeln!(out, "{}", hex::encode_upper(f))?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} telegrams from {} meters in {}, keys in {}",
        args.count,
        args.meters,
        args.out.display(),
        args.keys.display()
    );
    Ok(ExitCode::SUCCESS)
}
