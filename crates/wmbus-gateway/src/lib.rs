//! # wmbus-gateway
//!
//! `wmbusd`: dongles in, decoded telegrams out. A thin async shell (tokio, tokio-serial)
//! around the sans-IO engines: [`wmbus_dongle`] frames each device, [`core::Core`] drops
//! duplicates and decodes through the security layer, and the replay state is kept in the
//! state directory across restarts. Output: the JSON lines of `wmbus decode --format json`,
//! with the receiving dongle as `source.file`, the RSSI in dBm, the link mode and the host's
//! reception time.
#![forbid(unsafe_code)]
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

pub mod core;
pub mod dongle;
pub mod mqtt;
pub mod talk;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use wmbus_host::decoder::DecodeOptions;
use wmbus_host::keyfile;
use wmbus_security::key::MemoryKeyStore;

use crate::core::{Core, Outcome, Stats};
use crate::dongle::{DongleConfig, FromDongle};

/// The daemon's configuration (`wmbusd --config FILE`, TOML; docs/gateway.md).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Key file (`wmbus decode --keys` format).
    #[serde(default)]
    pub keys: Option<PathBuf>,
    /// Where the replay state is kept across restarts.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Output file for JSON lines ("-" or absent: stdout); appended to.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Milliseconds within which a telegram seen again (another dongle, a repeater) is a
    /// duplicate; 0 turns duplicate suppression off.
    #[serde(default = "default_window")]
    pub dedup_window_ms: u64,
    /// Do not reject replayed message counters.
    #[serde(default)]
    pub no_replay_check: bool,
    /// MQTT output (besides the JSON lines).
    #[serde(default)]
    pub mqtt: Option<mqtt::MqttConfig>,
    /// The dongles.
    pub dongles: Vec<DongleConfig>,
    /// This gateway's link address when it talks to meters, MFR.ID.
    #[serde(default = "default_partner")]
    pub partner_address: String,
    /// Requests to bidirectional meters, run when each meter is next heard
    /// (`{ meter = "XYZ.12345678", action = "read" }`; docs/bidirectional.md).
    #[serde(default)]
    pub requests: Vec<talk::ConfiguredRequest>,
}

fn default_partner() -> String {
    "WMB.00000001".into()
}

fn default_window() -> u64 {
    10_000
}

fn load_keys(path: Option<&Path>) -> anyhow::Result<(MemoryKeyStore, Vec<keyfile::KeyEntry>)> {
    let mut store = MemoryKeyStore::new();
    let mut all = Vec::new();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        if let Some(w) = keyfile::permission_warning(path) {
            warn!("{w}");
        }
        let entries = keyfile::parse_file(&text, &path.display().to_string())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(keys = entries.len(), file = %path.display(), "keys loaded");
        all.clone_from(&entries);
        keyfile::load_into(&mut store, entries);
    }
    Ok((store, all))
}

fn replay_path(config: &Config) -> Option<PathBuf> {
    config.state_dir.as_ref().map(|d| d.join("replay.txt"))
}

fn save_replay(core: &mut Core, path: Option<&Path>) {
    let Some(path) = path else { return };
    let tmp = path.with_extension("txt.tmp");
    let result =
        std::fs::write(&tmp, core.replay_text()).and_then(|()| std::fs::rename(&tmp, path));
    match result {
        Ok(()) => core.mark_saved(),
        Err(e) => warn!("cannot save replay state to {}: {e}", path.display()),
    }
}

/// Sends what the exchanges want sent, reports what they finished.
async fn talked(
    (transmits, finished): (Vec<talk::Transmit>, Vec<talk::Finished>),
    transmitters: &std::collections::HashMap<String, mpsc::Sender<Vec<u8>>>,
    mqtt: Option<&mut mqtt::Mqtt>,
) {
    for t in transmits {
        match transmitters.get(&t.dongle) {
            Some(tx) => {
                if tx.send(t.bytes).await.is_err() {
                    warn!(dongle = %t.dongle, "dongle gone: cannot transmit");
                }
            }
            None => warn!(dongle = %t.dongle, "no such dongle"),
        }
    }
    for f in &finished {
        info!(meter = %f.object, result = %f.result, "exchange finished");
    }
    if let Some(m) = mqtt {
        for f in finished {
            m.exchange(&f.object, &f.result).await;
        }
    }
}

