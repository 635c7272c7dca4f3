//! `wmbus meter`: talking to a bidirectional meter over a dongle (docs/bidirectional.md):
//! install, read, command, list keys, rotate a key, or send raw bytes. Each exchange waits
//! for the meter's access window, retries, and says what the meter answered. The partner's
//! access numbers and counters persist in a state file; the key file changes only after the
//! meter confirms a rotation.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wmbus_dongle::{Event, Host, Kind, LinkMode, Received};
use wmbus_frame::codepoints::{ControlField, MeterAddress};
use wmbus_frame::dll::FrameFormat;
use wmbus_frame::frame::Frame;
use wmbus_frame::sitp::{BlockControl, DataInfo, status_name};
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::keyfile::{self, KeyEntry};
use wmbus_host::partner::{
    AnswerBlock, OpenedAnswer, Partner, Request, key_counters, key_rotation_blocks,
    list_keys_block, open_answer, secured_data_block, sitp_blocks,
};
use wmbus_security::exchange::{
    Action, Exchange, Expect, Failure, Handled, Policy, Window, same_meter,
};
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::receiver::{Receiver, ReceiverOptions, SecurityResult};
use wmbus_security::time::{Duration as WDuration, Instant as WInstant};

use crate::port::{Port, init, now_ms, open, parse_duration, read_some, run_steps};

/// `wmbus meter` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: MeterAction,
    /// Serial device of the dongle.
    #[arg(long, global = true)]
    device: Option<PathBuf>,
    /// Dongle kind: im871a, iu891a, amb8465, cul (the kinds that can send).
    #[arg(long, global = true)]
    dongle: Option<String>,
    /// Key file (`id=HH version=N` after a key name application keys; docs/bidirectional.md).
    #[arg(long, global = true)]
    keys: Option<PathBuf>,
    /// The meter, MFR.ID (install: any meter asking, when left out).
    #[arg(long, global = true)]
    meter: Option<String>,
    /// This partner's link address, MFR.ID (version 01h, device type 31h).
    #[arg(long, global = true, default_value = "WMB.00000001")]
    gateway: String,
    /// Partner state: access numbers and counters per meter (default: KEYS.partner).
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// Link mode: T2, C2 or S2.
    #[arg(long, global = true, default_value = "T2")]
    link_mode: String,
    /// Transmissions per request, the first included.
    #[arg(long, global = true, default_value_t = 3)]
    tries: u32,
    /// Wait this long for an answer (s, m).
    #[arg(long, global = true, default_value = "2s")]
    timeout: String,
    /// The meter listens this long after each of its telegrams.
    #[arg(long, global = true, default_value = "2s")]
    window: String,
    /// Give up when the meter opens no window for this long.
    #[arg(long, global = true, default_value = "60s")]
    wait: String,
    /// Show every frame sent and answered, in hex (L-field first, no CRCs).
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Debug, clap::Subcommand)]
enum MeterAction {
    /// Wait for an installation request (SND-IR), confirm it (CNF-IR) and check that the
    /// meter then sends normal telegrams.
    Install,
    /// Read the meter's data (REQ-UD2, every fragment) and print it decoded.
    Read {
        /// Output: pretty or json.
        #[arg(long, default_value = "pretty")]
        format: String,
    },
    /// Send an M-Bus APDU as SITP end-to-end secured data (BCF 20h, CMAC) with an
    /// application key, e.g. `--apdu 01FD1F00` (remote control: disconnect).
    Command {
        /// The APDU, hex.
        #[arg(long)]
        apdu: String,
        /// Application key ID (in the key file as `id=HH`).
        #[arg(long, default_value = "20", value_parser = parse_hex_u8)]
        key_id: u8,
        /// How the data is secured: 32 CMAC-8, 33 CMAC-16 (OMS Annex N), or the provisional
        /// 34 GCM, 35 GMAC, 36 CCM-8, 37 CCM-16 (docs/bidirectional.md).
        #[arg(long, default_value = "32", value_parser = parse_hex_u8)]
        dsi: u8,
    },
    /// List the meter's active keys, versions and counters (SITP BCF 09h), or only keys
    /// and versions (BCF 08h, `--without-counters`).
    Keys {
        /// Ask for the active keys without their counters (BCF 08h).
        #[arg(long)]
        without_counters: bool,
    },
    /// Give the meter a new key and activate it (SITP BCF 00h + 04h, KWP); the key file is
    /// updated after the meter confirms.
    RotateKey {
        /// Key ID to rotate (00: the master key).
        #[arg(long, default_value = "00", value_parser = parse_hex_u8)]
        key_id: u8,
        /// The new key, 32 hex digits (default: random from the system).
        #[arg(long)]
        new_key: Option<String>,
        /// Wrap with this key-management key (key file `id=HH`) instead of KWP framing
        /// inside the transport encryption.
        #[arg(long, value_parser = parse_hex_u8)]
        wrapper_key_id: Option<u8>,
    },
    /// Reset the meter's link (SND-NKE).
    Reset,
    /// Update the meter's software (OMS image transfer; docs/software-update.md): prepare,
    /// every block, the lost ones again, validate, activate. Resumable: the progress is kept
    /// in IMAGE.transfer until the image is active.
    Firmware {
        /// The image file.
        image: PathBuf,
        /// Image identifier, hex (default: from the image MAC).
        #[arg(long)]
        image_id: Option<String>,
        /// Block size (at least 190).
        #[arg(long, default_value_t = 190)]
        block_size: usize,
        /// Wait this long for a block's acknowledgement before going on (lost blocks are
        /// sent again after Completion).
        #[arg(long, default_value = "300ms")]
        block_timeout: String,
        /// At least this long between blocks (battery meters).
        #[arg(long, default_value = "0s")]
        pace: String,
        /// Where the progress is kept (default: IMAGE.transfer).
        #[arg(long)]
        progress_file: Option<PathBuf>,
        /// Activate at this local time, YYYY-MM-DDTHH:MM (default: at once).
        #[arg(long)]
        activate_at: Option<String>,
    },
    /// Send these bytes (L-field first, no CRCs) in the meter's next window and show the
    /// answer: for testing how a meter treats a replay or a tampered message.
    Send {
        /// The frame, hex.
        hex: String,
    },
}

