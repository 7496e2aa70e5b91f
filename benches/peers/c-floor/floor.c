/*
 * c-floor: a bench-only reference peer, NOT part of the wschat daemon. A minimal single-threaded C epoll
 * WebSocket broadcast server speaking the "raw" protocol of the other bench peers (benches/peers/node-ws,
 * benches/peers/tokio-tungstenite): every text message to every open client, sender included, verbatim.
 * It exists to show the syscall-and-copy floor of a broadcast server on this machine, so that
 * benches/compare.py can put wschat's figures next to it.
 *
 * Technique (the floor):
 *   - one thread, one level-triggered epoll; non-blocking sockets with TCP_NODELAY; one read() per readable
 *     client per loop turn into one shared scratch buffer (only a partial frame's tail is kept per client);
 *   - every complete masked text frame is unmasked straight into ONE shared turn buffer, re-framed unmasked
 *     (FIN, opcode text); after all events of the turn are processed that buffer is written once to each
 *     open client: one write() per client per turn, no per-recipient copy;
 *   - a client whose socket would block gets the unwritten rest copied into its own pending buffer (bounded by
 *     MAX_PENDING, else it is dropped) and EPOLLOUT finishes it; while a client has pending bytes, later turn
 *     buffers are appended to its pending buffer, which keeps the order.
 *   Private output (the 101, pong, close replies) also goes through the pending buffer, so it precedes the
 *   broadcasts of the same turn.
 *
 * Limits (it is a floor, not a server): unfragmented messages only (a fragment drops the client), payloads up
 * to MAX_PAYLOAD, no UTF-8 validation, binary messages ignored, no idle timeouts. Bad input never crashes it:
 * the offending client is dropped. Only libc (SHA-1 and base64 for Sec-WebSocket-Accept are below).
 *
 * Build: make -C benches/peers/c-floor   (cc -O2 -Wall -Wextra -o floor floor.c)
 * Run:   benches/peers/c-floor/floor [HOST:PORT]   (default 127.0.0.1:9003; port 0 picks one)
 *        prints `peer listening ws=HOST:PORT` once bound, as the other peers do (compare.py reads `ws=`).
 * Load:  target/release/wschat-bench fanout --proto raw --url ws://127.0.0.1:PORT/ -c 100 -r 2000 -d 3
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAYLOAD (64u * 1024u)          /* largest message accepted from a client */
#define MAX_FRAME (MAX_PAYLOAD + 14u)      /* with the largest header (10) and the mask (4) */
#define MAX_REQUEST 8192u                  /* largest upgrade request */
#define READ_CHUNK (64u * 1024u)           /* one read() per readable client per turn */
#define MAX_PENDING (64u * 1024u * 1024u)  /* per-client pending bytes before the client is dropped */
#define MAX_EVENTS 1024
#define LISTEN_TAG UINT64_MAX

/* ---------------------------------------------------------------- SHA-1 (FIPS 180-1) and base64 -------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha1_block(h, msg + i);
    uint8_t tail[128] = {0};
    size_t rest = len - i;
    memcpy(tail, msg + i, rest);
    tail[rest] = 0x80;
    size_t tlen = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++) tail[tlen - 1 - j] = (uint8_t)(bits >> (8 * j));
    sha1_block(h, tail);
    if (tlen == 128) sha1_block(h, tail + 64);
    for (int j = 0; j < 5; j++)
        out[4 * j] = h[j] >> 24, out[4 * j + 1] = h[j] >> 16, out[4 * j + 2] = h[j] >> 8, out[4 * j + 3] = h[j];
}

/* Writes the base64 of src (with padding) and a NUL; dst needs 4 * ceil(n / 3) + 1 bytes. */
static void base64(const uint8_t *src, size_t n, char *dst) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        *dst++ = tab[v >> 18], *dst++ = tab[(v >> 12) & 63], *dst++ = tab[(v >> 6) & 63], *dst++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        *dst++ = tab[v >> 18], *dst++ = tab[(v >> 12) & 63], *dst++ = '=', *dst++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        *dst++ = tab[v >> 18], *dst++ = tab[(v >> 12) & 63], *dst++ = tab[(v >> 6) & 63], *dst++ = '=';
    }
    *dst = 0;
}

/* ---------------------------------------------------------------- buffers and clients ------------------- */

struct buf {
    uint8_t *p;
    size_t off, len, cap; /* live bytes are p[off..len) */
};

