//! # wmbus-sim
//!
//! A simulated USB dongle on a pseudo-terminal. It prints the terminal's
//! path as the first line on stdout, answers the host's init dialogue as the device would
//! (`wmbus_dongle::Device`), and once the host has set a link mode, delivers telegrams in the
//! device's own framing: from a file of hex telegrams (any frame format) or from simulated
//! meters built with the encoder. On request it injects garbage and partial frames between
//! telegrams, and unplugs (closes the terminal) and comes back.

#![forbid(unsafe_code)]
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

pub mod firmware;
pub mod meter;

use std::fs::File;
use std::io::{Read, Write};

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wmbus_dongle::{Device, Indication, Kind, LinkMode};
use wmbus_frame::dll::MAX_RAW_FRAME_LEN;
use wmbus_frame::frame::normalize;
use wmbus_host::encode::{Description, encode};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::vectors::Rng;

/// What to simulate (the options of `wmbus simulate`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Device kind: im871a, iu891a, amb8465, amb8465-transparent, cul, rc1180, rtlwmbus, rtl433.
    pub dongle: String,
    /// Telegrams to deliver: hex lines in any frame format (rtl_wmbus, rtl_433 and simulation
    /// lines too).
    pub telegrams: Option<PathBuf>,
    /// Simulated meters (TOML; docs/gateway.md).
    pub meters: Option<PathBuf>,
    /// Milliseconds between telegrams of a telegram file.
    pub interval: u64,
    /// Deliver the telegram file this many times (0: forever).
    pub repeat: u32,
    /// Stop after this many telegrams (0: no limit).
    pub count: u64,
    /// Keep the terminal open this many milliseconds after the last telegram.
    pub linger: u64,
    /// Also expose the terminal under this path (a symlink that follows reconnects).
    pub link: Option<PathBuf>,
    /// Garbage (and every third time a partial frame) before every Nth telegram (0: none).
    pub garbage_every: u64,
    /// Unplug after this many telegrams (0: never), and come back after --reconnect-delay.
    pub disconnect_after: u64,
    /// Milliseconds unplugged.
    pub reconnect_delay: u64,
    /// RSSI of file telegrams, dBm.
    pub rssi: f32,
    /// Seed for meter jitter and garbage.
    pub seed: u64,
    /// Stop delivering after this many milliseconds (0: when all are delivered).
    pub duration: u64,
    /// Fall silent after every Nth telegram (0: never) …
    pub silence_every: u64,
    /// … for this many milliseconds (the schedule resumes after it).
    pub silence: u64,
}

/// How long the device waits for the host's configuration before giving up.
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);

/// A simulated meter (`--meters`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimMeter {
    /// Seconds between telegrams.
    interval: f64,
    /// Uniform jitter, ± seconds.
    #[serde(default)]
    jitter: f64,
    /// RSSI, dBm.
    #[serde(default = "default_rssi")]
    rssi: f32,
    /// Share of telegrams not sent (0–1): a meter the receiver misses.
    #[serde(default)]
    drop: f64,
    /// Key to seal with instead of the description's (a meter with a wrong key).
    #[serde(default)]
    wrong_key: Option<String>,
    /// The telegram to send; access number and counters advance with every telegram.
    description: Description,
    /// A bidirectional meter: listens after it sends, answers partners ([`meter`]).
    #[serde(default)]
    talk: Option<meter::TalkDesc>,
}

fn default_rssi() -> f32 {
    -70.0
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetersFile {
    meters: Vec<SimMeter>,
}

/// A telegram due at a time.
struct Due {
    at: Duration,
    telegram: Vec<u8>,
    rssi: f32,
}

fn file_telegrams(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Line::Skip => {}
            Line::Invalid(e) => bail!("{}:{}: {e}", path.display(), i + 1),
            Line::Telegram { bytes, .. } => {
                if wmbus_frame::wired::looks_wired(&bytes) {
                    eprintln!("{}:{}: skipped: a wired M-Bus frame", path.display(), i + 1);
                    continue;
                }
                let mut buf = [0u8; MAX_RAW_FRAME_LEN];
                match normalize(&bytes, None, &mut buf) {
                    Ok(n) => out.push(buf.get(..n.len).unwrap_or(&[]).to_vec()),
                    // A real dongle drops a frame whose CRCs fail; so does the simulation.
                    Err(e) => eprintln!("{}:{}: skipped: {e}", path.display(), i + 1),
                }
            }
        }
    }
    Ok(out)
}

