"""Benchmark: one request to the bundled emulator on a reused connection.

Every timing of a whole run through the emulator includes its answers, so an answer must cost
next to nothing: under 2 ms on a reused connection. Prints, as medians over ``--repeat``
requests on one keep-alive connection (``http.client``), measured side by side in one run:

- ``GET /v1beta/interactions/{id}`` of a completed interaction, as the emulator serves it now
  (one write, ``TCP_NODELAY``);
- the same, served as the emulator used to (headers and body in two sends, Nagle's algorithm on),
  which waits for the client's delayed ACK;
- google-genai's own ``client.interactions.get`` of that interaction through its pooled
  connection (what a worker pays per poll);
- the floor: the same request answered with the same bytes by a bare ``http.server`` handler.

    .venv/bin/python benchmarks/emulator_latency.py [--repeat 200]
"""

import argparse
import http.client
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_ms(call, repeat: int) -> float:
    for _ in range(5):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def keep_alive_get(port: int, path: str):
    connection = http.client.HTTPConnection("127.0.0.1", port)

    def call():
        connection.request("GET", path, headers={"x-goog-api-key": "local-emulator"})
        response = connection.getresponse()
        assert response.status == 200, response.status
        response.read()

    return call, connection


def bare_http_floor(body: bytes, repeat: int) -> float:
    """The same keep-alive GET answered by a bare ``http.server`` handler that writes ``body``
    and does nothing else: the HTTP parsing and loopback round trip every answer costs."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Bare(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bare)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    call, connection = keep_alive_get(httpd.server_address[1], "/")
    result = median_ms(call, repeat)
    connection.close()
    httpd.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from google import genai

    from runs.emulator import server as emulator_server

    emulator = emulator_server.EmulatorServer(port=0).start()
    sdk = genai.Client(api_key="local-emulator", http_options={"base_url": emulator.url})
    created = sdk.interactions.create(model="gemini-3-flash-preview", input="Who won Euro 2024?")
    path = f"/v1beta/interactions/{created.id}"
    call, connection = keep_alive_get(emulator.port, path)
    call()
    body = http.client.HTTPConnection("127.0.0.1", emulator.port)
    body.request("GET", path, headers={"x-goog-api-key": "local-emulator"})
    answer = body.getresponse().read()
    body.close()

    now_ms = median_ms(call, args.repeat)
    sdk_ms = median_ms(lambda: sdk.interactions.get(created.id), args.repeat)
    connection.close()

    # As served before: unbuffered writes (headers, then body) with Nagle's algorithm on.
    handler = emulator_server._Handler
    handler.wbufsize, handler.disable_nagle_algorithm = 0, False
    old = emulator_server.EmulatorServer(port=0).start()
    old_sdk = genai.Client(api_key="local-emulator", http_options={"base_url": old.url})
    old_created = old_sdk.interactions.create(model="gemini-3-flash-preview", input="Who won Euro 2024?")
    old_call, old_connection = keep_alive_get(old.port, f"/v1beta/interactions/{old_created.id}")
    before_ms = median_ms(old_call, max(20, args.repeat // 5))
    old_connection.close()
    old.stop()
    emulator.stop()

    floor = bare_http_floor(answer, args.repeat)
    print(f"One GET of a completed interaction on a reused connection ({len(answer)} bytes); medians, ms")
    print(f"{'':44} {'ms':>7} {'/ floor':>8}")
    for label, value in [
        ("emulator, one write + TCP_NODELAY (target < 2)", now_ms),
        ("emulator as before: two sends, Nagle", before_ms),
        ("google-genai interactions.get via the emulator", sdk_ms),
        ("floor: bare http.server, same bytes", floor),
    ]:
        print(f"{label:44} {value:>7.2f} {value / floor:>7.1f}x")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    main()
