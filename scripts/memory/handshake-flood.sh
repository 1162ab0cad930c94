#!/bin/bash
# usage: scripts/memory/handshake-flood.sh rust BIN [N] [WAIT_S]
#        scripts/memory/handshake-flood.sh node PEER_DIR [N] [WAIT_S]
# N (default 20,000) Engine.IO polling handshakes, each on a new connection,
# never polled again; RSS of the server (KiB) before, at its peak, right
# after the flood and WAIT_S (default 60) seconds later, when every session
# has expired (pingInterval + pingTimeout = 45 s).
KIND=$1; WHAT=$2; N=${3:-20000}; WAIT=${4:-60}
DIR=$(cd "$(dirname "$0")" && pwd)
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P=$(free); I=$(free)
if [ "$KIND" = node ]; then
  (cd "$WHAT" && PORT=$P INTERNAL_PORT=$I EVENTS_PER_SECOND=0 exec node server.js) > /tmp/handshake-flood-server.log 2>&1 & SP=$!
else
  "$WHAT" --listen 127.0.0.1:$P --internal-listen 127.0.0.1:$I --events-per-second 0 > /tmp/handshake-flood-server.log 2>&1 & SP=$!
fi
for _ in $(seq 1 100); do curl -sf 127.0.0.1:$I/health > /dev/null && break; sleep 0.1; done
sleep 1
rss() { awk '/VmRSS/ { print $2 }' /proc/$SP/status; }
R0=$(rss); PEAK=$R0
NOKEEP=1 node "$DIR/handshake-flood.js" 127.0.0.1:$P "$N" 50 > /tmp/handshake-flood.out & FP=$!
while kill -0 $FP 2> /dev/null; do r=$(rss); [ "$r" -gt "$PEAK" ] && PEAK=$r; sleep 0.2; done
R1=$(rss)
for _ in $(seq 1 "$WAIT"); do sleep 1; r=$(rss); [ "$r" -gt "$PEAK" ] && PEAK=$r; done
echo "$KIND N=$N flood=$(cat /tmp/handshake-flood.out) rss_before=$R0 peak=$PEAK after_flood=$R1 after_${WAIT}s=$(rss) KiB; per_session=$(( (R1 - R0) * 1024 / N )) B"
kill -TERM $SP; wait $SP 2> /dev/null