fn parse_hex_u8(s: &str) -> Result<u8, String> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| format!("{s}: not hex 00-FF"))
}

/// What a request got.
enum Outcome {
    Answer { bytes: Vec<u8> },
    Sent,
    Failed(Failure),
}

/// The dongle, the exchange and what was heard.
struct Radio {
    port: Box<dyn Port>,
    host: Box<dyn Host>,
    mode: LinkMode,
    started: Instant,
    early: Vec<Received>,
    /// RSSI of the meter's last frame.
    rssi: Option<f32>,
    verbose: bool,
    quiet: bool,
}

impl Radio {
    fn now(&self) -> WInstant {
        WInstant::from_millis(now_ms(self.started))
    }

    /// The next frame received (waiting up to the port's read timeout).
    fn next(&mut self) -> Result<Option<Received>> {
        if !self.early.is_empty() {
            return Ok(Some(self.early.remove(0)));
        }
        read_some(self.port.as_mut(), self.host.as_mut())?;
        while let Some(e) = self.host.poll(now_ms(self.started)) {
            if let Event::Telegram(r) = e {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Hands a frame back to be read again first (its window is still open).
    fn put_back(&mut self, telegram: Vec<u8>) {
        self.early.insert(
            0,
            Received {
                telegram,
                link_mode: None,
                frame_format: None,
                rssi_dbm: self.rssi,
                device_time: None,
                raw: Vec::new(),
            },
        );
    }

    fn transmit(&mut self, bytes: &[u8]) -> Result<()> {
        let steps = self
            .host
            .transmit(bytes, self.mode, self.mode)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut early = Vec::new();
        run_steps(
            self.port.as_mut(),
            self.host.as_mut(),
            steps,
            self.started,
            &mut early,
        )?;
        self.early.extend(early);
        Ok(())
    }

    /// Runs one request through `exchange`, printing progress.
    fn exchange(&mut self, exchange: &mut Exchange, request: &Request) -> Result<Outcome> {
        exchange.request(self.now(), request.bytes.clone(), request.expect);
        loop {
            match exchange.poll(self.now()) {
                Action::Transmit(bytes) => {
                    if !self.quiet {
                        println!("→ {} (try {})", request.name, exchange.tries());
                    }
                    if self.verbose {
                        println!("  sent {}", hex::encode_upper(&bytes));
                    }
                    self.transmit(&bytes)?;
                }
                Action::Sent => return Ok(Outcome::Sent),
                Action::Failed(f) => return Ok(Outcome::Failed(f)),
                Action::Idle => bail!("exchange idle before an outcome"),
                Action::Wait(_) => {
                    let Some(r) = self.next()? else { continue };
                    let Ok(frame) = Frame::parse(&r.telegram, FrameFormat::NoCrc) else {
                        continue;
                    };
                    let from_meter = frame
                        .meter()
                        .is_some_and(|m| same_meter(&m, exchange.meter()));
                    if from_meter {
                        self.rssi = r.rssi_dbm.or(self.rssi);
                    }
                    match exchange.handle(self.now(), &frame) {
                        Handled::Answer(bytes) => {
                            if self.verbose {
                                println!("  answer {}", hex::encode_upper(&bytes));
                            }
                            return Ok(Outcome::Answer { bytes });
                        }
                        Handled::Window if !self.quiet => {
                            println!("  meter heard ({}): window open", control_name(&frame));
                        }
                        Handled::Window => {}
                        Handled::Ignored => {}
                    }
                }
            }
        }
    }

    /// [`Self::exchange`] without progress lines (blocks of a software update).
    fn exchange_quietly(&mut self, exchange: &mut Exchange, request: &Request) -> Result<Outcome> {
        let was_quiet = std::mem::replace(&mut self.quiet, true);
        let r = self.exchange(exchange, request);
        self.quiet = was_quiet;
        r
    }

    /// Waits for a frame from `meter` (any meter when `None`) for up to `wait`.
    fn wait_for(
        &mut self,
        meter: Option<&MeterAddress>,
        wait: Duration,
    ) -> Result<Option<(Vec<u8>, Option<f32>)>> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let Some(r) = self.next()? else { continue };
            let Ok(frame) = Frame::parse(&r.telegram, FrameFormat::NoCrc) else {
                continue;
            };
            if meter.is_none_or(|m| frame.meter().is_some_and(|f| same_meter(&f, m))) {
                return Ok(Some((r.telegram.clone(), r.rssi_dbm)));
            }
        }
        Ok(None)
    }
}

/// The standard's name of the frame's C-field, hyphenated ("SND-NR").
fn control_name(frame: &Frame<'_>) -> String {
    frame
        .repr
        .link
        .control()
        .name()
        .unwrap_or("frame")
        .replace('_', "-")
}

fn meter_label(m: &MeterAddress) -> String {
    format!("{}.{}", m.manufacturer, m.address.ident)
}

fn parse_meter_arg(text: &str) -> Result<MeterAddress> {
    wmbus_host::partner::parse_address(text)
        .ok_or_else(|| anyhow::anyhow!("meter {text:?}: give MFR.ID, e.g. XYZ.12345678"))
}

/// The meter's full address, as it gives it in its own frames.
fn learn(radio: &mut Radio, meter: &MeterAddress, wait: Duration) -> Result<MeterAddress> {
    println!("waiting for {} …", meter_label(meter));
    let Some((bytes, _)) = radio.wait_for(Some(meter), wait)? else {
        bail!("{} was not heard within {wait:?}", meter_label(meter));
    };
    let frame = Frame::parse(&bytes, FrameFormat::NoCrc)?;
    let full = frame.meter().unwrap_or(*meter);
    // The window it opened is still usable: hand the frame back to the exchange.
    radio.put_back(bytes);
    Ok(full)
}

struct Keys {
    entries: Vec<KeyEntry>,
    path: Option<PathBuf>,
}

impl Keys {
    fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                entries: Vec::new(),
                path: None,
            });
        };
        if let Some(w) = keyfile::permission_warning(path) {
            eprintln!("{w}");
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        Ok(Self {
            entries: keyfile::parse_file(&text, &path.display().to_string())?,
            path: Some(path.to_path_buf()),
        })
    }

    fn get(&self, meter: &MeterAddress, key_id: Option<u8>) -> Option<(Key, u8)> {
        keyfile::find_key(&self.entries, meter, key_id)
    }

    fn store(&self) -> MemoryKeyStore {
        let mut s = MemoryKeyStore::new();
        keyfile::load_into(&mut s, self.entries.clone());
        s
    }
}

