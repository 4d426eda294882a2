#!/usr/bin/env bash
# The whole pinsync loop with no account: start the emulator, then validate,
# plan, apply and plan again against it. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${PINSYNC_DEMO_PORT:-8917}"
cargo build --quiet --bin pinsync --example emulator
pinsync=target/debug/pinsync
work="$(mktemp -d)"
emulator_pid=""
cleanup() {
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

target/debug/examples/emulator --listen "127.0.0.1:$port" >"$work/emulator.out" 2>"$work/emulator.err" &
emulator_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening" "$work/emulator.out" 2>/dev/null && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat "$work/emulator.err" >&2; echo "the emulator did not start (is port $port free? set PINSYNC_DEMO_PORT)" >&2; exit 1; }
  sleep 0.1
done

sed "s/127.0.0.1:8917/127.0.0.1:$port/" examples/pins.emulator.yaml >"$work/pins.yaml"
export AIOZ_PINNING_API_KEY=demo-aioz-key AIOZ_PINNING_SECRET_KEY=demo-aioz-secret PINARKIVE_API_KEY=demo-pinarkive-key PSA_TOKEN=demo-psa-token

step() { printf '\n$ pinsync %s\n' "$*"; }
step validate;      "$pinsync" validate -f "$work/pins.yaml"
step plan;          "$pinsync" plan -f "$work/pins.yaml"
step apply --auto-approve; "$pinsync" apply -f "$work/pins.yaml" --auto-approve
step plan --detailed-exitcode; "$pinsync" plan -f "$work/pins.yaml" --detailed-exitcode
step state list;    "$pinsync" state list -f "$work/pins.yaml"
printf '\nThe emulator now holds:\n'
curl -fsS "http://127.0.0.1:$port/_emulator/pins" 2>/dev/null || python3 -c "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/_emulator/pins').read().decode())"
echo
