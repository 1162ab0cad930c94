#!/bin/bash
# usage: scripts/memory/slow-client.sh BIN — RSS of the server (KiB) with one
# websocket client that stops reading while 1 KB items are published to its
# timeline, at the default client_queue_max (1024): before, peak while
# publishing, and after the client was disconnected.
BIN=${1:-target/release/switchboard}
DIR=$(cd "$(dirname "$0")" && pwd)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free); I=$(free)
"$BIN" --listen 127.0.0.1:$P --internal-listen 127.0.0.1:$I --events-per-second 0 --max-body 1000000 > /tmp/slow-client-server.log 2>&1 & SP=$!
for _ in $(seq 1 100); do curl -sf 127.0.0.1:$I/health > /dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ { print $2 }' /proc/$SP/status; }
R0=$(rss); PEAK=$R0
node "$DIR/slow-client.js" $P $I > /tmp/slow-client.out & CP=$!
while kill -0 $CP 2> /dev/null; do r=$(rss); [ "$r" -gt "$PEAK" ] && PEAK=$r; sleep 0.1; done
sleep 2
echo "$(cat /tmp/slow-client.out) rss_before=$R0 peak=$PEAK after=$(rss) KiB"
kill -TERM $SP; wait $SP 2> /dev/null
