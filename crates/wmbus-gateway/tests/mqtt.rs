#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! MQTT through a real broker on loopback: Debian's mosquitto (installed by `.ci/run` and
//! `tools/test.sh`), `wmbusd` on the simulated dongle with simulated meters, and a real
//! client subscribed to everything: per-meter state payloads, retained availability, Home
//! Assistant discovery for the meters that decode (and none for the one with a wrong key).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker() -> (Broker, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| Command::new(b).arg("-h").output().is_ok())
        .expect("mosquitto is not installed: run tools/test.sh (or apt-get install mosquitto)");
    let broker = Broker(
        Command::new(bin)
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (broker, port);
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("mosquitto did not start on port {port}");
}

/// Subscribes to everything; returns (topic, payload, retain) as they come.
fn subscriber(port: u16, name: &'static str) -> mpsc::Receiver<(String, Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut o = MqttOptions::new(name, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(o, 100);
        client.subscribe("#", QoS::AtLeastOnce).unwrap();
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx
                        .send((p.topic.clone(), p.payload.to_vec(), p.retain))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    rx
}

/// The simulated iM871A with the meters of `testdata/sim/{meters}` on `link`.
fn sim_options(meters: &str, link: &Path) -> wmbus_sim::Options {
    wmbus_sim::Options {
        dongle: "im871a".into(),
        telegrams: None,
        meters: Some(root().join("testdata/sim").join(meters)),
        interval: 0,
        repeat: 1,
        count: 0,
        linger: 0,
        link: Some(link.to_path_buf()),
        garbage_every: 0,
        disconnect_after: 0,
        reconnect_delay: 0,
        rssi: -70.0,
        seed: 3,
        duration: 0,
        silence_every: 0,
        silence: 0,
    }
}