/// Runs the gateway until `shutdown` turns true (or every dongle task ends); returns the
/// counters.
///
/// # Errors
/// Unreadable key file or state directory, an output that cannot be opened.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<Stats> {
    for d in &config.dongles {
        d.validate()?;
    }
    let (keys, key_entries) = load_keys(config.keys.as_deref())?;
    let options = DecodeOptions {
        replay_check: !config.no_replay_check,
        ..DecodeOptions::default()
    };
    let mut core = Core::new(keys, options, config.dedup_window_ms);
    let replay = replay_path(&config);
    if let Some(dir) = &config.state_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
    }
    if let Some(path) = &replay
        && let Ok(text) = std::fs::read_to_string(path)
    {
        let bad = core.load_replay_text(&text);
        info!(file = %path.display(), skipped = bad, "replay state restored");
    }
    let mut out: Box<dyn Write + Send> = match &config.output {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening output {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdout()),
    };
    let (requests_tx, mut requests) = mpsc::channel::<(String, talk::Job)>(64);
    let mut mqtt = config
        .mqtt
        .clone()
        .map(|c| mqtt::Mqtt::start(c, requests_tx.clone()));
    if let Some(m) = &mqtt {
        m.online().await;
    }
    let mut talk = {
        let gateway = wmbus_host::partner::gateway_address(&config.partner_address)
            .ok_or_else(|| anyhow::anyhow!("partner_address: give MFR.ID"))?;
        talk::Talk::new(
            gateway,
            key_entries,
            wmbus_security::exchange::Policy::default(),
            config.state_dir.as_ref().map(|d| d.join("partner.txt")),
        )
    };
    for r in &config.requests {
        talk.submit(&r.meter, r.job.clone())
            .map_err(|e| anyhow::anyhow!("requests: {e}"))?;
    }
    drop(requests_tx);
    let (tx, mut rx) = mpsc::channel::<FromDongle>(1024);
    let mut tasks = Vec::new();
    let mut transmitters = std::collections::HashMap::new();
    for d in &config.dongles {
        let (d, tx, stop) = (d.clone(), tx.clone(), shutdown.clone());
        let (transmit_tx, transmit_rx) = mpsc::channel::<Vec<u8>>(16);
        transmitters.insert(d.display_name(), transmit_tx);
        tasks.push(tokio::spawn(async move {
            let name = d.display_name();
            if let Err(e) = dongle::run(d, tx, transmit_rx, stop).await {
                tracing::error!(dongle = %name, "{e:#}");
            }
        }));
    }
    drop(tx);
    let mut talk_tick = tokio::time::interval(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let mut save_tick = tokio::time::interval(Duration::from_secs(10));
    let mut shutdown = shutdown;
    let mut line = Vec::with_capacity(8192);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(FromDongle::Telegram(name, r)) => {
                    let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let exchanged = talk.on_frame(wmbus_security::time::Instant(now), &name, &r);
                    talked(exchanged, &transmitters, mqtt.as_mut()).await;
                    match core.handle(now, &name, &r) {
                        Outcome::Duplicate => {
                            tracing::debug!(dongle = %name, duplicates = core.stats.duplicates, "duplicate dropped");
                        }
                        Outcome::Report(report) => {
                            line.clear();
                            wmbus_host::render::write_line(&mut line, &report, wmbus_host::render::Format::Json);
                            if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
                                warn!("output: {e}");
                            }
                            if let Some(m) = mqtt.as_mut() {
                                m.report(&report, &line).await;
                            }
                            if core.replay_dirty() && matches!(report.security_mode, 7 | 9 | 10) {
                                save_replay(&mut core, replay.as_deref());
                            }
                        }
                    }
                }
                Some(FromDongle::Discarded(n)) => core.stats.discarded_bytes += n as u64,
                None => break,
            },
            Some((meter, job)) = requests.recv() => {
                if let Err(e) = talk.submit(&meter, job) {
                    warn!("request for {meter}: {e}");
                }
            }
            _ = talk_tick.tick() => {
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let exchanged = talk.on_tick(wmbus_security::time::Instant(now));
                talked(exchanged, &transmitters, mqtt.as_mut()).await;
            }
            _ = save_tick.tick() => {
                if core.replay_dirty() {
                    save_replay(&mut core, replay.as_deref());
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    save_replay(&mut core, replay.as_deref());
    if let Some(m) = &mqtt {
        m.offline().await;
        // Let the event loop send what is queued.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let s = core.stats;
    info!(
        received = s.received,
        reported = s.reported,
        decoded = s.decoded,
        duplicates = s.duplicates,
        discarded_bytes = s.discarded_bytes,
        "stopped"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example configuration shipped beside the unit file parses.
    #[test]
    fn example_config_parses() {
        let c: Result<Config, _> = toml::from_str(include_str!("../wmbusd.example.toml"));
        let c = c.map_err(|e| e.to_string());
        assert_eq!(c.as_ref().map(|c| c.dongles.len()), Ok(2), "{c:?}");
    }
}
