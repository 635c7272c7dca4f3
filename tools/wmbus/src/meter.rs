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
use wmbus_security::exchange::{Action, Exchange, Expect, Failure, Handled, Policy, Window};
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
    },
    /// List the meter's active keys, versions and counters (SITP BCF 09h).
    Keys,
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
                    println!("→ {} (try {})", request.name, exchange.tries());
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
                    let from_meter = frame.meter().is_some_and(|m| same(&m, exchange.meter()));
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
                        Handled::Window => {
                            println!("  meter heard ({}): window open", control_name(&frame));
                        }
                        Handled::Ignored => {}
                    }
                }
            }
        }
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
            if meter.is_none_or(|m| frame.meter().is_some_and(|f| same(&f, m))) {
                return Ok(Some((r.telegram.clone(), r.rssi_dbm)));
            }
        }
        Ok(None)
    }
}

fn same(a: &MeterAddress, b: &MeterAddress) -> bool {
    a.manufacturer == b.manufacturer && a.address.ident == b.address.ident
}

fn control_name(frame: &Frame<'_>) -> &'static str {
    match frame.repr.link.control() {
        ControlField::SND_NR => "SND-NR",
        ControlField::SND_IR => "SND-IR",
        ControlField::ACC_NR => "ACC-NR",
        ControlField::ACC_DMD => "ACC-DMD",
        ControlField::RSP_UD => "RSP-UD",
        ControlField::ACK => "ACK",
        _ => "frame",
    }
}

fn meter_label(m: &MeterAddress) -> String {
    format!("{}.{}", m.manufacturer, m.address.ident)
}

fn parse_meter_arg(text: &str) -> Result<MeterAddress> {
    let (m, id) = keyfile::parse_meter(text)
        .ok_or_else(|| anyhow::anyhow!("meter {text:?}: give MFR.ID, e.g. XYZ.12345678"))?;
    let manufacturer =
        m.ok_or_else(|| anyhow::anyhow!("meter {text:?}: give the manufacturer, MFR.ID"))?;
    Ok(MeterAddress {
        manufacturer,
        address: wmbus_frame::codepoints::Address {
            ident: id,
            version: 0,
            device_type: wmbus_frame::codepoints::DeviceType(0),
        },
    })
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

fn save(partner: &Partner, path: &Path) -> Result<()> {
    std::fs::write(path, partner.to_text())
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
            DataInfo::KEY_COUNTERS => {
                let mut s = String::from("keys:");
                for (id, version, counter) in key_counters(&b.data) {
                    s.push_str(&format!(" {id:02X}h v{version} counter {counter};"));
                }
                s
            }
            DataInfo::CMAC8 | DataInfo::CMAC16 => "executed (secured data echoed)".to_string(),
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
    let gateway = {
        let mut g = parse_meter_arg(&args.gateway)?;
        g.address.version = 0x01;
        g.address.device_type = wmbus_frame::codepoints::DeviceType(0x31);
        g
    };
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
    let request = match &args.action {
        MeterAction::Install => bail!("installation is handled above"),
        MeterAction::Read { .. } => partner.request_data(&meter, radio.rssi, false)?,
        MeterAction::Reset => partner.reset_link(&meter, radio.rssi)?,
        MeterAction::Command { apdu, key_id } => {
            let (app_key, version) = keys.get(&meter, Some(*key_id)).ok_or_else(|| {
                anyhow::anyhow!("no key id={key_id:02X} for {label} in the key file")
            })?;
            if partner.key_counter(&meter, *key_id) == 0 {
                println!("KeyCounter of key {key_id:02X}h unknown: asking the meter first");
                let mut r = partner.sitp(&meter, &master()?.0, &list_keys_block(), radio.rssi)?;
                r.name = "SITP key list";
                save(&partner, &state)?;
                let outcome = radio.exchange(&mut exchange, &r)?;
                let Outcome::Answer { bytes } = outcome else {
                    return report_failure(&label, outcome);
                };
                let o = open_answer(&mut receiver, radio.now(), &bytes);
                if refused(&o) || !matches!(o.result, SecurityResult::Authenticated) {
                    println!("the key list did not come back authenticated");
                    return Ok(ExitCode::from(1));
                }
                let blocks = sitp_blocks(&o.application)?;
                print_blocks(&blocks);
                partner.learn_key_counters(&meter, &blocks);
                // The meter listens again right after its answer.
                if let Ok(f) = Frame::parse(&bytes, FrameFormat::NoCrc) {
                    exchange.handle(radio.now(), &f);
                }
            }
            let counter = partner.next_key_counter(&meter, *key_id);
            let apdu = hex::decode(apdu).context("--apdu is not hex")?;
            let block = secured_data_block(0, *key_id, version, &app_key, counter, &apdu)?;
            partner.sitp(&meter, &master()?.0, &block, radio.rssi)?
        }
        MeterAction::Keys => {
            let mut r = partner.sitp(&meter, &master()?.0, &list_keys_block(), radio.rssi)?;
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