/* Makes room for n more bytes at the end; 0 when out of memory. */
static int reserve(struct buf *b, size_t n) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + n <= b->cap) return 1;
    if (b->off) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off, b->off = 0;
        if (b->len + n <= b->cap) return 1;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p, b->cap = cap;
    return 1;
}

static int append(struct buf *b, const void *src, size_t n) {
    if (!reserve(b, n)) return 0;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 1;
}

static void release(struct buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

enum state { FREE, HANDSHAKE, OPEN, CLOSING };

struct client {
    int fd;
    uint32_t gen;     /* bumped per accept on this slot: stale epoll events are ignored */
    uint8_t state;
    uint8_t blocked;  /* EPOLLOUT armed: the socket would block, pending waits for it */
    uint8_t dirty;    /* private output queued this turn, to flush at the end of the turn */
    int open_idx;     /* index in open_fds while OPEN */
    struct buf in;    /* the partial frame (or request) kept between reads */
    struct buf out;   /* pending output */
};

static int ep;
static struct client *clients; /* indexed by fd */
static size_t nclients;
static int *open_fds; /* the OPEN clients, unordered */
static size_t nopen, open_cap;
static uint64_t *dirty; /* (gen << 32 | fd) of clients with private output this turn */
static size_t ndirty, dirty_cap;
static struct buf turn;  /* every broadcast frame of this turn */
static uint8_t *scratch; /* kept tail + one read */

static uint64_t tag(const struct client *c) { return (uint64_t)c->gen << 32 | (uint32_t)c->fd; }

static void open_add(struct client *c) {
    if (nopen == open_cap) {
        size_t cap = open_cap ? open_cap * 2 : 1024;
        int *p = realloc(open_fds, cap * sizeof *p);
        if (!p) abort();
        open_fds = p, open_cap = cap;
    }
    c->open_idx = (int)nopen;
    open_fds[nopen++] = c->fd;
}

static void open_remove(struct client *c) {
    int last = open_fds[--nopen];
    open_fds[c->open_idx] = last;
    clients[last].open_idx = c->open_idx;
    c->open_idx = -1;
}

static void drop(struct client *c) {
    if (c->state == OPEN) open_remove(c);
    close(c->fd); /* also leaves the epoll set */
    release(&c->in);
    release(&c->out);
    c->state = FREE, c->blocked = 0, c->dirty = 0;
}

static void mark_dirty(struct client *c) {
    if (c->dirty) return;
    if (ndirty == dirty_cap) {
        size_t cap = dirty_cap ? dirty_cap * 2 : 1024;
        uint64_t *p = realloc(dirty, cap * sizeof *p);
        if (!p) abort();
        dirty = p, dirty_cap = cap;
    }
    c->dirty = 1;
    dirty[ndirty++] = tag(c);
}

static int set_events(struct client *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u64 = tag(c)};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes the pending buffer once. Returns 0 when the client was dropped. */
static int flush(struct client *c) {
    c->dirty = 0;
    size_t n = c->out.len - c->out.off;
    if (n) {
        ssize_t w = write(c->fd, c->out.p + c->out.off, n);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return drop(c), 0;
            w = 0;
        }
        c->out.off += (size_t)w;
        if ((size_t)w < n) { /* the socket is full: wait for EPOLLOUT */
            if (!c->blocked) {
                if (set_events(c, EPOLLIN | EPOLLOUT) < 0) return drop(c), 0;
                c->blocked = 1;
            }
            return 1;
        }
    }
    c->out.off = c->out.len = 0;
    if (c->out.cap > (1u << 20)) release(&c->out); /* do not keep a burst's buffer around */
    if (c->state == CLOSING) return drop(c), 0;
    if (c->blocked) {
        if (set_events(c, EPOLLIN) < 0) return drop(c), 0;
        c->blocked = 0;
    }
    return 1;
}

/* Queues private output (101, pong, close) behind whatever is pending. Returns 0 when dropped. */
static int queue(struct client *c, const void *p, size_t n) {
    if (c->out.len - c->out.off + n > MAX_PENDING || !append(&c->out, p, n)) return drop(c), 0;
    if (!c->blocked) mark_dirty(c);
    return 1;
}

/* Hands the turn buffer to one open client: one write, the rest (if any) into its pending buffer. */
static int deliver(struct client *c) {
    if (c->out.len > c->out.off) { /* keep the order: behind what is pending */
        if (c->out.len - c->out.off + turn.len > MAX_PENDING || !append(&c->out, turn.p, turn.len))
            return drop(c), 0;
        return c->blocked ? 1 : flush(c);
    }
    c->dirty = 0;
    ssize_t w = write(c->fd, turn.p, turn.len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return drop(c), 0;
        w = 0;
    }
    if ((size_t)w == turn.len) return 1;
    if (!append(&c->out, turn.p + w, turn.len - (size_t)w)) return drop(c), 0;
    if (set_events(c, EPOLLIN | EPOLLOUT) < 0) return drop(c), 0;
    c->blocked = 1;
    return 1;
}

