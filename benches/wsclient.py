"""The repository's one hand-written WebSocket client, standard library only: the handshake, masked frames
out, frames in. Used by benches/soak.py (churn, slow consumers, floods), tests/fixtures/seed_scenario.py
(the seed session for the capture fixtures) and fuzz/make_seeds.py (crafted frames, valid or not).
benches/compare.py has no client of its own: it drives wschat-bench.

Masking keys come from `os.urandom` unless a client is given a `random.Random`, so a scripted session can
put the same bytes on the wire every run.
"""
import base64
import json
import os
import socket
import struct

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload, key, fin=True, rsv=0, length=None):
    """One frame: masked with the 4-byte `key`, unmasked when `key` is None. `rsv` is the three RSV bits
    (0-7); `length` announces a length other than the payload's (for malformed frames)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def json_text(obj):
    """A chat message as the bytes of a text payload: compact, UTF-8 as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class Client:
    """A client connection after a completed handshake. `sock` is the plain socket, for callers that want to
    write raw bytes, set options or reset it."""

    def __init__(self, addr, key=None, host=None, connection="Upgrade", extra_headers=(), rng=None,
                 timeout=5.0):
        self.rng = rng
        self.buf = b""
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if key is None:
            key = base64.b64encode(self._random(16)).decode()
        if host is None:
            host = f"{addr[0]}:{addr[1]}"
        lines = [
            "GET / HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            f"Connection: {connection}",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *extra_headers,
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101 "):
            self.sock.close()
            raise ConnectionError("handshake refused: " + head.split(b"\r\n")[0].decode(errors="replace"))

    def _random(self, n):
        if self.rng is None:
            return os.urandom(n)
        return bytes(self.rng.randrange(256) for _ in range(n))

    def _read(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def frame(self, opcode, payload):
        """A final frame masked with a fresh key, to send now or later."""
        return frame(opcode, payload, self._random(4))

    def send(self, opcode, payload):
        self.sock.sendall(self.frame(opcode, payload))

    def send_json(self, obj):
        self.send(TEXT, json_text(obj))

    def send_close(self, code=1000):
        self.send(CLOSE, struct.pack("!H", code))

    def recv(self):
        """The next frame: (opcode, payload). Raises EOFError when the connection ends first."""
        while True:
            if len(self.buf) >= 2:
                n, pos = self.buf[1] & 0x7F, 2
                if n == 126:
                    n, pos = (struct.unpack("!H", self.buf[2:4])[0], 4) if len(self.buf) >= 4 else (None, 0)
                elif n == 127:
                    n, pos = (struct.unpack("!Q", self.buf[2:10])[0], 10) if len(self.buf) >= 10 else (None, 0)
                if n is not None and len(self.buf) >= pos + n:
                    opcode, payload = self.buf[0] & 0x0F, self.buf[pos:pos + n]
                    self.buf = self.buf[pos + n:]
                    return opcode, payload
            self._read()

    def close(self):
        self.sock.close()
