//! `wmbus simulate`: the simulated dongle of `wmbus-sim` on a pseudo-terminal; prints the
//! terminal's path as the first line on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// `wmbus simulate` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Device kind: im871a, iu891a, amb8465, amb8465-transparent, cul, rc1180, rtlwmbus, rtl433.
    #[arg(long)]
    pub dongle: String,
    /// Telegrams to deliver: hex lines in any frame format (rtl_wmbus, rtl_433 and simulation
    /// lines too).
    #[arg(long, conflicts_with = "meters")]
    pub telegrams: Option<PathBuf>,
    /// Simulated meters (TOML; docs/gateway.md).
    #[arg(long)]
    pub meters: Option<PathBuf>,
    /// Milliseconds between telegrams of a telegram file.
    #[arg(long, default_value_t = 200)]
    pub interval: u64,
    /// Deliver the telegram file this many times (0: forever).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Stop after this many telegrams (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Keep the terminal open this many milliseconds after the last telegram.
    #[arg(long, default_value_t = 1000)]
    pub linger: u64,
    /// Also expose the terminal under this path (a symlink that follows reconnects).
    #[arg(long)]
    pub link: Option<PathBuf>,
    /// Garbage (and every third time a partial frame) before every Nth telegram (0: none).
    #[arg(long, default_value_t = 0)]
    pub garbage_every: u64,
    /// Unplug after this many telegrams (0: never), and come back after --reconnect-delay.
    #[arg(long, default_value_t = 0)]
    pub disconnect_after: u64,
    /// Milliseconds unplugged.
    #[arg(long, default_value_t = 1500)]
    pub reconnect_delay: u64,
    /// RSSI of file telegrams, dBm.
    #[arg(long, default_value_t = -70.0, allow_negative_numbers = true)]
    pub rssi: f32,
    /// Seed for meter jitter and garbage.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds (0: when every telegram is delivered).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Fall silent after every Nth telegram (0: never), for --silence milliseconds.
    #[arg(long, default_value_t = 0)]
    pub silence_every: u64,
    /// Milliseconds of silence.
    #[arg(long, default_value_t = 0)]
    pub silence: u64,
}

/// Runs the simulator.
pub(crate) fn run(a: Args) -> Result<ExitCode> {
    let options = wmbus_sim::Options {
        dongle: a.dongle,
        telegrams: a.telegrams,
        meters: a.meters,
        interval: a.interval,
        repeat: a.repeat,
        count: a.count,
        linger: a.linger,
        link: a.link,
        garbage_every: a.garbage_every,
        disconnect_after: a.disconnect_after,
        reconnect_delay: a.reconnect_delay,
        rssi: a.rssi,
        seed: a.seed,
        duration: (a.duration * 1000.0) as u64,
        silence_every: a.silence_every,
        silence: a.silence,
    };
    wmbus_sim::run(&options, &mut |path| {
        println!("{}", path.display());
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
