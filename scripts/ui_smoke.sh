#!/usr/bin/env bash
# UI smoke test: start `dagster dev` on 127.0.0.1, materialize `demo` on the same instance, refit its factors with
# another seed, and take headless Chromium screenshots of the latent_factors asset page with its factor table open
# (docs/latent_factors.png) and with the refit's drift table open (docs/latent_factors_drift.png).
# Usage: scripts/ui_smoke.sh [port]   (run from the repository root, with the project installed)
set -euo pipefail
set -m
PORT="${1:-3070}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
mkdir -p "$DAGSTER_HOME" "$ROOT/docs"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"

if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

cd "$ROOT"
instructlf run demo > /dev/null
# A refit with another seed numbers CorEx's components otherwise; the drift table shows the ids were kept.
REFIT="$DAGSTER_HOME/refit_seed.yaml"
printf 'ops: {latent_factors: {config: {seed: %s}}}\n' "$(( $(date +%s) % 1000 + 1 ))" > "$REFIT"
instructlf run demo --config "$REFIT" > /dev/null
dagster dev -w workspace.yaml -h 127.0.0.1 -p "$PORT" > "$DAGSTER_HOME/ui_smoke.log" 2>&1 &
DEV_PID=$!
trap 'kill -TERM $DEV_PID 2>/dev/null || true; wait $DEV_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if curl -sf -X POST -H 'Content-Type: application/json' \
      --data '{"query":"{ repositoriesOrError { __typename } }"}' "http://127.0.0.1:$PORT/graphql" \
      | grep -q RepositoryConnection; then
    break
  fi
  sleep 1
done

python -c "import playwright" 2>/dev/null || pip install -q playwright
python "$ROOT/scripts/ui_screenshot.py" "$PORT" "$ROOT/docs/latent_factors.png"
python "$ROOT/scripts/ui_screenshot.py" "$PORT" "$ROOT/docs/latent_factors_drift.png" --open drift
echo "screenshots: $ROOT/docs/latent_factors.png $ROOT/docs/latent_factors_drift.png"
