//! `wmbusd`: the Wireless M-Bus gateway daemon (docs/gateway.md).
#![forbid(unsafe_code)]
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use wmbus_gateway::Config;
use wmbus_gateway::dongle::DongleConfig;

/// Wireless M-Bus gateway: reads USB radio dongles, decodes every telegram through the
/// security layer and writes JSON lines. Logs go to stderr (RUST_LOG=debug for more).
#[derive(Debug, Parser)]
#[command(name = "wmbusd", version, about)]
struct Args {
    /// TOML configuration (several dongles, keys, outputs, state directory).
    #[arg(long, conflicts_with_all = ["device", "dongle"])]
    config: Option<PathBuf>,
    /// Serial device of a single dongle (or, for rtlwmbus/rtl433, a file, FIFO or "-").
    #[arg(long, requires = "dongle")]
    device: Option<String>,
    /// Its kind: im871a, iu891a, amb8465, amb8465-transparent, cul, rc1180, rtlwmbus, rtl433.
    #[arg(long, requires = "device")]
    dongle: Option<String>,
    /// Link mode to listen in: c1t1 (default where the device can), t1, c1, s1.
    #[arg(long)]
    link_mode: Option<String>,
    /// Key file.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// State directory (replay counters kept across restarts).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Output file for JSON lines (default stdout).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Seconds without a telegram before the dongle is initialised again (0: off).
    #[arg(long, default_value_t = 900)]
    watchdog: u64,
    /// Duplicate window in milliseconds (0: off).
    #[arg(long, default_value_t = 10_000)]
    dedup_window_ms: u64,
    /// MQTT broker, HOST or HOST:PORT: reports per meter, availability, Home Assistant
    /// discovery.
    #[arg(long)]
    mqtt: Option<String>,
}

fn config(args: &Args) -> anyhow::Result<Config> {
    let mut config = if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    } else {
        let (Some(device), Some(kind)) = (&args.device, &args.dongle) else {
            anyhow::bail!("give --config FILE, or --device PATH and --dongle KIND");
        };
        Config {
            keys: None,
            state_dir: None,
            output: None,
            dedup_window_ms: args.dedup_window_ms,
            no_replay_check: false,
            mqtt: None,
            dongles: vec![DongleConfig {
                name: None,
                device: device.clone(),
                command: None,
                kind: kind.clone(),
                link_mode: args.link_mode.clone(),
                baud_rate: None,
                watchdog: args.watchdog,
            }],
            partner_address: "WMB.00000001".into(),
            requests: Vec::new(),
        }
    };
    // Command-line options win over the file.
    if args.keys.is_some() {
        config.keys.clone_from(&args.keys);
    }
    if args.state_dir.is_some() {
        config.state_dir.clone_from(&args.state_dir);
    }
    if args.output.is_some() {
        config.output.clone_from(&args.output);
    }
    if let Some(broker) = &args.mqtt {
        let (host, port) = match broker.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("MQTT port")?),
            None => (broker.clone(), 1883),
        };
        let mut m: wmbus_gateway::mqtt::MqttConfig =
            toml::from_str(&format!("host = {host:?}")).context("MQTT settings")?;
        m.port = port;
        config.mqtt = Some(m);
    }
    if config.dongles.is_empty() {
        anyhow::bail!("no dongles configured");
    }
    Ok(config)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wmbusd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wmbusd: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            }
            let _ = stop_tx.send(true);
        });
        wmbus_gateway::run(config, stop_rx).await
    });
    // A blocking read on a file or terminal may never return: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wmbusd: {e:#}");
            ExitCode::from(1)
        }
    }
}