/* ---------------------------------------------------------------- protocol ----------------------------- */

static const char *find_crlf2(const uint8_t *p, size_t n) {
    for (size_t i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return (const char *)p + i;
    return NULL;
}

/* Answers a complete upgrade request (head is n bytes, up to the blank line). Returns 0 when dropped. */
static int upgrade(struct client *c, const char *head, size_t n) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    if (n < 4 || memcmp(head, "GET ", 4) != 0) return drop(c), 0;
    const char *key = NULL;
    size_t klen = 0;
    for (const char *line = head, *end = head + n; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        static const char name[] = "sec-websocket-key:";
        if ((size_t)(eol - line) > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
            if (key) return drop(c), 0; /* repeated */
            key = line + sizeof name - 1;
            const char *kend = eol;
            while (key < kend && (*key == ' ' || *key == '\t')) key++;
            while (kend > key && (kend[-1] == '\r' || kend[-1] == ' ' || kend[-1] == '\t')) kend--;
            klen = (size_t)(kend - key);
        }
        line = eol + 1;
    }
    if (!key || klen != 24) return drop(c), 0; /* 16 bytes of base64 */
    uint8_t joined[24 + sizeof guid - 1], digest[20];
    memcpy(joined, key, 24);
    memcpy(joined + 24, guid, sizeof guid - 1);
    sha1(joined, sizeof joined, digest);
    char accept[29], resp[256];
    base64(digest, 20, accept);
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    if (!queue(c, resp, (size_t)len)) return 0;
    c->state = OPEN;
    open_add(c);
    return 1;
}

static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4]) {
    uint32_t m32;
    memcpy(&m32, mask, 4);
    uint64_t m64 = (uint64_t)m32 << 32 | m32, v;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) memcpy(&v, src + i, 8), v ^= m64, memcpy(dst + i, &v, 8);
    for (; i < n; i++) dst[i] = src[i] ^ mask[i & 3];
}

/* Unmasked frame header for a payload of n bytes into h; returns its length. */
static size_t frame_header(uint8_t *h, uint8_t b0, uint64_t n) {
    h[0] = b0;
    if (n < 126) return h[1] = (uint8_t)n, 2;
    if (n < 65536) return h[1] = 126, h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n, 4;
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 10;
}

/* Consumes what it can of p[0..n); returns the bytes consumed, or -1 when the client was dropped. */
static long process(struct client *c, const uint8_t *p, size_t n) {
    size_t pos = 0;
    if (c->state == HANDSHAKE) {
        const char *end = find_crlf2(p, n > MAX_REQUEST ? MAX_REQUEST : n);
        if (!end) {
            if (n >= MAX_REQUEST) return drop(c), -1;
            return 0;
        }
        pos = (size_t)(end - (const char *)p) + 4;
        if (!upgrade(c, (const char *)p, pos)) return -1;
    }
    while (c->state == OPEN && n - pos >= 2) {
        const uint8_t *f = p + pos;
        size_t avail = n - pos, hdr = 2;
        uint8_t fin = f[0] & 0x80, op = f[0] & 0x0F;
        if ((f[0] & 0x70) || !(f[1] & 0x80)) return drop(c), -1; /* RSV bits, or an unmasked client frame */
        uint64_t len = f[1] & 0x7F;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)f[2] << 8 | f[3], hdr = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
            hdr = 10;
        }
        if (len > MAX_PAYLOAD) return drop(c), -1;
        if (op >= 8 && (!fin || len > 125)) return drop(c), -1; /* control frames: whole and short */
        if (avail < hdr + 4 + len) break;
        const uint8_t *mask = f + hdr, *payload = f + hdr + 4;
        pos += hdr + 4 + len;
        switch (op) {
        case 0x1: { /* text: re-framed, unmasked, into the turn buffer */
            if (!fin) return drop(c), -1; /* fragmented messages are not supported */
            if (!reserve(&turn, 10 + len)) return drop(c), -1;
            turn.len += frame_header(turn.p + turn.len, 0x81, len);
            unmask_copy(turn.p + turn.len, payload, len, mask);
            turn.len += len;
            break;
        }
        case 0x2: /* binary: ignored, like the other peers */
            if (!fin) return drop(c), -1;
            break;
        case 0x9: { /* ping: pong with the same payload */
            uint8_t pong[2 + 125];
            size_t h = frame_header(pong, 0x8A, len);
            unmask_copy(pong + h, payload, len, mask);
            if (!queue(c, pong, h + len)) return -1;
            break;
        }
        case 0xA: /* pong */
            break;
        case 0x8: { /* close: echo the status code, then close once it is written */
            if (len == 1) return drop(c), -1;
            uint8_t reply[4] = {0x88, 0};
            size_t rlen = 2;
            if (len >= 2) reply[1] = 2, unmask_copy(reply + 2, payload, 2, mask), rlen = 4;
            open_remove(c);
            c->state = CLOSING;
            if (!queue(c, reply, rlen)) return -1;
            return (long)n; /* anything after the close is ignored */
        }
        default: /* continuation without a start, or a reserved opcode */
            return drop(c), -1;
        }
    }
    if (c->state == CLOSING) return (long)n;
    return (long)pos;
}