/// `wmbusd` on the simulated dongle, publishing to the broker, keys from `testdata/sim`.
fn wmbusd(link: &Path, port: u16, keys: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wmbusd"))
        .arg("--device")
        .arg(link)
        .args(["--dongle", "im871a", "--mqtt", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--keys")
        .arg(root().join("testdata/sim").join(keys))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn states_availability_and_discovery() {
    let (_broker, port) = broker();
    let messages = subscriber(port, "test-subscriber");
    let dir = std::env::temp_dir().join(format!("wmbusd-mqtt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("dongle");
    let mut options = sim_options("meters.toml", &link);
    options.count = 6;
    options.linger = 800;
    let sim = thread::spawn(move || wmbus_sim::run(&options, &mut |_| {}).unwrap());
    thread::sleep(Duration::from_millis(300));
    let daemon = wmbusd(&link, port, "keys.txt", &[]);
    assert_eq!(sim.join().unwrap(), 6);
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    thread::sleep(Duration::from_millis(500));
    let got: Vec<(String, Vec<u8>, bool)> = messages.try_iter().collect();
    let log = String::from_utf8_lossy(&out.stderr);
    let topics: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();

    // Availability: online first, offline at the end.
    let status: Vec<&[u8]> = got
        .iter()
        .filter(|m| m.0 == "wmbus/status")
        .map(|m| m.1.as_slice())
        .collect();
    assert_eq!(status.first(), Some(&&b"online"[..]), "{topics:?}\n{log}");
    assert_eq!(status.last(), Some(&&b"offline"[..]), "{topics:?}");

    // One state per telegram, as the JSON line.
    let states: Vec<Value> = got
        .iter()
        .filter(|m| m.0.ends_with("/state"))
        .map(|m| serde_json::from_slice(&m.1).unwrap())
        .collect();
    assert_eq!(states.len(), 6, "{topics:?}");
    let water = got
        .iter()
        .find(|m| m.0 == "wmbus/ZRI_20251128/state")
        .map(|m| serde_json::from_slice::<Value>(&m.1).unwrap())
        .expect("water meter state");
    assert_eq!(water["status"], "ok");
    assert_eq!(water["records"][0]["value"], 1234.567);

    // Discovery: retained configs for the meters that decode.
    let config = got
        .iter()
        .find(|m| m.0 == "homeassistant/sensor/wmbus_ZRI_20251128/volume/config")
        .expect("volume discovery");
    let c: Value = serde_json::from_slice(&config.1).unwrap();
    assert_eq!(c["state_topic"], "wmbus/ZRI_20251128/state");
    assert_eq!(c["unit_of_measurement"], "m³");
    assert_eq!(c["device_class"], "water");
    assert_eq!(c["state_class"], "total_increasing");
    assert_eq!(c["availability_topic"], "wmbus/status");
    assert!(c["value_template"].as_str().unwrap().contains("'volume'"));
    assert!(topics.contains(&"homeassistant/sensor/wmbus_ZRI_20251128/flow_temperature/config"));
    assert!(topics.contains(&"homeassistant/sensor/wmbus_ELS_12345678/volume/config"));
    let gas: Value = serde_json::from_slice(
        &got.iter()
            .find(|m| m.0 == "homeassistant/sensor/wmbus_ELS_12345678/volume/config")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(gas["device_class"], "gas");
    assert!(
        !topics
            .iter()
            .any(|t| t.contains("KAM_33225544") && t.ends_with("/config")),
        "no discovery for a meter whose key is wrong"
    );
    // A client that comes later gets the retained messages: availability and discovery.
    let late = subscriber(port, "late-subscriber");
    thread::sleep(Duration::from_millis(700));
    let retained: Vec<(String, Vec<u8>, bool)> = late.try_iter().collect();
    assert!(
        retained
            .iter()
            .any(|m| m.0 == "wmbus/status" && m.1 == b"offline" && m.2),
        "{retained:?}"
    );
    assert!(
        retained
            .iter()
            .any(|m| m.0 == "homeassistant/sensor/wmbus_ZRI_20251128/volume/config" && m.2)
    );
    assert!(
        !retained.iter().any(|m| m.0.ends_with("/state")),
        "states are not retained"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request published on `wmbus/{MFR}_{id}/request` is run in the meter's next window;
/// the account comes back on `wmbus/{MFR}_{id}/exchange`.
#[test]
fn requests_over_mqtt() {
    let (_broker, port) = broker();
    let messages = subscriber(port, "test-subscriber-talk");
    let dir = std::env::temp_dir().join(format!("wmbusd-mqtt-talk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("dongle");
    let mut options = sim_options("talk.toml", &link);
    options.duration = 8000;
    options.linger = 300;
    let sim = thread::spawn(move || wmbus_sim::run(&options, &mut |_| {}).unwrap());
    thread::sleep(Duration::from_millis(300));
    let daemon = wmbusd(&link, port, "talk-keys.txt", &["--link-mode", "T2"]);
    // Once the daemon is online, ask for a link reset and a read.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while std::time::Instant::now() < until {
        if let Ok(m) = messages.recv_timeout(Duration::from_millis(100)) {
            let online = m.0 == "wmbus/status" && m.1 == b"online";
            seen.push(m);
            if online {
                break;
            }
        }
    }
    let mut o = MqttOptions::new("test-requester", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(o, 10);
    for body in [r#"{"action":"reset"}"#, r#"{"action":"read"}"#] {
        client
            .publish("wmbus/XYZ_12345678/request", QoS::AtLeastOnce, false, body)
            .unwrap();
    }
    thread::spawn(move || for _ in connection.iter() {});
    sim.join().unwrap();
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.wait_with_output().unwrap();
    thread::sleep(Duration::from_millis(500));
    seen.extend(messages.try_iter());
    let log = String::from_utf8_lossy(&out.stderr);
    let exchanges: Vec<Value> = seen
        .iter()
        .filter(|m| m.0 == "wmbus/XYZ_12345678/exchange")
        .map(|m| serde_json::from_slice(&m.1).unwrap())
        .collect();
    assert_eq!(exchanges.len(), 2, "{exchanges:?}\n{log}");
    assert_eq!(exchanges[0]["request"], "reset");
    assert_eq!(exchanges[0]["answer"], "ACK");
    assert_eq!(exchanges[1]["request"], "read");
    assert_eq!(exchanges[1]["outcome"], "answered");
}