/// The `n`th telegram of a one-way meter (its fragments), normalised: access number and
/// counters advanced by `n`.
fn nth_telegram(m: &SimMeter, n: u64) -> Result<Vec<Vec<u8>>> {
    let mut d = m.description.clone();
    d.tpl.access_number = d.tpl.access_number.wrapping_add(n as u8);
    if let Some(c) = d.tpl.counter.as_mut() {
        *c = c.wrapping_add(n as u32);
    }
    if let Some(a) = d.afl.as_mut() {
        a.message_counter = Some(a.message_counter.unwrap_or(1).wrapping_add(n as u32));
    }
    if let Some(k) = &m.wrong_key {
        d.key = Some(k.clone());
    }
    let frames = encode(&d).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    for f in frames.frames {
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let n = normalize(&f, None, &mut buf).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(buf.get(..n.len).unwrap_or(&[]).to_vec());
    }
    Ok(out)
}

fn read_meters(path: &Path) -> Result<MetersFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The meters' telegrams in time order, for `horizon` (or until `count`).
fn meter_schedule(file: &MetersFile, seed: u64, count: u64) -> Result<Vec<Due>> {
    let mut rng = Rng::new(seed);
    let limit = if count == 0 { 1000 } else { count };
    let mut due = Vec::new();
    for m in &file.meters {
        if m.interval <= 0.0 {
            bail!(
                "meter {}: interval must be positive",
                m.description.meter.id
            );
        }
        let per_meter = (limit / file.meters.len().max(1) as u64).max(1) + 1;
        let mut t = m.interval * (rng.below(1000) as f64 / 1000.0);
        for n in 0..per_meter {
            let at = (t + jitter(&mut rng, m.jitter)).max(0.0);
            t += m.interval;
            if m.drop > 0.0 && (rng.below(10_000) as f64) < m.drop * 10_000.0 {
                continue;
            }
            for telegram in nth_telegram(m, n)? {
                due.push(Due {
                    at: Duration::from_secs_f64(at),
                    telegram,
                    rssi: m.rssi,
                });
            }
        }
    }
    due.sort_by_key(|d| d.at);
    if count > 0 {
        due.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    }
    Ok(due)
}

