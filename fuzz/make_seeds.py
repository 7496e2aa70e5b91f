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

# proxy_protocol: PROXY v1 lines and v2 headers, as a connection's first bytes.
pp = "proxy_protocol"
V2 = b"\r\n\r\n\x00\r\nQUIT\n"
w(pp, "v1_tcp4", b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n\r\n")
w(pp, "v1_tcp6", b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 65535\r\n")
w(pp, "v1_unknown", b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n")
w(pp, "v1_partial", b"PROXY TCP4 192.0.2.1 198.")
w(pp, "v2_inet", V2 + bytes([0x21, 0x11, 0, 12, 192, 0, 2, 1, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb]) + b"rest")
w(pp, "v2_inet6_tlv", V2 + bytes([0x21, 0x21, 0, 39]) + bytes(range(32)) + bytes([0, 1, 0, 2, 3, 0, 0]))
w(pp, "v2_local", V2 + bytes([0x20, 0x00, 0, 0]))
w(pp, "v2_unix", V2 + bytes([0x21, 0x31, 0, 216]) + b"/tmp/s".ljust(216, b"\0"))
w(pp, "v2_too_long", V2 + bytes([0x21, 0x11, 0xff, 0xff]))

# forwarded: [pick] Forwarded \n X-Forwarded-For \n request head. pick 0x3c: peer 10.0.0.1, everything
# trusted, both headers; 0x34: only 10/8 trusted.
fw = "forwarded"
head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.3\r\nForwarded: for=\"[2001:db8::7]:443\"\r\n\r\n"
w(fw, "both_agree", b"\x34" + b"for=203.0.113.9;proto=https, for=10.0.0.3\n203.0.113.9, 10.0.0.3\n" + head)
w(fw, "both_disagree", b"\x34" + b"for=198.51.100.1\n203.0.113.9\n" + head)
w(fw, "ipv6_and_ports", b"\x18" + b'for="[2001:db8::1]:8080", for=unknown;by=_hidden, for=_obf\n\n' + head)
w(fw, "mapped_and_junk", b"\x24" + b"\n::ffff:203.0.113.9 , , 300.1.1.1,10.0.0.9\n" + head.replace(b"\r\n\r\n", b"\r\n"))
w(fw, "all_trusted", b"\x3c" + b'For="10.1.1.1";by=x, FOR=10.2.2.2\n10.1.1.1,  10.2.2.2\n' + head)

# resp_link: [pick, split seed] + server bytes. pick 0x05: five commands queued; 0x25: and a SUBSCRIBE;
# 0x85: small limits (depth 3, 16 elements, 256 bytes); 0x45: AUTH and SELECT first.
rl = "resp_link"
def bulk(b): return b"$%d\r\n%s\r\n" % (len(b), b)
def arr(*xs): return b"*%d\r\n" % len(xs) + b"".join(xs)
replies = b"+PONG\r\n-ERR unknown command\r\n:-42\r\n$-1\r\n*-1\r\n"
w(rl, "simple_replies", b"\x05\x07" + replies)
w(rl, "bytewise", b"\x05\x00" + replies)
w(rl, "auth_select", b"\x45\x03" + b"+OK\r\n+OK\r\n" + replies)
w(rl, "auth_refused", b"\x45\x03" + b"-WRONGPASS invalid username-password pair\r\n")
xr = arr(*[arr(bulk(b"%d-0" % i), arr(bulk(b"m"), bulk(b"wc\x01" + bytes(8) + bytes([i]) + b"\x01\x01r\x03\x01\x01a\x00\x02hi\x01"))) for i in range(1, 4)])
w(rl, "xrange", b"\x01\x21" + xr)
w(rl, "heartbeat", b"\x01\x09" + arr(b":0\r\n", arr(), arr(bulk(b"000000000000abcd"))))
sub = arr(bulk(b"subscribe"), bulk(b"bus"), b":1\r\n") + arr(bulk(b"subscribe"), bulk(b"other"), b":2\r\n")
w(rl, "subscribed_pushes", b"\x21\x05" + sub + arr(bulk(b"message"), bulk(b"bus"), bulk(b"payload")) + b"+PONG\r\n")
w(rl, "nested_31000", b"\x01\x40" + b"*1\r\n" * 31000 + b":1\r\n")
w(rl, "nested_at_limit", b"\x01\x11" + b"*1\r\n" * 8 + b":1\r\n")
w(rl, "small_limits", b"\x85\x13" + arr(*[b":1\r\n"] * 17) + bulk(b"x" * 300))
w(rl, "huge_lengths", b"\x02\x01" + b"*4294967296\r\n$99999999999\r\n")
w(rl, "not_resp", b"\x01\x02" + b"HTTP/1.1 400 Bad Request\r\n\r\n")
w(rl, "bad_terminator", b"\x01\x02" + b"$3\r\nabcdef\r\n")
w(rl, "unasked", b"\x00\x02" + b"+OK\r\n")

# resp_deep: [depth hi, depth lo, read size / 64, small limits] + level shapes and trailing bytes.
rd = "resp_deep"
w(rd, "depth_31000", bytes([31000 >> 8, 31000 & 0xff, 64, 0]))
w(rd, "depth_65535_bytewise_shapes", bytes([0xff, 0xff, 1, 0]) + bytes(range(16)))
w(rd, "at_the_limit", bytes([0, 8, 0, 0, 1, 2, 3]))
w(rd, "past_the_small_limit", bytes([0, 3, 0, 1]))
w(rd, "flat", bytes([0, 0, 0, 0]) + b"+x\r\n")

# cluster_wire: [pick] + bytes. pick 0: a message; 1: records behind a valid header; 2: keys text
# "prefix\nroom\nkey"; 3: tracker ops of 3 bytes.
cw = "cluster_wire"
def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7f | 0x80]); v >>= 7
    return out + bytes([v])
def s(t): return varint(len(t)) + t
T = b"2026-11-25 12:00:00"
def timef(t): return varint(len(t) + 1) + t
say = b"\x03" + varint(7) + s(b"alice") + varint(0) + s("hi 猪".encode()) + timef(T)
login = b"\x02" + varint(7) + s(b"alice") + varint(1764072000000) + timef(T)
recs = b"\x01" + s(b"room1") + login + say + b"\x03" + varint(7) + s(b"alice") + varint(9) + s(b"psst") + b"\x00" + b"\x04" + varint(7) + s(b"alice") + b"\x00"
hdr = b"wc\x01" + (0x1122334455667788).to_bytes(8, "little") + varint(300)
w(cw, "message", b"\x00" + hdr + b"\x05" + recs + b"\x01" + s(b"r2") + b"\x07" + varint(3) + s(b"b") + varint(5))
w(cw, "snapshot_gone", b"\x00" + hdr + b"\x06\x08" + bytes(8) + b"\x01" + s(b"") + b"\x07" + varint(1) + s(b"x") + varint(0))
w(cw, "records_behind_header", b"\x01" + recs)
w(cw, "bad_records", b"\x01" + b"\x03\x01\x00")
w(cw, "overlong_varint", b"\x00" + b"wc\x01" + bytes(8) + b"\xff" * 10 + b"\x02")
w(cw, "keys", b"\x02" + "wschat\nroom:1\nwschat:history:6:room:1extra".encode())
w(cw, "keys_unicode", b"\x02" + "my-chat.2\n猪猪\nmy-chat.2:history:6:猪猪".encode())
w(cw, "keys_bad", b"\x02" + b"wschat\nr\nwschat:history:09:abc")
w(cw, "tracker", b"\x03" + b"\xc0\x00\x05\xc0\x00\x06\xc0\x00\x09\x40\x00\x08\xc0\x00\x09\x00\x00\x00\xc1\x00\x01\x81\x00\x00\xc1\x00\x03")

# history_entry: [room length] room entry.
he = "history_entry"
w(he, "one_say", b"\x05room1" + say)
w(he, "room_record_first", b"\x01r" + bytes.fromhex("0100037a00000001"))
w(he, "private_say", b"\x01r" + b"\x03" + varint(7) + s(b"a") + varint(9) + s(b"x") + timef(T))
w(he, "two_says", b"\x01r" + say + say)
w(he, "repeated_time_first", b"\x01r" + b"\x03" + varint(7) + s(b"a") + varint(0) + s(b"x") + b"\x00")
w(he, "non_minimal_varint", b"\x00" + b"\x03\x87\x00" + s(b"a") + b"\x80\x00" + s(b"x") + timef(T))

# web_path: request paths as sent.
wp = "web_path"
for name, p in [("root", "/"), ("file", "/js/app.js"), ("folder", "/css/"), ("escapes", "/a%20b/%E7%8C%AA.txt"),
                ("double_encoded", "/%252e%252e/x"), ("dot_dot", "/a/../b"), ("encoded_dot_dot", "/%2e%2e/etc/passwd"),
                ("encoded_slash", "/a%2fb"), ("hidden", "/.git/config"), ("backslash", "/a\\b"),
                ("overlong_utf8", "/%c0%ae%c0%ae/x"), ("empty_segment", "//etc"), ("nul", "/a%00b"),
                ("long", "/" + "a" * 1100)]:
    w(wp, name, p.encode())

# redis_url: --cluster values.
ru = "redis_url"
for name, u in [("plain", "redis://127.0.0.1:6379"), ("default_port", "redis://localhost"), ("db", "redis://h:7000/15"),
                ("ipv6", "redis://[::1]:6380/2"), ("user_password", "redis://alice:s3cret@redis.example:6379/1"),
                ("password_only_encoded", "redis://:p%40ss%3A%F0%9F%90%B7@h/"), ("bad_escape", "redis://:%zz@h"),
                ("query", "redis://h:1?db=2"), ("bad_port", "redis://h:65536"), ("unclosed_ipv6", "redis://[::1:6379"),
                ("user_no_password", "redis://u@h")]:
    w(ru, name, u.encode())
