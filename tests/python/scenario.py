"""The client-generation scenario of tests/js/test/client-generations.test.js,
run with python-socketio's client (Socket.IO protocol v5).

    python scenario.py PUBLIC_URL INTERNAL_URL websocket|polling|upgrade

Two agents view one ticket (acks, viewers:updated, collision:warning), an
error ack and an error event, a timeline with a published item, a payload
with binary in it. Prints "ok <transport>" and exits 0, or the failure and
exits 1. Every wait is bounded.
"""

import json
import queue
import sys
import time
import urllib.request
import uuid

import socketio

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}
SERVER_EVENTS = [
    "viewers:updated", "collision:warning", "agent:joined", "agent:left",
    "ticket:error", "timeline:error", "timeline:subscribed", "timeline:new_item",
]
WAIT = 5.0


class Client:
    def __init__(self, url, transport):
        self.sio = socketio.Client(reconnection=False)
        self.events = queue.Queue()
        self.unclaimed = []
        for name in SERVER_EVENTS:
            self.sio.on(name, self._recorder(name))
        self.sio.connect(url, transports=TRANSPORTS[transport], wait_timeout=WAIT)
        if transport == "upgrade":
            deadline = time.monotonic() + WAIT
            while self.sio.transport() != "websocket":
                if time.monotonic() > deadline:
                    raise AssertionError(f"no upgrade: still on {self.sio.transport()}")
                time.sleep(0.05)

    def _recorder(self, name):
        return lambda payload: self.events.put((name, payload))

    def ack(self, event, payload):
        return self.sio.call(event, payload, timeout=WAIT)

    def emit(self, event, payload):
        self.sio.emit(event, payload)

    def next(self, name, where=lambda p: True):
        for i, (n, p) in enumerate(self.unclaimed):
            if n == name and where(p):
                return self.unclaimed.pop(i)[1]
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [n for n, _ in self.unclaimed]
                raise AssertionError(f'no "{name}" within {WAIT} s (unclaimed: {seen})')
            try:
                n, p = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if n == name and where(p):
                return p
            self.unclaimed.append((n, p))

    def close(self):
        self.sio.disconnect()


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def publish(internal_url, entity_id, item):
    request = urllib.request.Request(
        f"{internal_url}/v1/timeline/contact/{entity_id}/items",
        data=json.dumps(item).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        check(response.status == 202, f"publish: {response.status}")


def scenario(url, internal_url, transport):
    ticket = f"py-{uuid.uuid4().hex[:8]}"
    a = Client(url, transport)
    b = Client(url, transport)
    try:
        first = a.ack("ticket:view", {"ticketId": ticket, "agentId": "ada", "agentName": "Ada",
                                      "avatar": b"\x00\x01\x02\xff"})
        check(first["ok"] is True and [v["agentId"] for v in first["viewers"]] == ["ada"], f"first view: {first}")
        second = b.ack("ticket:view", {"ticketId": ticket, "agentId": "bob", "agentName": "Bob"})
        check(second["ok"] is True and len(second["viewers"]) == 2, f"second view: {second}")
        updated = a.next("viewers:updated", lambda p: p["ticketId"] == ticket and len(p["viewers"]) == 2)
        check(sorted(v["agentId"] for v in updated["viewers"]) == ["ada", "bob"], f"viewers:updated: {updated}")
        warning = b.next("collision:warning", lambda p: p["ticketId"] == ticket)
        check([v["agentId"] for v in warning["viewers"]] == ["ada"], f"collision:warning: {warning}")

        refused = a.ack("ticket:view", {"ticketId": ticket})
        check(refused["ok"] is False and refused["error"]["code"] == "INVALID_PAYLOAD", f"error ack: {refused}")
        a.emit("ticket:typing", {"ticketId": f"never-{ticket}", "agentId": "ada"})
        error = a.next("ticket:error", lambda p: p["event"] == "ticket:typing")
        check(error["code"] == "NOT_VIEWING", f"ticket:error: {error}")

        entity_id = f"py-{uuid.uuid4().hex[:8]}"
        subscribed = b.ack("timeline:subscribe", {"entityType": "contact", "entityId": entity_id})
        check(subscribed["ok"] is True, f"subscribe: {subscribed}")
        item = {"id": 1, "text": "héllo", "amount": 12.5, "big": 2**40, "negative": -3, "none": None}
        publish(internal_url, entity_id, item)
        arrived = b.next("timeline:new_item", lambda p: p["entityId"] == entity_id)
        check(arrived["item"] == item, f"timeline:new_item: {arrived}")
    finally:
        a.close()
        b.close()


def main():
    url, internal_url, transport = sys.argv[1:4]
    try:
        scenario(url, internal_url, transport)
    except Exception as e:  # noqa: BLE001 - report any failure as the test's output
        print(f"FAIL {transport}: {type(e).__name__}: {e}")
        sys.exit(1)
    print(f"ok {transport}")


if __name__ == "__main__":
    main()
