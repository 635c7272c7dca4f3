//! Talking to simulated meters: `wmbus simulate` with `[meters.talk]` meters on a
//! pseudo-terminal, and `wmbus meter` runs against it.
#![allow(clippy::std_instead_of_core)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `wmbus simulate` with talking meters on a pseudo-terminal, its log collected.
#[derive(Debug)]
pub struct Sim {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// The terminal (a link in the test's folder).
    pub tty: PathBuf,
    /// The simulated dongle's kind.
    pub dongle: &'static str,
}

impl Sim {
    /// Starts `wmbus` (`exe`) `simulate` with `testdata/sim/{meters}` on `dir/tty` (an
    /// iM871A).
    pub fn start(exe: &str, dir: &Path, meters: &str) -> Self {
        Self::start_with(exe, dir, meters, "im871a")
    }

    /// [`Self::start`] with another kind of dongle.
    pub fn start_with(exe: &str, dir: &Path, meters: &str, dongle: &'static str) -> Self {
        let tty = dir.join("tty");
        let mut child = Command::new(exe)
            .args(["simulate", "--dongle", dongle, "--duration", "300"])
            .arg("--meters")
            .arg(crate::testdata().join("sim").join(meters))
            .arg("--link")
            .arg(&tty)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            log,
            tty,
            dongle,
        }
    }

    /// Waits up to 5 s for a log line containing `text`.
    pub fn expect_log(&self, text: &str) {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no log line with {text:?}: {:#?}", self.log.lock().unwrap());
    }

    /// Log lines containing `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wmbus` (`exe`) `meter ARGS` on the simulator's terminal; exit status and stdout.
pub fn meter(exe: &str, sim: &Sim, keys: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(exe)
        .arg("meter")
        .args(args)
        .arg("--device")
        .arg(&sim.tty)
        .args(["--dongle", sim.dongle, "--wait", "15s"])
        .arg("--keys")
        .arg(keys)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!(
        "wmbus meter {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

/// Copies a key file, readable by its owner only.
pub fn private_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
