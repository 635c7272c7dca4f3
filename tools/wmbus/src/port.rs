//! The dongle's serial port, synchronously (for `wmbus bench` and `wmbus meter`): open it,
//! read into a host engine, run dialogues ([`Dialogue`]) while keeping telegrams that arrive
//! meanwhile.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wmbus_dongle::dialogue::{Action, Dialogue};
use wmbus_dongle::{Event, Host, Kind, LinkMode, Received, Step};

/// A duration: seconds, or a number with ms, s, m or h.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (s.get(..i).unwrap_or(""), s.get(i..).unwrap_or("")),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => bail!("duration unit {other:?}: use ms, s, m or h"),
    };
    if !(secs.is_finite() && secs > 0.0) {
        bail!("duration must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The device, read and written with timeouts.
pub(crate) trait Port: Read + Write {}
impl<T: Read + Write> Port for T {}

/// Reads a file or stdin; writes go nowhere (SDR text streams).
struct ReadOnly(Box<dyn Read>);

impl Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ReadOnly {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn open(device: &Path, kind: Kind) -> Result<Box<dyn Port>> {
    match kind.baud_rate() {
        Some(baud) => {
            let port = serialport::new(device.to_string_lossy(), baud)
                .timeout(Duration::from_millis(100))
                .open()
                .with_context(|| format!("opening {}", device.display()))?;
            Ok(Box::new(port))
        }
        None if device.as_os_str() == "-" => Ok(Box::new(ReadOnly(Box::new(io::stdin())))),
        None => Ok(Box::new(ReadOnly(Box::new(
            File::open(device).with_context(|| format!("opening {}", device.display()))?,
        )))),
    }
}

/// Reads what the device has (waiting up to its read timeout) into `host`.
pub(crate) fn read_some(port: &mut dyn Port, host: &mut dyn Host) -> io::Result<usize> {
    let mut buf = [0u8; 1024];
    match port.read(&mut buf) {
        Ok(n) => {
            host.push(buf.get(..n).unwrap_or(&[]));
            Ok(n)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// The init dialogue ([`Dialogue`]), synchronously; telegrams meanwhile are kept.
pub(crate) fn init(
    port: &mut dyn Port,
    host: &mut dyn Host,
    mode: LinkMode,
    started: Instant,
    early: &mut Vec<Received>,
) -> Result<()> {
    let steps = host.init(mode).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_steps(port, host, steps, started, early)
}

/// Runs a dialogue's steps, synchronously; telegrams meanwhile are kept.
pub(crate) fn run_steps(
    port: &mut dyn Port,
    host: &mut dyn Host,
    steps: Vec<Step>,
    started: Instant,
    early: &mut Vec<Received>,
) -> Result<()> {
    let mut dialogue = Dialogue::new(steps);
    loop {
        match dialogue.poll(now_ms(started)) {
            Action::Done => return Ok(()),
            Action::Failed(step) => {
                bail!("the dongle did not answer '{step}' (wrong kind or speed?)")
            }
            Action::Write(bytes) => {
                port.write_all(&bytes)?;
                port.flush()?;
            }
            Action::Wait(_) => {
                read_some(port, host)?;
                while let Some(e) = host.poll(now_ms(started)) {
                    match e {
                        Event::Reply(r) => {
                            dialogue.reply(r.code);
                        }
                        Event::Telegram(r) => early.push(r),
                        Event::Discarded { .. } => {}
                    }
                }
            }
        }
    }
}

pub(crate) fn now_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
