#!/usr/bin/env python3
"""Alert benchmark helper: a webhook receiver that notes when each notification arrives, and
optionally a prober that sends one new error at a time and measures from its 200 to the
receiver's request.

  alert_bench.py receive PORT                 receive until killed; print counts on SIGTERM
  alert_bench.py probe PORT STORE_URL KEY N   receive, and send N probes 200 ms apart
"""
import json
import signal
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

arrived = {}  # probe name -> arrival of each channel's notification (monotonic seconds)
CHANNELS = 3
posts = {"total": 0, "digest": 0}
lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.monotonic()
        try:
            digest = json.loads(body).get("trigger") == "digest"
        except ValueError:
            digest = False
        # Every format (JSON, Slack, Discord) carries the title in its text.
        text = body.decode("utf-8", "replace").replace('"', " ")
        probes = {w.rstrip(":,.*") for w in text.split() if w.startswith("Probe")}
        with lock:
            posts["total"] += 1
            posts["digest"] += digest
            for name in probes:
                arrived.setdefault(name, []).append(now)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def probe(store_url, key, count):
    sent = {}
    for n in range(count):
        name = f"Probe{n}x{uuid.uuid4().hex[:8]}"
        event = {
            "event_id": uuid.uuid4().hex,
            "platform": "python",
            "level": "error",
            "exception": {"values": [{"type": name, "value": "alert latency probe",
                                      "stacktrace": {"frames": [{"function": name, "module": "bench",
                                                                 "lineno": 1, "in_app": True}]}}]},
        }
        request = urllib.request.Request(
            store_url, data=json.dumps(event).encode(), method="POST",
            headers={"Content-Type": "application/json",
                     "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200, answer.status
        sent[name] = time.monotonic()
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if all(len(arrived.get(name, [])) >= CHANNELS for name in sent):
                break
        time.sleep(0.1)
    with lock:
        heard = {n: sorted(arrived[n]) for n in sent if len(arrived.get(n, [])) >= CHANNELS}
    missing = len(sent) - len(heard)
    print(f"probes: {len(sent)} sent, {len(heard)} heard on all {CHANNELS} channels, {missing} missing")
    for label, pick in (("first channel", 0), ("all channels", CHANNELS - 1)):
        latencies = sorted((times[pick] - sent[n]) * 1000 for n, times in heard.items())
        if latencies:
            quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
            print(f"200 -> receiver ({label}) ms: p50 {quantile(0.5):.0f}, "
                  f"p95 {quantile(0.95):.0f}, max {latencies[-1]:.0f}, "
                  f"mean {statistics.mean(latencies):.0f}")
    return missing == 0


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    serve(port)
    if mode == "receive":
        def report(*_):
            print(f"receiver: {posts['total']} posts, {posts['digest']} digests", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, report)
        while True:
            time.sleep(1)
    ok = probe(sys.argv[3], sys.argv[4], int(sys.argv[5]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
