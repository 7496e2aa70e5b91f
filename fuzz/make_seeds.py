#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus_seeds/ (run from that directory). Seeds are committed; rerun
this only to change them."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches"))
import wsclient  # the repository's one Python frame encoder
KEY = bytes([0x37, 0xfa, 0x21, 0x3d])
def frame(fin, op, payload, rsv=0, mask=True, forcelen=None):
    return wsclient.frame(op, payload, KEY if mask else None, fin=fin, rsv=rsv, length=forcelen)
def w(d, name, data):
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)

# frame_decoder: [config, split seed] + stream. 0x0c: server, limit 4096; 0x8c: client role.
S = bytes([0x0c, 0x07])
fd = "frame_decoder"
w(fd, "text_hello", S + frame(True, 1, b"Hello"))
w(fd, "bytewise_reads", bytes([0x0c, 0x00]) + frame(True, 1, "hi 猪猪".encode()))
w(fd, "fragments_with_ping", S + frame(False, 1, b"Hel") + frame(True, 9, b"p") + frame(False, 0, b"") + frame(True, 0, b"lo"))
w(fd, "binary_fragments", S + frame(False, 2, bytes(range(200))) + frame(True, 0, bytes(range(56))))
w(fd, "utf8_split_across_fragments", S + frame(False, 1, "€".encode()[:1]) + frame(True, 0, "€".encode()[1:]))
w(fd, "utf8_fail_fast", S + frame(False, 1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4") + frame(False, 0, b"\x90\x80\x80") + frame(True, 0, b"edited"))
w(fd, "utf8_surrogate", S + frame(True, 1, b"\xed\xa0\x80"))
w(fd, "close_with_reason", S + frame(True, 8, b"\x03\xe8bye"))
w(fd, "close_empty", S + frame(True, 8, b""))
w(fd, "close_bad_code", S + frame(True, 8, b"\x03\xed"))
w(fd, "close_one_byte", S + frame(True, 8, b"\x03"))
w(fd, "ping_pong", S + frame(True, 9, b"x" * 125) + frame(True, 10, b""))
w(fd, "ping_too_long", S + frame(True, 9, b"x" * 126))
w(fd, "rsv_set", S + frame(True, 1, b"x", rsv=4))
w(fd, "opcode_reserved", S + frame(True, 3, b"") + frame(True, 11, b""))
w(fd, "len16", S + frame(True, 2, b"a" * 300))
w(fd, "len64_too_big", S + frame(True, 2, b"", forcelen=1 << 20))
w(fd, "len64_top_bit", S + bytes([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]) + KEY)
w(fd, "unmasked", S + frame(True, 1, b"hi", mask=False))
w(fd, "client_role_unmasked", bytes([0x8c, 0x03]) + frame(True, 1, b"ok", mask=False) + frame(True, 9, b"", mask=False))
w(fd, "continuation_first", S + frame(True, 0, b"x"))
w(fd, "text_inside_fragments", S + frame(False, 1, b"a") + frame(True, 1, b"b"))
w(fd, "reassembled_too_big", bytes([0x04, 0x05]) + frame(False, 1, b"a" * 10) + frame(True, 0, b"a" * 10))

# handshake: raw request heads (and responses).
hs = "handshake"
req = b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
w(hs, "valid", req)
w(hs, "valid_with_frames", req + frame(True, 1, b'{"type":"login","name":"a"}'))
w(hs, "browser", b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\nPragma: no-cache\r\nUser-Agent: Mozilla/5.0\r\nUpgrade: WebSocket\r\nOrigin: http://localhost:55151\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
w(hs, "version_8", req.replace(b"Version: 13", b"Version: 8"))
w(hs, "no_key", req.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""))
w(hs, "short_key", req.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhl"))
w(hs, "two_keys", req.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
w(hs, "plain_get", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
w(hs, "post", b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
w(hs, "http10", req.replace(b"HTTP/1.1", b"HTTP/1.0"))
w(hs, "partial", req[:40])
w(hs, "response_101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
w(hs, "response_503", b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")

# chat_json: lines of [control byte][text]; control & 3 picks the connection, 0x80 means "leave".
cj = "chat_json"
def lines(*ls): return b"\n".join(bytes([c]) + t.encode() for c, t in ls)
w(cj, "login_say_all", lines((0, '{"type":"login","name":"mynick"}'), (1, '{"type":"login","client_name":"x","name":" other "}'), (0, '{"type":"say","to_uid":"all","content":"hi,  all ! 猪猪"}')))
w(cj, "private", lines((0, '{"type":"login","name":"a"}'), (1, '{"type":"login","name":"b"}'), (0, '{"type":"say","to_uid":2,"content":"psst"}'), (1, '{"type":"say","to_uid":"1","content":"<b>x</b>"}'), (0, '{"type":"say","to_uid":99,"content":"x"}')))
w(cj, "rooms_history", lines((3, '{"type":"login","name":"a","room_id":"2"}'), (0, '{"type":"say","to_uid":"all","content":"one"}'), (1, '{"type":"login","name":"b","room_id":"2"}'), (0x80, ''), (2, '{"type":"login","name":"c"}')))
w(cj, "errors", lines((0, 'not json'), (0, '[1,2]'), (0, '{}'), (0, '{"type":"nope"}'), (0, '{"type":"say","content":"x"}'), (0, '{"type":"login","name":""}'), (0, '{"type":"login","name":"\\u0007"}'), (0, '{"type":"login","name":"ok"}'), (0, '{"type":"login","name":"again"}'), (0, '{"type":"say","to_uid":"all","content":""}'), (0, '{"type":"login","name":5}')))
w(cj, "logout_pong", lines((0, '{"type":"login","name":"a"}'), (0, '{"type":"pong"}'), (0, '{"type":"logout"}'), (0, '{"type":"login","name":"a2"}')))
w(cj, "long_name", lines((0, '{"type":"login","name":"' + "猪" * 33 + '"}'), (1, '{"type":"login","name":"' + "猪" * 32 + '"}')))
