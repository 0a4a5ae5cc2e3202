"""How the emulator's answers travel: keep-alive connections without Nagle's delay."""

import http.client
import json
import socket


def test_every_connection_has_nagles_algorithm_off_and_stays_open_between_requests(emulator, client):
    created = client.interactions.create(model="gemini-3-flash-preview", input="Who won Euro 2024?")
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=5)
    answers = []
    for _ in range(3):
        connection.request("GET", f"/v1beta/interactions/{created.id}", headers={"x-goog-api-key": "test"})
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())["id"]))
    local = connection.sock.getsockname()

    with emulator._lock:
        served = [s for s in emulator._connections if s.getpeername() == local]
    assert answers == [(200, created.id)] * 3
    assert len(served) == 1  # one connection carried all three
    assert served[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    connection.close()


def test_an_answer_leaves_in_one_write(emulator, client):
    """Status line, headers and body in a single send: the client's first read has them all
    (a small answer fits in one segment on loopback)."""
    created = client.interactions.create(model="gemini-3-flash-preview", input="Who won Euro 2024?")
    sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=5)
    sock.sendall(f"GET /v1beta/interactions/{created.id} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: test\r\n\r\n".encode())
    first = sock.recv(1 << 20)
    head, _, body = first.partition(b"\r\n\r\n")
    length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    sock.close()

    assert length > 0 and len(body) == length
