#!/usr/bin/env bash
# Browser test of the demo page (issue 5). Usage: tests/browser/run.sh path/to/pushbench-server
#
# Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and Node.js >= 20 with npm. Installs the pinned
# playwright-core (package-lock.json; it drives the system Chromium, no browser download), starts the given
# server on a free port, runs demo.test.mjs against it, and stops that server (by its PID) however the test
# ends; then the same over TLS and h2 (h2.test.mjs). The screenshot goes to $ARTIFACT_DIR (default
# tests/browser/artifacts/). Bounded: < 3 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 1 ] || { echo "usage: $0 path/to/pushbench-server" >&2; exit 2; }
server_bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$server_bin" ] || { echo "run.sh: $1 is not an executable" >&2; exit 2; }
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium_bin" ] || { echo "run.sh: no Chromium at $chromium_bin (apt-get install chromium)" >&2; exit 2; }
export CHROMIUM="$chromium_bin"
export ARTIFACT_DIR="${ARTIFACT_DIR:-$here/artifacts}"
mkdir -p "$ARTIFACT_DIR"
rm -f "$ARTIFACT_DIR/demo-failure.png" # left by an earlier failed run; would mislead

(cd "$here" && timeout 120 npm ci --no-audit --no-fund --loglevel=error)

server_log="$ARTIFACT_DIR/server.log"
"$server_bin" --listen 127.0.0.1:0 >"$server_log" 2>&1 &
server_pid=$!
stop_server() {
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

# Prints the address the server writing LOG announces for SCHEME (http or https), within 10 s.
wait_for_address() {
    local log="$1" scheme="$2" url=""
    for _ in $(seq 100); do
        url="$(grep -o "listening on $scheme://[0-9.:]*" "$log" | head -n1 | sed 's/^listening on //' || true)"
        [ -n "$url" ] && { echo "$url"; return; }
        kill -0 "$server_pid" 2>/dev/null || { echo "run.sh: the server exited:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: the server did not print its address within 10 s" >&2; cat "$log" >&2; exit 1
}

url="$(wait_for_address "$server_log" http)"
echo "run.sh: server pid $server_pid at $url"

# The test stops itself well before this; the outer timeout only guards against a hung browser.
timeout --kill-after=5 110 node "$here/demo.test.mjs" "$url"
stop_server

# The same server over TLS (its self-signed certificate) and h2: more than six streams on one page.
tls_log="$ARTIFACT_DIR/server-tls.log"
"$server_bin" --listen 127.0.0.1:0 --tls-self-signed --demo >"$tls_log" 2>&1 &
server_pid=$!
url="$(wait_for_address "$tls_log" https)"
echo "run.sh: TLS server pid $server_pid at $url"
timeout --kill-after=5 60 node "$here/h2.test.mjs" "$url"
