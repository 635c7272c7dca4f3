//! MQTT output (rumqttc): each report on `{base}/{MFR}_{id}/state`, the gateway's
//! availability retained on `{base}/status` (`online`, and `offline` as the last will), and
//! Home Assistant MQTT discovery for the main readings of each meter.

use std::collections::HashSet;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;
use tracing::{debug, warn};
use wmbus_host::report::{JsonValue, Report};

/// MQTT settings (`[mqtt]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Client id.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// Topic prefix of states and availability.
    #[serde(default = "default_base")]
    pub base_topic: String,
    /// Home Assistant discovery prefix; empty turns discovery off.
    #[serde(default = "default_discovery")]
    pub discovery_prefix: String,
}

fn default_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "wmbusd".into()
}
fn default_base() -> String {
    "wmbus".into()
}
fn default_discovery() -> String {
    "homeassistant".into()
}

/// A connected publisher.
#[derive(Debug)]
pub struct Mqtt {
    client: AsyncClient,
    config: MqttConfig,
    announced: HashSet<String>,
}

impl Mqtt {
    /// Connects (the event loop runs in its own task and reconnects by itself).
    /// Connects (in the background) and subscribes to `{base}/+/request`, whose JSON
    /// payloads (`{"action": "read"}`, `{"action": "command", "apdu": "01FD1F00"}`) go to
    /// `requests` with the meter's `MFR_ID`.
    pub fn start(
        config: MqttConfig,
        requests: tokio::sync::mpsc::Sender<(String, crate::talk::Job)>,
    ) -> Self {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_last_will(LastWill::new(
            format!("{}/status", config.base_topic),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            options.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let subscriber = client.clone();
        let filter = format!("{}/+/request", config.base_topic);
        let prefix = format!("{}/", config.base_topic);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Subscribed again on every connection (clean session).
                        if let Err(e) = subscriber.subscribe(filter.clone(), QoS::AtLeastOnce).await
                        {
                            warn!("mqtt subscribe: {e}");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let meter = p
                            .topic
                            .strip_prefix(&prefix)
                            .and_then(|t| t.strip_suffix("/request"))
                            .unwrap_or_default()
                            .to_string();
                        match serde_json::from_slice::<crate::talk::Job>(&p.payload) {
                            Ok(job) => {
                                let _ = requests.send((meter, job)).await;
                            }
                            Err(e) => warn!(topic = %p.topic, "request not understood: {e}"),
                        }
                    }
                    Ok(e) => debug!(event = ?e, "mqtt"),
                    Err(e) => {
                        warn!("mqtt: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
        Self {
            client,
            config,
            announced: HashSet::new(),
        }
    }

    fn status_topic(&self) -> String {
        format!("{}/status", self.config.base_topic)
    }

    /// Publishes `online` (retained).
    pub async fn online(&self) {
        self.publish(self.status_topic(), true, b"online".to_vec())
            .await;
    }

    /// Publishes `offline` (retained) before a clean shutdown.
    pub async fn offline(&self) {
        self.publish(self.status_topic(), true, b"offline".to_vec())
            .await;
        let _ = self.client.disconnect().await;
    }

    async fn publish(&self, topic: String, retain: bool, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
        {
            warn!("mqtt publish: {e}");
        }
    }

    /// A finished exchange on `{base}/{MFR}_{id}/exchange`.
    pub async fn exchange(&self, object: &str, result: &serde_json::Value) {
        let topic = format!("{}/{object}/exchange", self.config.base_topic);
        self.publish(topic, false, result.to_string().into_bytes())
            .await;
    }

    /// Publishes a report (its JSON line without the newline) and, the first time a meter
    /// decodes, its discovery configs.
    pub async fn report(&mut self, report: &Report, line: &[u8]) {
        let (Some(m), Some(id)) = (&report.manufacturer, &report.id) else {
            return;
        };
        let object = format!("{m}_{id}");
        let state = format!("{}/{object}/state", self.config.base_topic);
        let body = line.strip_suffix(b"\n").unwrap_or(line).to_vec();
        self.publish(state.clone(), false, body).await;
        if self.config.discovery_prefix.is_empty()
            || report.status != "ok"
            || self.announced.contains(&object)
        {
            return;
        }
        self.announced.insert(object.clone());
        for (topic, config) in discovery(report, &self.config, &state, &object) {
            self.publish(topic, true, config.to_string().into_bytes())
                .await;
        }
    }
}

/// Home Assistant's unit and device class for a reading.
fn ha_kind(
    quantity: &str,
    unit: &str,
    medium: Option<&str>,
) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match (quantity, unit) {
        ("volume", "m3") => (
            "m³",
            if medium == Some("gas") {
                "gas"
            } else {
                "water"
            },
            "total_increasing",
        ),
        ("energy", "Wh") => ("Wh", "energy", "total_increasing"),
        ("energy", "J") => ("J", "energy", "total_increasing"),
        ("power", "W") => ("W", "power", "measurement"),
        ("volume_flow", "m3/h") => ("m³/h", "volume_flow_rate", "measurement"),
        ("flow_temperature" | "return_temperature" | "external_temperature", "°C") => {
            ("°C", "temperature", "measurement")
        }
        _ => return None,
    })
}

/// The discovery topics and configs of a report's main readings: instantaneous values of
/// storage 0, tariff 0, subunit 0, one per quantity.
pub fn discovery(
    report: &Report,
    config: &MqttConfig,
    state_topic: &str,
    object: &str,
) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for r in &report.records {
        if r.storage != 0 || r.tariff != 0 || r.subunit != 0 || r.function != "instantaneous" {
            continue;
        }
        if !matches!(r.value, JsonValue::Integer(_) | JsonValue::Number(_)) {
            continue;
        }
        let Some((unit, class, state_class)) =
            ha_kind(r.quantity, r.unit.unwrap_or(""), report.device_type_name)
        else {
            continue;
        };
        if !seen.insert(r.quantity) {
            continue;
        }
        let unique = format!("wmbus_{object}_{}", r.quantity);
        let template = format!(
            "{{{{ (value_json.records | selectattr('quantity', 'eq', '{q}') | selectattr('storage', 'eq', 0) | first).value }}}}",
            q = r.quantity
        );
        out.push((
            format!("{}/sensor/wmbus_{object}/{}/config", config.discovery_prefix, r.quantity),
            json!({
                "name": r.quantity.replace('_', " "),
                "unique_id": unique,
                "object_id": unique,
                "state_topic": state_topic,
                "value_template": template,
                "unit_of_measurement": unit,
                "device_class": class,
                "state_class": state_class,
                "availability_topic": format!("{}/status", config.base_topic),
                "device": {
                    "identifiers": [format!("wmbus_{object}")],
                    "manufacturer": report.manufacturer,
                    "model": report.device_type_name.unwrap_or("meter"),
                    "name": format!("{} {}", report.manufacturer.as_deref().unwrap_or(""), report.id.as_deref().unwrap_or("")),
                    "via_device": "wmbusd",
                },
            }),
        ));
    }
    out
}