fn state_path(args: &Args) -> PathBuf {
    args.state.clone().unwrap_or_else(|| match &args.keys {
        Some(k) => {
            let mut p = k.clone().into_os_string();
            p.push(".partner");
            PathBuf::from(p)
        }
        None => PathBuf::from("wmbus-partner.txt"),
    })
}

/// Writes the partner state whole or not at all (a kill mid-write must not lose counters).
fn save(partner: &Partner, path: &Path) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, partner.to_text())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing partner state {}", path.display()))
}

fn print_blocks(blocks: &[AnswerBlock]) -> bool {
    let mut ok = true;
    for b in blocks {
        let what = match b.data_info {
            DataInfo::STATUS => {
                let code = b.data.first().copied().unwrap_or(0xFF);
                ok &= code == 0;
                format!("status {code:02X}h ({})", status_name(code))
            }
            DataInfo::ACTIVE_KEYS => {
                let mut s = String::from("keys:");
                for pair in b.data.chunks_exact(2) {
                    if let [id, version] = pair {
                        s.push_str(&format!(" {id:02X}h v{version};"));
                    }
                }
                s
            }
            DataInfo::KEY_COUNTERS => {
                let mut s = String::from("keys:");
                for (id, version, counter) in key_counters(&b.data) {
                    s.push_str(&format!(" {id:02X}h v{version} counter {counter};"));
                }
                s
            }
            d if d.cmac_len().is_some()
                || wmbus_security::sitp::provisional::tag_len(d).is_some() =>
            {
                "executed (secured data echoed)".to_string()
            }
            other => format!("{} ({} bytes)", other.name(), b.data.len()),
        };
        println!(
            "← block {} {}: {what}",
            b.block_id,
            BlockControl(b.control.0 & 0x7F).name()
        );
    }
    ok
}

pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let device = args
        .device
        .clone()
        .ok_or_else(|| anyhow::anyhow!("give --device PATH"))?;
    let dongle = args
        .dongle
        .clone()
        .ok_or_else(|| anyhow::anyhow!("give --dongle KIND"))?;
    let kind: Kind = dongle
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown dongle kind {dongle}"))?;
    let mode: LinkMode = args
        .link_mode
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown link mode {}", args.link_mode))?;
    let millis = |s: &str| -> Result<u64> {
        Ok(u64::try_from(parse_duration(s)?.as_millis()).unwrap_or(u64::MAX))
    };
    let policy = Policy {
        tries: args.tries.max(1),
        answer_timeout: WDuration::from_millis(millis(&args.timeout)?),
        window_timeout: WDuration::from_millis(millis(&args.wait)?),
        window: Window::AfterMeterFrame(WDuration::from_millis(millis(&args.window)?)),
    };
    let wait = Duration::from_millis(millis(&args.wait)?);
    let keys = Keys::load(args.keys.as_deref())?;
    let gateway = wmbus_host::partner::gateway_address(&args.gateway)
        .ok_or_else(|| anyhow::anyhow!("--gateway: give MFR.ID"))?;
    let state = state_path(&args);
    let mut partner = Partner::new(gateway);
    if let Ok(text) = std::fs::read_to_string(&state) {
        let bad = partner.load_text(&text);
        if bad > 0 {
            eprintln!("{}: {bad} line(s) skipped", state.display());
        }
    }
    let mut port = open(&device, kind)?;
    let mut host = kind.host();
    let started = Instant::now();
    let mut early = Vec::new();
    init(port.as_mut(), host.as_mut(), mode, started, &mut early)?;
    // Frames read while initialising are a backlog from before this session: their access
    // windows are long closed.
    early.clear();
    let mut radio = Radio {
        port,
        host,
        mode,
        started,
        early,
        rssi: None,
        verbose: args.verbose,
        quiet: false,
    };
    let mut receiver = Receiver::new(
        keys.store(),
        ReceiverOptions {
            accept_decrypted_by_receiver: false,
            ..ReceiverOptions::default()
        },
    );

    if let MeterAction::Install = args.action {
        return install(&args, &mut radio, &mut partner, &state, policy, wait);
    }
    let meter_arg = args
        .meter
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("give --meter MFR.ID"))?;
    let meter = learn(&mut radio, &parse_meter_arg(meter_arg)?, wait)?;
    let label = meter_label(&meter);
    let mut exchange = Exchange::new(meter, policy);
    let master = || {
        keys.get(&meter, None)
            .ok_or_else(|| anyhow::anyhow!("no master key for {label} in the key file"))
    };
    let refused = |o: &OpenedAnswer| -> bool {
        if o.ci == 0x6E {
            println!(
                "← {label} refused the message: application error (CI 6Eh, status {:02X}h)",
                o.status
            );
            return true;
        }
        false
    };
    if let MeterAction::Firmware {
        image,
        image_id,
        block_size,
        block_timeout,
        pace,
        progress_file,
        activate_at,
    } = &args.action
    {
        let mk = master()?.0;
        let mut ctx = Ctx {
            radio: &mut radio,
            exchange: &mut exchange,
            partner: &mut partner,
            receiver: &mut receiver,
            meter,
            master: &mk,
            state: &state,
        };
        let options = FirmwareOptions {
            image,
            image_id: image_id.as_deref(),
            block_size: *block_size,
            block_timeout: millis(block_timeout)?,
            pace: if pace
                .trim()
                .trim_start_matches(['0', '.'])
                .chars()
                .all(char::is_alphabetic)
            {
                0
            } else {
                millis(pace)?
            },
            progress_file: progress_file.as_deref(),
            activate_at: match activate_at {
                Some(t) => wmbus_host::encode::parse_datetime(t)
                    .map(|d| u32::from_le_bytes(d.to_type_f()))
                    .ok_or_else(|| anyhow::anyhow!("--activate-at: YYYY-MM-DDTHH:MM"))?,
                None => 0,
            },
            policy,
        };
        return firmware(&mut ctx, &keys, &options);
    }
    let request = match &args.action {
        MeterAction::Install => bail!("installation is handled above"),
        MeterAction::Firmware { .. } => bail!("the software update is handled above"),
        MeterAction::Read { .. } => partner.request_data(&meter, radio.rssi, false)?,
        MeterAction::Reset => partner.reset_link(&meter, radio.rssi)?,
        MeterAction::Command { apdu, key_id, dsi } => {
            let (app_key, version) = keys.get(&meter, Some(*key_id)).ok_or_else(|| {
                anyhow::anyhow!("no key id={key_id:02X} for {label} in the key file")
            })?;
            let mk = master()?.0;
            let mut ctx = Ctx {
                radio: &mut radio,
                exchange: &mut exchange,
                partner: &mut partner,
                receiver: &mut receiver,
                meter,
                master: &mk,
                state: &state,
            };
            if !ensure_key_counter(&mut ctx, *key_id)? {
                return Ok(ExitCode::from(1));
            }
            let counter = partner.next_key_counter(&meter, *key_id);
            let apdu = hex::decode(apdu).context("--apdu is not hex")?;
            let block = match *dsi {
                0x32 => secured_data_block(0, *key_id, version, &app_key, counter, &apdu)?,
                0x33 => wmbus_host::partner::secured_block(
                    (0, DataInfo::CMAC16),
                    (*key_id, version, &app_key),
                    counter,
                    wmbus_frame::sitp::TARGET_TIME_IMMEDIATE,
                    0x01,
                    &apdu,
                )?,
                0x34..=0x37 => {
                    let data = wmbus_security::sitp::provisional::seal(
                        DataInfo(*dsi),
                        &app_key,
                        &meter,
                        (counter, wmbus_frame::sitp::TARGET_TIME_IMMEDIATE, 0x01),
                        &apdu,
                    )
                    .map_err(|_| anyhow::anyhow!("cannot seal DSI {dsi:02X}h"))?;
                    wmbus_host::partner::emit_blocks(&[wmbus_frame::sitp::Block {
                        offset: 0,
                        block_id: 0,
                        control: BlockControl::SECURED_DATA,
                        recipient: 0,
                        data_info: DataInfo(*dsi),
                        header1: *key_id,
                        header2: version,
                        data: &data,
                    }])?
                }
                other => bail!("--dsi {other:02X}: use 32 to 37"),
            };
            partner.sitp(&meter, &master()?.0, &block, radio.rssi)?
        }
        MeterAction::Keys { without_counters } => {
            let block = if *without_counters {
                wmbus_host::partner::emit_blocks(&[wmbus_frame::sitp::Block {
                    offset: 0,
                    block_id: 0,
                    control: BlockControl::LIST_ACTIVE_KEYS,
                    recipient: 0,
                    data_info: DataInfo::EMPTY,
                    header1: 0xFF,
                    header2: 0xFF,
                    data: &[],
                }])?
            } else {
                list_keys_block()
            };
            let mut r = partner.sitp(&meter, &master()?.0, &block, radio.rssi)?;
            r.name = "SITP key list";
            r
        }
        MeterAction::RotateKey {
            key_id,
            new_key,
            wrapper_key_id,
        } => {
            let (_, old_version) = keys
                .get(&meter, Some(*key_id))
                .ok_or_else(|| anyhow::anyhow!("no key {key_id:02X}h for {label}"))?;
            let new_version = match old_version.wrapping_add(1) {
                0xFF => 0,
                v => v,
            };
            let new = match new_key {
                Some(h) => {
                    Key::from_hex(h).ok_or_else(|| anyhow::anyhow!("--new-key: 32 hex digits"))?
                }
                None => random_key()?,
            };
            let wrapper = match wrapper_key_id {
                Some(id) => Some(
                    keys.get(&meter, Some(*id))
                        .map(|(k, v)| (*id, v, k))
                        .ok_or_else(|| anyhow::anyhow!("no wrapper key id={id:02X} for {label}"))?,
                ),
                None => None,
            };
            let blocks = key_rotation_blocks(
                *key_id,
                old_version,
                new_version,
                &new,
                wrapper.as_ref().map(|(i, v, k)| (*i, *v, k)),
            )?;
            let mut r = partner.sitp(&meter, &master()?.0, &blocks, radio.rssi)?;
            r.name = "SITP key rotation";
            save(&partner, &state)?;
            let outcome = radio.exchange(&mut exchange, &r)?;
            let Outcome::Answer { bytes } = outcome else {
                return report_failure(&label, outcome);
            };
            let o = open_answer(&mut receiver, radio.now(), &bytes);
            if refused(&o) {
                return Ok(ExitCode::from(1));
            }
            println!("← RSP-UD from {label}: {:?}", o.result);
            if !matches!(o.result, SecurityResult::Authenticated) {
                println!("the answer is not authenticated: the key file is left as it is");
                return Ok(ExitCode::from(1));
            }
            let blocks = sitp_blocks(&o.application)?;
            if !print_blocks(&blocks) || blocks.len() != 2 {
                println!("the meter did not confirm: the key file is left as it is");
                return Ok(ExitCode::from(1));
            }
            if let Some(path) = &keys.path {
                let text = std::fs::read_to_string(path)?;
                let id = (*key_id != 0).then_some(*key_id);
                let updated = keyfile::replace_entry(&text, meter_arg, id, &new, new_version);
                write_private(path, updated.as_bytes())?;
                println!(
                    "key {key_id:02X}h version {new_version} active on {label}; {} updated",
                    path.display()
                );
            }
            if *key_id == 0 {
                partner.reset_counter(&meter);
            }
            save(&partner, &state)?;
            return Ok(ExitCode::SUCCESS);
        }
        MeterAction::Send { hex: h } => {
            let bytes = hex::decode(h).context("not hex")?;
            let frame = Frame::parse(&bytes, FrameFormat::NoCrc)?;
            Request {
                expect: Expect::Answer {
                    access_number: frame
                        .repr
                        .transport
                        .tpl
                        .and_then(|t| t.header)
                        .map(|h| h.access_number),
                    ell_access_number: frame.repr.ell.map(|e| e.access_number),
                },
                bytes,
                name: "raw frame",
            }
        }
    };
    save(&partner, &state)?;
    let mut outcome = radio.exchange(&mut exchange, &request)?;
    match &args.action {
        MeterAction::Read { format } => {
            let mut decoder = Decoder::new(keys.store(), DecodeOptions::default());
            let mut fragments = 0;
            loop {
                let Outcome::Answer { bytes } = outcome else {
                    return report_failure(&label, outcome);
                };
                let frame = Frame::parse(&bytes, FrameFormat::NoCrc)?;
                if frame.repr.transport.tpl.is_some_and(|t| t.ci.0 == 0x6E) {
                    println!("← {label} refused the read: application error");
                    return Ok(ExitCode::from(1));
                }
                let more = frame.repr.transport.afl.is_some_and(|a| a.more_fragments);
                let report = decoder.decode(radio.now(), &bytes);
                fragments += 1;
                if !more {
                    println!("← RSP-UD from {label} ({fragments} fragment(s))");
                    let mut line = Vec::new();
                    let f = if format == "json" {
                        wmbus_host::render::Format::Json
                    } else {
                        wmbus_host::render::Format::Pretty
                    };
                    wmbus_host::render::write_line(&mut line, &report, f);
                    std::io::stdout().write_all(&line)?;
                    return Ok(if report.status == "ok" {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    });
                }
                println!("← fragment {fragments} from {label}, more to come");
                let next = partner.request_data(&meter, radio.rssi, true)?;
                save(&partner, &state)?;
                // The meter listens right after its answer.
                exchange.handle(radio.now(), &frame);
                outcome = radio.exchange(&mut exchange, &next)?;
            }
        }
        _ => {
            let Outcome::Answer { bytes } = outcome else {
                return report_failure(&label, outcome);
            };
            let o = open_answer(&mut receiver, radio.now(), &bytes);
            if refused(&o) {
                return Ok(ExitCode::from(1));
            }
            let kind = if o.control == ControlField::ACK {
                "ACK"
            } else {
                "RSP-UD"
            };
            println!(
                "← {kind} from {label}: CI {:02X}h, status {:02X}h, {:?}",
                o.ci, o.status, o.result
            );
            if matches!(o.ci, 0xC4 | 0xC5) {
                if !matches!(o.result, SecurityResult::Authenticated) {
                    println!("the answer is not authenticated");
                    return Ok(ExitCode::from(1));
                }
                let blocks = sitp_blocks(&o.application)?;
                if !print_blocks(&blocks) {
                    return Ok(ExitCode::from(1));
                }
                partner.learn_key_counters(&meter, &blocks);
                save(&partner, &state)?;
            }
            Ok(if o.status & 0x03 == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

struct FirmwareOptions<'a> {
    image: &'a Path,
    image_id: Option<&'a str>,
    block_size: usize,
    block_timeout: u64,
    pace: u64,
    progress_file: Option<&'a Path>,
    /// Activation date/time, type F (0: at once).
    activate_at: u32,
    policy: Policy,
}

/// `wmbus meter firmware`: drives [`Transfer`] through the exchange engine.
fn firmware(c: &mut Ctx<'_>, keys: &Keys, o: &FirmwareOptions<'_>) -> Result<ExitCode> {
    use wmbus_frame::image::oms::{
        CI_COMMAND, Function, IMAGE_MAC_KEY_ID, ITP_KEY_ID, MIN_BLOCK_SIZE, Response, SITP_PROTOCOL,
    };
    use wmbus_frame::sitp::{SecuredData, TARGET_TIME_IMMEDIATE, TARGET_TIME_INVALID};
    use wmbus_host::partner::{Security, secured_block};
    use wmbus_host::transfer::{Step, Transfer};

    let label = meter_label(&c.meter);
    if o.block_size < MIN_BLOCK_SIZE {
        bail!("--block-size: at least {MIN_BLOCK_SIZE}");
    }
    let image = std::fs::read(o.image).with_context(|| format!("reading {}", o.image.display()))?;
    let (mac_key, _) = keys
        .get(&c.meter, Some(IMAGE_MAC_KEY_ID))
        .ok_or_else(|| anyhow::anyhow!("no image MAC key id=18 for {label} in the key file"))?;
    let (itp_key, itp_version) = keys
        .get(&c.meter, Some(ITP_KEY_ID))
        .ok_or_else(|| anyhow::anyhow!("no key id=23 (image transfer) for {label}"))?;
    let mac = wmbus_security::image::oms_image_mac(&mac_key, &image);
    let image_id = match o.image_id {
        Some(h) => u32::from_str_radix(h, 16).context("--image-id: hex")?,
        None => u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]),
    };
    let progress_path = o.progress_file.map_or_else(
        || {
            let mut p = o.image.as_os_str().to_owned();
            p.push(".transfer");
            PathBuf::from(p)
        },
        Path::to_path_buf,
    );
    let mut transfer =
        Transfer::new(image, image_id, o.block_size, mac).with_activation_time(o.activate_at);
    let started = Instant::now();
    let now_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Ok(text) = std::fs::read_to_string(&progress_path) {
        match transfer.resume(&text, now_ms()) {
            Ok(()) => println!(
                "resuming the transfer of image {image_id:08X} ({}): asking the meter what it lacks",
                transfer.phase_name()
            ),
            Err(e) => println!("{}: {}; starting afresh", progress_path.display(), e.0),
        }
    }
    println!(
        "image {image_id:08X}: {} bytes in {} blocks of {} to {label}",
        transfer.image_len(),
        transfer.blocks(),
        o.block_size
    );
    if !ensure_key_counter(c, ITP_KEY_ID)? {
        return Ok(ExitCode::from(1));
    }
    // During the update the meter keeps its receiver on (docs/software-update.md).
    let open_line = Policy {
        window: Window::Always,
        ..o.policy
    };
    let block_policy = Policy {
        tries: 1,
        answer_timeout: WDuration::from_millis(o.block_timeout),
        ..open_line
    };
    let mut open_exchange = Exchange::new(*c.exchange.meter(), open_line);
    let mut block_exchange = Exchange::new(*c.exchange.meter(), block_policy);
    let mut last_shown = 0usize;
    let mut last_block = Instant::now();
    // A bar on a terminal; a line every tenth otherwise (logs, tests).
    let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
        let b = indicatif::ProgressBar::new(transfer.blocks() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:12} [{bar:40}] {pos}/{len} blocks, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    loop {
        let step = transfer.next(now_ms());
        // Written whole or not at all: a kill mid-write must not lose the progress.
        let tmp = progress_path.with_extension("transfer.tmp");
        std::fs::write(&tmp, transfer.to_text())
            .and_then(|()| std::fs::rename(&tmp, &progress_path))
            .with_context(|| format!("writing {}", progress_path.display()))?;
        let (request, secured) = match step {
            Step::Done => {
                let _ = std::fs::remove_file(&progress_path);
                println!(
                    "image {image_id:08X} {} on {label}; {} blocks sent for {}",
                    if transfer.activation_scheduled() {
                        "validated, activation scheduled"
                    } else {
                        "active"
                    },
                    transfer.blocks_sent,
                    transfer.blocks()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Step::Failed(why) => {
                let _ = std::fs::remove_file(&progress_path);
                println!("software update of {label} failed: {why}");
                return Ok(ExitCode::from(1));
            }
            Step::WaitUntil(t) => {
                while now_ms() < t {
                    let _ = c.radio.next()?;
                }
                continue;
            }
            Step::Secured(apdu) => {
                let target_time = if apdu.first() == Some(&Function::ACTIVATE.0) {
                    TARGET_TIME_INVALID
                } else {
                    TARGET_TIME_IMMEDIATE
                };
                let counter = c.partner.next_key_counter(&c.meter, ITP_KEY_ID);
                let block = secured_block(
                    (0, DataInfo::CMAC8),
                    (ITP_KEY_ID, itp_version, &itp_key),
                    counter,
                    target_time,
                    SITP_PROTOCOL,
                    &apdu,
                )?;
                let mut r = c.partner.sitp(&c.meter, c.master, &block, c.radio.rssi)?;
                r.name = match Function(apdu.first().copied().unwrap_or(0xFF)) {
                    Function::PREPARE => "prepare (SITP)",
                    Function::ACTIVATE => "activate (SITP)",
                    _ => "terminate (SITP)",
                };
                (r, true)
            }
            Step::Plain(apdu) => {
                let mut r = c.partner.command_without_ell(
                    &c.meter,
                    CI_COMMAND,
                    &apdu,
                    Security::Mode7,
                    Some(c.master),
                    c.radio.rssi,
                )?;
                r.name = Function(apdu.first().copied().unwrap_or(0xFF)).name();
                (r, false)
            }
        };
        save(c.partner, c.state)?;
        let sending_block = transfer.sending_block();
        if sending_block && o.pace > 0 {
            let due = last_block + Duration::from_millis(o.pace);
            while Instant::now() < due {
                let _ = c.radio.next()?;
            }
            last_block = Instant::now();
        }
        // Only Prepare waits for the meter's window; then it keeps its receiver on.
        let exchange = if transfer.phase_name() == "prepare" {
            &mut *c.exchange
        } else if sending_block {
            &mut block_exchange
        } else {
            &mut open_exchange
        };
        let quiet = sending_block;
        let outcome = if quiet {
            c.radio.exchange_quietly(exchange, &request)?
        } else {
            c.radio.exchange(exchange, &request)?
        };
        let Outcome::Answer { bytes } = outcome else {
            if !quiet {
                println!("  no answer to {}", request.name);
            }
            transfer.on_no_answer();
            continue;
        };
        let opened = open_answer(c.receiver, c.radio.now(), &bytes);
        if opened.refused() {
            let code = opened.application.first().copied().unwrap_or(0);
            println!(
                "← {label} refused {}: application error {code:02X}h",
                request.name
            );
            transfer.on_refused(code);
            continue;
        }
        if opened.result != SecurityResult::Authenticated {
            println!(
                "← answer to {} not authenticated ({:?})",
                request.name, opened.result
            );
            transfer.on_no_answer();
            continue;
        }
        let body = opened
            .application
            .strip_prefix(&[0x2F, 0x2F])
            .unwrap_or(&opened.application)
            .to_vec();
        let apdu = if secured {
            // The response in secured data, MACed with key 23h.
            let blocks = sitp_blocks(&opened.application)?;
            let Some(b) = blocks.first().filter(|b| b.data_info == DataInfo::CMAC8) else {
                print_blocks(&blocks);
                transfer.on_refused(0);
                continue;
            };
            let block = wmbus_frame::sitp::Block {
                offset: 0,
                block_id: b.block_id,
                control: b.control,
                recipient: 0,
                data_info: b.data_info,
                header1: b.headers.0,
                header2: b.headers.1,
                data: &b.data,
            };
            let data = SecuredData::parse(&block)?;
            if wmbus_security::sitp::verify(&itp_key, &data).is_err() {
                println!("← the meter's secured response does not verify (key 23h)");
                transfer.on_no_answer();
                continue;
            }
            data.apdu.to_vec()
        } else {
            body
        };
        let response = Response::parse(&apdu, 0)?;
        if !quiet {
            println!(
                "← {} from {label}: state {}",
                Function(response.function.0 & 0x7F).name(),
                response.state.name()
            );
            if let Some(t) = response.lost_total.filter(|t| *t > 0) {
                println!("  {t} block(s) lost: sending them again");
            }
        }
        transfer.on_response(now_ms(), &response);
        if let Some(b) = &bar {
            b.set_message(transfer.phase_name());
            b.set_position(transfer.confirmed() as u64);
            continue;
        }
        let shown = transfer.confirmed() * 10 / transfer.blocks().max(1);
        if sending_block && shown != last_shown {
            last_shown = shown;
            println!(
                "  blocks {}/{} confirmed",
                transfer.confirmed(),
                transfer.blocks()
            );
        }
    }
}

/// What a multi-step exchange with one meter works with.
struct Ctx<'a> {
    radio: &'a mut Radio,
    exchange: &'a mut Exchange,
    partner: &'a mut Partner,
    receiver: &'a mut Receiver<MemoryKeyStore>,
    meter: MeterAddress,
    master: &'a Key,
    state: &'a Path,
}

/// Learns the meter's KeyCounter of `key_id` (SITP key list) when the partner has none
/// recorded; false (after saying why) when the meter does not tell.
fn ensure_key_counter(c: &mut Ctx<'_>, key_id: u8) -> Result<bool> {
    if c.partner.key_counter(&c.meter, key_id) != 0 {
        return Ok(true);
    }
    println!("KeyCounter of key {key_id:02X}h unknown: asking the meter first");
    let mut r = c
        .partner
        .sitp(&c.meter, c.master, &list_keys_block(), c.radio.rssi)?;
    r.name = "SITP key list";
    save(c.partner, c.state)?;
    let outcome = c.radio.exchange(c.exchange, &r)?;
    let Outcome::Answer { bytes } = outcome else {
        report_failure(&meter_label(&c.meter), outcome)?;
        return Ok(false);
    };
    let o = open_answer(c.receiver, c.radio.now(), &bytes);
    if o.refused() || !matches!(o.result, SecurityResult::Authenticated) {
        println!("the key list did not come back authenticated");
        return Ok(false);
    }
    let blocks = sitp_blocks(&o.application)?;
    print_blocks(&blocks);
    c.partner.learn_key_counters(&c.meter, &blocks);
    // The meter listens again right after its answer.
    if let Ok(f) = Frame::parse(&bytes, FrameFormat::NoCrc) {
        c.exchange.handle(c.radio.now(), &f);
    }
    Ok(true)
}

fn report_failure(label: &str, outcome: Outcome) -> Result<ExitCode> {
    match outcome {
        Outcome::Failed(f) => println!("{label}: {f}"),
        Outcome::Sent => println!("{label}: sent, no answer expected"),
        Outcome::Answer { .. } => {}
    }
    Ok(ExitCode::from(1))
}

fn install(
    args: &Args,
    radio: &mut Radio,
    partner: &mut Partner,
    state: &Path,
    policy: Policy,
    wait: Duration,
) -> Result<ExitCode> {
    let wanted = args.meter.as_deref().map(parse_meter_arg).transpose()?;
    println!(
        "waiting for an installation request{} …",
        wanted
            .as_ref()
            .map(|m| format!(" from {}", meter_label(m)))
            .unwrap_or_default()
    );
    for attempt in 1..=policy.tries {
        let until = Instant::now() + wait;
        let request = loop {
            if Instant::now() >= until {
                println!("no installation request within {wait:?}");
                return Ok(ExitCode::from(1));
            }
            let Some((bytes, rssi)) = radio.wait_for(wanted.as_ref(), wait)? else {
                continue;
            };
            let frame = Frame::parse(&bytes, FrameFormat::NoCrc)?;
            if frame.repr.link.control() == ControlField::SND_IR {
                radio.rssi = rssi;
                break bytes;
            }
            if attempt > 1 && frame.repr.link.control() == ControlField::SND_NR {
                let m = frame.meter().map(|m| meter_label(&m)).unwrap_or_default();
                println!("← SND-NR from {m}: installed");
                save(partner, state)?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let frame = Frame::parse(&request, FrameFormat::NoCrc)?;
        let Some(meter) = frame.meter() else {
            continue;
        };
        println!("← SND-IR from {}", meter_label(&meter));
        let mut exchange = Exchange::new(meter, policy);
        exchange.handle(radio.now(), &frame);
        let confirm = partner.confirm_installation(&frame, radio.rssi)?;
        if let Outcome::Failed(f) = radio.exchange(&mut exchange, &confirm)? {
            println!("{}: {f}", meter_label(&meter));
            continue;
        }
        // The meter's next telegram tells: SND-NR when it took the confirmation.
        let Some((bytes, _)) = radio.wait_for(Some(&meter), wait)? else {
            println!("{} fell silent", meter_label(&meter));
            return Ok(ExitCode::from(1));
        };
        let next = Frame::parse(&bytes, FrameFormat::NoCrc)?;
        if next.repr.link.control() == ControlField::SND_NR {
            println!("← SND-NR from {}: installed", meter_label(&meter));
            save(partner, state)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "← {} again from {}: confirmation not taken",
            control_name(&next),
            meter_label(&meter)
        );
        radio.put_back(bytes);
    }
    println!("installation not confirmed after {} tries", policy.tries);
    Ok(ExitCode::from(1))
}

fn random_key() -> Result<Key> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for a new key")?;
    let k = Key::new(b);
    b.fill(0);
    Ok(k)
}

/// Writes the key file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
