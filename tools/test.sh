#!/usr/bin/env bash
# The test command (README): installs what the tests need besides Rust — Debian's mosquitto,
# the MQTT broker the gateway's MQTT test runs on loopback — then runs every test of the
# workspace. Extra arguments go to `cargo test` (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "tools/test.sh: installing mosquitto (apt-get)" >&2
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto >/dev/null
  # The package's own broker service is not needed: the test starts its own on a free port.
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
exec cargo test --workspace "$@"