static void on_readable(struct client *c) {
    size_t kept = c->in.len - c->in.off;
    if (kept) memcpy(scratch, c->in.p + c->in.off, kept);
    ssize_t r = read(c->fd, scratch + kept, READ_CHUNK);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        drop(c);
        return;
    }
    if (c->state == CLOSING) return; /* waiting for the close reply to go out */
    size_t n = kept + (size_t)r;
    long used = process(c, scratch, n);
    if (used < 0) return;
    c->in.off = c->in.len = 0;
    if ((size_t)used < n && !append(&c->in, scratch + used, n - (size_t)used)) drop(c);
    else if (c->in.cap > 2 * MAX_FRAME) release(&c->in);
}

static void on_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or out of descriptors: try again on the next turn */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((size_t)fd >= nclients) {
            size_t cap = nclients ? nclients : 1024;
            while (cap <= (size_t)fd) cap *= 2;
            struct client *p = realloc(clients, cap * sizeof *p);
            if (!p) {
                close(fd);
                continue;
            }
            memset(p + nclients, 0, (cap - nclients) * sizeof *p);
            clients = p, nclients = cap;
        }
        struct client *c = &clients[fd];
        c->fd = fd, c->gen++, c->state = HANDSHAKE, c->open_idx = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(c)};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) drop(c);
    }
}

/* After all events of a turn: the turn buffer once to every open client, then the other private output. */
static void end_turn(void) {
    if (turn.len) {
        for (size_t i = 0; i < nopen;) {
            struct client *c = &clients[open_fds[i]];
            if (deliver(c)) i++; /* a drop moves the last open client to i */
        }
        turn.len = 0;
    }
    for (size_t i = 0; i < ndirty; i++) {
        uint32_t fd = (uint32_t)dirty[i];
        struct client *c = &clients[fd];
        if (c->state != FREE && c->dirty && tag(c) == dirty[i] && !c->blocked) flush(c);
    }
    ndirty = 0;
}

static int listen_on(const char *arg, char *shown, size_t shown_len) {
    char host[256];
    const char *cut = strrchr(arg, ':');
    if (!cut || (size_t)(cut - arg) >= sizeof host) return -1;
    memcpy(host, arg, (size_t)(cut - arg));
    host[cut - arg] = 0;
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') h[strlen(h) - 1] = 0, h++;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    if (getaddrinfo(*h ? h : NULL, cut + 1, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) close(fd), fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(shown, shown_len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(shown, shown_len, "%s:%u", ip, ntohs(s4->sin_port));
    }
    return fd;
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:9003";
    signal(SIGPIPE, SIG_IGN);
    char shown[300];
    int lfd = listen_on(addr, shown, sizeof shown);
    if (lfd < 0) {
        fprintf(stderr, "floor: cannot listen on %s: %s\n", addr, strerror(errno));
        return 1;
    }
    scratch = malloc(MAX_FRAME + READ_CHUNK);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = LISTEN_TAG};
    if (!scratch || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("floor: setup");
        return 1;
    }
    printf("peer listening ws=%s\n", shown);
    fflush(stdout);
    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("floor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint64_t t = events[i].data.u64;
            if (t == LISTEN_TAG) {
                on_accept(lfd);
                continue;
            }
            struct client *c = &clients[(uint32_t)t];
            if (c->state == FREE || tag(c) != t) continue; /* dropped earlier in this turn */
            uint32_t e = events[i].events;
            if ((e & EPOLLOUT) && c->blocked && !flush(c)) continue;
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
        end_turn();
    }
}
