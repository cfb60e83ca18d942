#!/usr/bin/env bash
# Contract test of the HTTP API: schemathesis (from PyPI, in a venv made here) against a real
# `tributary serve`, driven by the server's own /openapi.json. Checks: no 5xx, every response
# conforms to the document (schema and content type). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${SCHEMATHESIS_VENV:-target/ci-venv}"
if [ ! -x "$venv/bin/pip" ]; then
  echo "== making the venv $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs its venv package for `python3 -m venv`.
    rm -rf "$venv"
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
fi
# A no-op when the pinned versions are installed already.
"$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/contract-requirements.txt
"$venv/bin/schemathesis" --version

# The binary of the test build (`cargo test` builds it for the integration tests): the same
# workspace-wide features, so nothing is rebuilt after the tests (`cargo build -p tributary-cli`
# resolves other dependency features and rebuilt the deltalake tree, about ten minutes here).
cargo test --quiet --workspace --no-run
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/tributary.toml" <<TOML
listen = "127.0.0.1:$port"
state_dir = "$work/state"
data_dir = "$work/data"
[[api.orgs]]
org_id = "CONTRACT@AdobeOrg"
api_key = "contract-key"
bearer_token = "contract-token"
TOML
TRIBUTARY_SECRET_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \
  target/debug/tributary serve --config "$work/tributary.toml" >"$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health/live', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

echo "== schemathesis against http://127.0.0.1:$port/openapi.json"
status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer contract-token" -H "x-api-key: contract-key" \
  -H "x-gw-ims-org-id: CONTRACT@AdobeOrg" -H "x-sandbox-name: prod" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing --max-examples 15 --workers 2 || status=$?
if [ "$status" -ne 0 ]; then
  echo "== schemathesis failed ($status); the server's log:"
  tail -50 "$work/serve.log"
fi
exit "$status"