/// One plugged-in session of the device: a pseudo-terminal and the device engine.
struct Plug {
    master: File,
    /// Held so the terminal stays usable while the host has it closed.
    _slave: OwnedFd,
    path: PathBuf,
    device: Arc<Mutex<Box<dyn Device>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Plug {
    fn open(kind: Kind, link: Option<&Path>) -> Result<Self> {
        let pty = nix::pty::openpty(None, None).context("opening a pseudo-terminal")?;
        let mut t = nix::sys::termios::tcgetattr(&pty.slave).context("tcgetattr")?;
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t)
            .context("tcsetattr")?;
        let path = nix::unistd::ttyname(&pty.slave).context("ttyname")?;
        if let Some(link) = link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(&path, link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        // Children of this process (a daemon started by a test) must not inherit the
        // terminal: an inherited master would keep it alive after an unplug.
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .context("F_SETFD")?;
        }
        let flags = nix::fcntl::OFlag::from_bits_truncate(
            nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).context("F_GETFL")?,
        );
        nix::fcntl::fcntl(
            &pty.master,
            nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK),
        )
        .context("F_SETFL")?;
        let master = File::from(pty.master);
        let device = Arc::new(Mutex::new(kind.device()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let mut input = master.try_clone()?;
            let mut output = master.try_clone()?;
            let device = Arc::clone(&device);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    match input.read(&mut buf) {
                        Ok(n) if n > 0 => {
                            let answers: Vec<Vec<u8>> = {
                                let Ok(mut d) = device.lock() else { return };
                                d.push(buf.get(..n).unwrap_or(&[]));
                                std::iter::from_fn(|| d.poll()).collect()
                            };
                            for a in answers {
                                write_patiently(&mut output, &a);
                            }
                        }
                        // Nothing to read (non-blocking), or the host has the terminal closed.
                        _ => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(Self {
            master,
            _slave: pty.slave,
            path,
            device,
            stop,
            reader: Some(reader),
        })
    }

    fn configured(&self) -> bool {
        self.device.lock().is_ok_and(|d| d.link_mode().is_some())
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the master ends the reader's read with an error.
        drop(self.master);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Writes to the non-blocking master, waiting while the terminal's buffer is full (the host
/// not reading); after 10 s the bytes are dropped, as a real dongle's buffer would overflow.
fn write_patiently(out: &mut File, mut bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bytes.is_empty() && Instant::now() < deadline {
        match out.write(bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Runs the simulator until every telegram is delivered; calls `on_path` with the terminal's
/// path once it is open. Returns the number of telegrams delivered.
///
/// # Errors
/// Unreadable inputs, a pseudo-terminal that cannot be opened.
pub fn run(args: &Options, on_path: &mut dyn FnMut(&Path)) -> Result<u64> {
    let kind: Kind = args
        .dongle
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown dongle kind {}", args.dongle))?;
    let needs_init = !matches!(kind, Kind::RtlWmbus | Kind::Rtl433);
    let schedule: Vec<Due> = match (&args.telegrams, &args.meters) {
        (Some(path), _) => {
            let list = file_telegrams(path)?;
            let rounds = if args.repeat == 0 {
                u32::MAX
            } else {
                args.repeat
            };
            let mut out = Vec::new();
            let mut n = 0u64;
            'fill: for _ in 0..rounds {
                for t in &list {
                    if args.count > 0 && n >= args.count {
                        break 'fill;
                    }
                    out.push(Due {
                        at: Duration::from_millis(args.interval * n),
                        telegram: t.clone(),
                        rssi: args.rssi,
                    });
                    n += 1;
                    if args.repeat == 0 && args.count == 0 && n >= 1_000_000 {
                        break 'fill;
                    }
                }
            }
            out
        }
        (None, Some(path)) => {
            let file = read_meters(path)?;
            if file.meters.iter().any(|m| m.talk.is_some()) {
                return run_talking(args, kind, &file, on_path);
            }
            meter_schedule(&file, args.seed, args.count)?
        }
        (None, None) => bail!("give --telegrams FILE or --meters FILE"),
    };
    let mut plug = Plug::open(kind, args.link.as_deref())?;
    let shown = args.link.clone().unwrap_or_else(|| plug.path.clone());
    on_path(&shown);
    eprintln!(
        "simulated {kind} on {} ({} telegrams)",
        plug.path.display(),
        schedule.len()
    );
    let mut rng = Rng::new(args.seed ^ 0x5eed);
    let started = Instant::now();
    let mut offset = Duration::ZERO;
    let mut delivered = 0u64;
    for due in &schedule {
        // Wait for the host to configure the device (a real one would not deliver before).
        match configured(&plug, needs_init) {
            Ok(waited) => offset += waited,
            Err(e) => {
                plug.close();
                return Err(e);
            }
        }
        let at = due.at + offset;
        if args.duration > 0 && at > Duration::from_millis(args.duration) {
            break;
        }
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
        if args.garbage_every > 0 && delivered % args.garbage_every == args.garbage_every - 1 {
            // Line noise; a device without framing prints only what it received (noise would
            // be taken for a frame), so it gets cut-off frames alone.
            let unframed = matches!(kind, Kind::AmberTransparent | Kind::Rc1180);
            let mut junk: Vec<u8> = if unframed {
                Vec::new()
            } else {
                (0..8).map(|_| rng.below(256) as u8).collect()
            };
            if delivered % (3 * args.garbage_every) == args.garbage_every - 1 {
                // A partial frame: the start of a telegram, cut.
                let cut = {
                    let Ok(d) = plug.device.lock() else { break };
                    d.indicate(&Indication {
                        telegram: &due.telegram,
                        rssi_dbm: due.rssi,
                        time_ms: 0,
                        link_mode: d.link_mode().unwrap_or(LinkMode::T1),
                    })
                };
                if let Some(c) = cut {
                    junk.extend_from_slice(c.get(..c.len() / 2).unwrap_or(&[]));
                }
            }
            let partial = delivered % (3 * args.garbage_every) == args.garbage_every - 1;
            if matches!(kind, Kind::Cul | Kind::RtlWmbus | Kind::Rtl433) {
                junk.push(b'\n');
            }
            write_patiently(&mut plug.master, &junk);
            // A cut-off frame is followed by radio silence; devices without framing rely
            // on it (a 2 s inter-chunk timeout) to drop the rest.
            if partial && matches!(kind, Kind::Amber | Kind::AmberTransparent | Kind::Rc1180) {
                thread::sleep(Duration::from_millis(2300));
                offset += Duration::from_millis(2300);
            }
        }
        // A telegram the device would not pass on (too long, not listening) is not counted.
        if !deliver(&mut plug, &due.telegram, due.rssi, started) {
            continue;
        }
        delivered += 1;
        if args.silence_every > 0
            && args.silence > 0
            && delivered.is_multiple_of(args.silence_every)
        {
            eprintln!("silent for {} ms", args.silence);
            thread::sleep(Duration::from_millis(args.silence));
            offset += Duration::from_millis(args.silence);
        }
        if args.disconnect_after > 0 && delivered == args.disconnect_after {
            // Let the host read what was delivered, then pull the plug.
            thread::sleep(Duration::from_millis(300));
            eprintln!("unplugging after {delivered} telegrams");
            // The name goes first, so no host opens a closed terminal's reused number.
            if let Some(link) = &args.link {
                let _ = std::fs::remove_file(link);
            }
            plug.close();
            thread::sleep(Duration::from_millis(args.reconnect_delay));
            offset += Duration::from_millis(args.reconnect_delay);
            plug = Plug::open(kind, args.link.as_deref())?;
            eprintln!("plugged in again on {}", plug.path.display());
        }
    }
    finish(args, plug, delivered)
}

/// Lingers, unplugs, removes the link.
fn finish(args: &Options, plug: Plug, delivered: u64) -> Result<u64> {
    thread::sleep(Duration::from_millis(args.linger));
    eprintln!("delivered {delivered} telegrams");
    plug.close();
    if let Some(link) = &args.link {
        let _ = std::fs::remove_file(link);
    }
    Ok(delivered)
}

/// Waits for the host to configure the device; returns how long it took.
fn configured(plug: &Plug, needs_init: bool) -> Result<Duration> {
    let mut waited = Duration::ZERO;
    while needs_init && !plug.configured() {
        if waited > CONFIGURE_TIMEOUT {
            bail!("the host did not configure the device within {CONFIGURE_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    Ok(waited)
}

/// A meter of a file with talking meters, as it runs.
struct Live {
    config: SimMeter,
    talking: Option<meter::Meter>,
    next: Duration,
    sent: u64,
    listening_until: Duration,
}

/// Delivers `telegram` through the device as received with `rssi`; false when the device
/// would not pass it on.
fn deliver(plug: &mut Plug, telegram: &[u8], rssi: f32, started: Instant) -> bool {
    let bytes = {
        let Ok(d) = plug.device.lock() else {
            return false;
        };
        d.indicate(&Indication {
            telegram,
            rssi_dbm: rssi,
            time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            link_mode: d.link_mode().unwrap_or(LinkMode::T1),
        })
    };
    match bytes {
        Some(b) => {
            write_patiently(&mut plug.master, &b);
            true
        }
        None => false,
    }
}

/// Uniform in ±`amount` seconds (0 without drawing).
fn jitter(rng: &mut Rng, amount: f64) -> f64 {
    if amount > 0.0 {
        (rng.below(2001) as f64 / 1000.0 - 1.0) * amount
    } else {
        0.0
    }
}

fn jittered(rng: &mut Rng, interval: f64, amount: f64) -> Duration {
    Duration::from_secs_f64((interval + jitter(rng, amount)).max(0.01))
}

/// The simulator with talking meters ([`meter::Meter`]): each sends on its own schedule and
/// listens for `window` seconds after; what the host transmits reaches every meter that is
/// listening, and their answers come back through the device 20 ms later. Runs for
/// `duration` (or until `count` telegrams); logs each meter's account on stderr.
fn run_talking(
    args: &Options,
    kind: Kind,
    file: &MetersFile,
    on_path: &mut dyn FnMut(&Path),
) -> Result<u64> {
    let mut rng = Rng::new(args.seed);
    let mut live = Vec::new();
    for m in &file.meters {
        if m.interval <= 0.0 {
            bail!(
                "meter {}: interval must be positive",
                m.description.meter.id
            );
        }
        let talking = match &m.talk {
            Some(t) => Some(
                meter::Meter::new(&m.description, t)
                    .map_err(|e| anyhow::anyhow!("meter {}: {e}", m.description.meter.id))?,
            ),
            None => None,
        };
        live.push(Live {
            config: m.clone(),
            talking,
            next: Duration::from_secs_f64(m.interval * (rng.below(1000) as f64 / 1000.0)),
            sent: 0,
            listening_until: Duration::ZERO,
        });
    }
    let needs_init = !matches!(kind, Kind::RtlWmbus | Kind::Rtl433);
    let mut plug = Plug::open(kind, args.link.as_deref())?;
    let shown = args.link.clone().unwrap_or_else(|| plug.path.clone());
    on_path(&shown);
    eprintln!(
        "simulated {kind} on {} ({} meters, {} talking)",
        plug.path.display(),
        live.len(),
        live.iter().filter(|l| l.talking.is_some()).count()
    );
    let started = Instant::now();
    if let Err(e) = configured(&plug, needs_init) {
        plug.close();
        return Err(e);
    }
    let origin = Instant::now();
    let mut delivered = 0u64;
    let mut answers: Vec<(Duration, Vec<u8>, f32)> = Vec::new();
    loop {
        let now = origin.elapsed();
        if (args.duration > 0 && now > Duration::from_millis(args.duration))
            || (args.count > 0 && delivered >= args.count)
        {
            break;
        }
        let heard = match plug.device.lock() {
            Ok(mut d) => d.take_transmitted(),
            Err(_) => break,
        };
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        for t in &heard {
            for l in &mut live {
                let listening = now <= l.listening_until;
                let Some(m) = l.talking.as_mut() else {
                    continue;
                };
                if !listening {
                    continue;
                }
                for a in m.receive(wmbus_security::time::Instant(ms), t) {
                    answers.push((now + Duration::from_millis(20), a, l.config.rssi));
                }
                for line in m.take_log() {
                    eprintln!("{line}");
                }
            }
        }
        let (ready, later): (Vec<_>, Vec<_>) = answers.into_iter().partition(|a| a.0 <= now);
        answers = later;
        for (_, a, rssi) in ready {
            deliver(&mut plug, &a, rssi, started);
        }
        for l in &mut live {
            if now < l.next {
                continue;
            }
            l.next = now + jittered(&mut rng, l.config.interval, l.config.jitter);
            let dropped =
                l.config.drop > 0.0 && (rng.below(10_000) as f64) < l.config.drop * 10_000.0;
            let telegrams = match l.talking.as_mut() {
                Some(m) if m.silent(ms) => continue,
                Some(m) => {
                    let t = m.spontaneous().map_err(|e| anyhow::anyhow!("{e}"))?;
                    l.listening_until = now + Duration::from_secs_f64(m.window.max(0.0));
                    vec![t]
                }
                None => nth_telegram(&l.config, l.sent)?,
            };
            l.sent += 1;
            if dropped {
                continue;
            }
            for t in telegrams {
                if deliver(&mut plug, &t, l.config.rssi, started) {
                    delivered += 1;
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    for l in &live {
        if let Some(m) = &l.talking {
            eprintln!(
                "meter {}.{}: end: installed={} master_key_version={} counter={} breaker={}",
                m.address().manufacturer,
                m.address().address.ident,
                m.installed(),
                m.master_key_version(),
                m.counter(),
                m.breaker
                    .map_or_else(|| "-".to_string(), |b| format!("{b:02X}"))
            );
        }
    }
    finish(args, plug, delivered)
}
