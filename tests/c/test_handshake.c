/* Handshake failures on both sides, over raw TCP; ws_upgrader_upgrade_fd;
 * ws_is_websocket_upgrade and ws_subprotocols. */
#include "common.h"

/* ---- SHA-1 and base64, to play a WebSocket server by hand ---------------*/

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t *m = calloc(total, 1);
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 | (uint32_t)m[off + 4 * i + 2] << 8 |
                   m[off + 4 * i + 3];
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
    free(m);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static void accept_key(const char *key, char out[32]) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t d[20];
    sha1((const uint8_t *)buf, strlen(buf), d);
    base64(d, 20, out);
}

/* ---- Raw HTTP helpers -----------------------------------------------------*/

static const char *ci_find(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && (p[i] | 32) == (needle[i] | 32)) i++;
        if (i == n) return p;
    }
    return NULL;
}

/* Reads a response (or request) head plus Content-Length bytes of body;
 * stops at EOF or after `timeout_ms` without data. Returns the length. */
static size_t read_http(int fd, char *buf, size_t cap, long timeout_ms) {
    set_recv_timeout(fd, timeout_ms);
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            size_t head = (size_t)(end - buf) + 4;
            const char *cl = ci_find(buf, "\r\nContent-Length:");
            size_t body = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
            if (len >= head + body) return len;
        }
        if (len + 1 >= cap) return len;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return len;
        len += (size_t)n;
    }
}

static int status_of(const char *resp) {
    int major, minor, status;
    if (sscanf(resp, "HTTP/%d.%d %d", &major, &minor, &status) != 3) return -1;
    return status;
}

/* Sends `req` to 127.0.0.1:port and returns the response's status (-1 for
 * none); the response goes to `resp`. */
static int exchange(uint16_t port, const char *req, char *resp, size_t cap) {
    resp[0] = '\0';
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    send_all(fd, req, strlen(req));
    read_http(fd, resp, cap, 5000);
    close(fd);
    return status_of(resp);
}

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define STD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"

/* ---- Server callbacks -----------------------------------------------------*/

static char seen_target[128];
static char seen_method[16];
static char seen_remote[64];
static int seen_header_count;

static bool check_auth(const ws_request *req, void *ud) {
    (void)ud;
    const char *p;
    size_t n;
    if (ws_request_target(req, &p, &n) == WS_OK && n < sizeof seen_target) {
        memcpy(seen_target, p, n);
        seen_target[n] = '\0';
    }
    if (ws_request_method(req, &p, &n) == WS_OK && n < sizeof seen_method) {
        memcpy(seen_method, p, n);
        seen_method[n] = '\0';
    }
    size_t rl;
    ws_request_remote_addr(req, seen_remote, sizeof seen_remote, &rl);
    seen_header_count = (int)ws_request_header_count(req);
    const uint8_t *v;
    return ws_request_header(req, "authorization", &v, &n) == WS_OK && n == 6 && memcmp(v, "secret", 6) == 0;
}

static int error_handler_calls;
static void on_error(const ws_request *req, ws_error_response *resp, void *ud) {
    error_handler_calls++;
    ws_error_response_add_header(resp, "X-Error", ud ? (const char *)ud : "none");
    char body[64];
    snprintf(body, sizeof body, "custom body %u", (unsigned)ws_error_response_status(resp));
    ws_error_response_set_body(resp, (const uint8_t *)body, strlen(body));
    const char *t;
    size_t n;
    if (req != NULL && ws_request_target(req, &t, &n) == WS_OK && n == 7 && memcmp(t, "/teapot", 7) == 0)
        ws_error_response_set_status(resp, 418);
}

/* ---- A fake WebSocket server written by hand ------------------------------*/

enum fake_mode { FAKE_403, FAKE_BAD_ACCEPT, FAKE_BAD_PROTO, FAKE_GOOD, FAKE_SILENT };

struct fake {
    int lfd;
    uint16_t port;
    enum fake_mode mode;
    pthread_t tid;
};

static void *fake_server(void *arg) {
    struct fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    char req[8192];
    read_http(fd, req, sizeof req, 5000);
    char key[64] = "";
    const char *k = ci_find(req, "\r\nSec-WebSocket-Key:");
    if (k != NULL) sscanf(k + 20, " %63[^\r\n]", key);
    char acc[32];
    accept_key(key, acc);
    char resp[1024];
    switch (f->mode) {
    case FAKE_403:
        snprintf(resp, sizeof resp, "HTTP/1.1 403 Forbidden\r\nX-Reason: nope\r\nContent-Length: 7\r\n\r\ngo away");
        break;
    case FAKE_BAD_ACCEPT:
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
        break;
    case FAKE_BAD_PROTO:
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: zzz\r\n\r\n",
                 acc);
        break;
    case FAKE_GOOD:
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
        break;
    case FAKE_SILENT:
        resp[0] = '\0';
        break;
    }
    send_all(fd, resp, strlen(resp));
    /* Wait for the client to hang up (or 5 s). */
    set_recv_timeout(fd, 5000);
    char b[256];
    while (recv(fd, b, sizeof b, 0) > 0) {
    }
    close(fd);
    return NULL;
}

static int fake_start(struct fake *f, enum fake_mode mode) {
    f->mode = mode;
    f->lfd = tcp_listen(&f->port);
    if (f->lfd < 0) return -1;
    return pthread_create(&f->tid, NULL, fake_server, f);
}

static void fake_join(struct fake *f) {
    pthread_join(f->tid, NULL);
    close(f->lfd);
}

static ws_status dial_fake(struct fake *f, const ws_dialer *d, ws_response **resp) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/x", (unsigned)f->port);
    ws_conn *c = NULL;
    ws_status st = ws_dial(d, url, NULL, 0, &c, resp);
    ws_conn_free(c);
    return st;
}

/* ---- upgrade_fd ---------------------------------------------------------*/

struct fd_client {
    uint16_t port;
    int ok_dial, ok_header, ok_echo, ok_proto;
};

static void *fd_client_thread(void *arg) {
    struct fd_client *fc = arg;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/fd", (unsigned)fc->port);
    ws_dialer *d = ws_dialer_new();
    const char *protos[] = {"p1", "p2"};
    ws_dialer_set_subprotocols(d, protos, 2);
    ws_conn *c = NULL;
    ws_response *resp = NULL;
    ws_status st = ws_dial(d, url, NULL, 0, &c, &resp);
    ws_dialer_free(d);
    fc->ok_dial = st == WS_OK;
    if (st == WS_OK) {
        const uint8_t *v;
        size_t n;
        fc->ok_header = ws_response_header(resp, "X-Fd", &v, &n) == WS_OK && n == 3 && memcmp(v, "yes", 3) == 0;
        fc->ok_proto = strcmp(ws_conn_subprotocol(c), "p2") == 0;
        fc->ok_echo = round_trip(c, WS_TEXT, 1000, 1) && round_trip(c, WS_BINARY, 100000, 2);
        ws_conn_close_graceful(c, 1000, NULL, 0, 5000);
    }
    ws_response_free(resp);
    ws_conn_free(c);
    return NULL;
}

/* Accepts one client on `lfd`, reads `first` bytes of its request (all of
 * the head when 0), upgrades with ws_upgrader_upgrade_fd and echoes. */
static void upgrade_fd_case(const ws_upgrader *up, size_t first, const char *label) {
    uint16_t port;
    int lfd = tcp_listen(&port);
    struct fd_client fc = {port, 0, 0, 0, 0};
    pthread_t tid;
    pthread_create(&tid, NULL, fd_client_thread, &fc);
    int fd = accept(lfd, NULL, NULL);
    char req[8192];
    size_t n;
    if (first == 0) {
        n = read_http(fd, req, sizeof req, 5000);
        check(ws_is_websocket_upgrade((const uint8_t *)req, n), "%s: ws_is_websocket_upgrade on the bytes read", label);
        char p[16];
        size_t pl = 0;
        int ok = ws_subprotocols((const uint8_t *)req, n, 0, p, sizeof p, &pl) == WS_OK && strcmp(p, "p1") == 0 && pl == 2;
        ok &= ws_subprotocols((const uint8_t *)req, n, 1, p, sizeof p, &pl) == WS_OK && strcmp(p, "p2") == 0;
        ok &= ws_subprotocols((const uint8_t *)req, n, 2, p, sizeof p, &pl) == WS_ERR_NOT_FOUND;
        check(ok, "%s: ws_subprotocols lists p1, p2, then NOT_FOUND", label);
    } else {
        set_recv_timeout(fd, 5000);
        ssize_t r = recv(fd, req, first, MSG_WAITALL);
        n = r > 0 ? (size_t)r : 0;
        check(n == first && !ws_is_websocket_upgrade((const uint8_t *)req, n),
              "%s: %zu bytes of the head are not yet a complete upgrade", label, n);
    }
    ws_header hdr = {"X-Fd", "yes"};
    ws_conn *c = NULL;
    ws_status st = ws_upgrader_upgrade_fd(up, fd, (const uint8_t *)req, n, &hdr, 1, &c);
    if (check_status(st, WS_OK, "%s: ws_upgrader_upgrade_fd", label)) {
        for (;;) {
            ws_msg_type t;
            const uint8_t *data;
            size_t len;
            if (ws_conn_read_message(c, &t, &data, &len) != WS_OK) break;
            if (ws_conn_write_message(c, t, data, len) != WS_OK) break;
        }
        ws_conn_free(c);
    }
    pthread_join(tid, NULL);
    check(fc.ok_dial, "%s: client dial succeeds", label);
    check(fc.ok_header, "%s: extra 101 header X-Fd visible to the client", label);
    check(fc.ok_proto, "%s: upgrader's preferred subprotocol p2 chosen", label);
    check(fc.ok_echo, "%s: echo works over the upgraded fd", label);
    close(lfd);
}

/* ---- The stalled-client test --------------------------------------------*/

struct stall {
    uint16_t port;
    int status;
    size_t got;
    double elapsed;
};

static void *stalled_client(void *arg) {
    struct stall *s = arg;
    int fd = tcp_connect(s->port);
    const char *half = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    double t0 = now_ms();
    send_all(fd, half, strlen(half));
    char resp[4096];
    resp[0] = '\0';
    s->got = read_http(fd, resp, sizeof resp, 8000);
    s->elapsed = now_ms() - t0;
    s->status = s->got ? status_of(resp) : 0;
    close(fd);
    return NULL;
}

int main(void) {
    watchdog(100);
    char resp[16384];
    char req[4096];

    /* Server 1: default checks plus a 101 header. */
    ws_upgrader *up = ws_upgrader_new();
    check_status(ws_upgrader_add_response_header(up, "X-Test", "yes"), WS_OK, "add_response_header");
    struct server s1;
    if (server_start(&s1, up, NULL, NULL) != 0) {
        check(0, "server 1 starts");
        return summary();
    }
    ws_upgrader_free(up);
    uint16_t p = s1.port;
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%u", (unsigned)p);

    snprintf(req, sizeof req, "GET /chat HTTP/1.1\r\nHost: %s\r\n" STD "\r\n", host);
    int st = exchange(p, req, resp, sizeof resp);
    check(st == 101, "a valid request gets 101 (got %d)", st);
    check(ci_find(resp, "\r\nX-Test: yes\r\n") != NULL, "the 101 carries the upgrader's response header X-Test");
    check(ci_find(resp, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL, "the 101 carries the RFC's sample accept key");

    snprintf(req, sizeof req, "POST /chat HTTP/1.1\r\nHost: %s\r\n" STD "Content-Length: 0\r\n\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 405, "POST gets 405 (got %d)", st);

    snprintf(req, sizeof req, "GET /chat HTTP/1.0\r\nHost: %s\r\n" STD "\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 400, "HTTP/1.0 gets 400 (got %d)", st);

    snprintf(req, sizeof req,
             "GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: " KEY
             "\r\nSec-WebSocket-Version: 13\r\n\r\n",
             host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 400, "Connection without the upgrade token gets 400 (got %d)", st);

    snprintf(req, sizeof req,
             "GET /chat HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
             host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 400, "missing Upgrade: websocket gets 400 (got %d)", st);

    snprintf(req, sizeof req,
             "GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY
             "\r\nSec-WebSocket-Version: 12\r\n\r\n",
             host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 426, "Sec-WebSocket-Version 12 gets 426 (got %d)", st);
    check(ci_find(resp, "\r\nSec-WebSocket-Version: 13\r\n") != NULL, "the 426 names version 13");

    snprintf(req, sizeof req,
             "GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 400, "missing Sec-WebSocket-Key gets 400 (got %d)", st);

    snprintf(req, sizeof req,
             "GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 400, "a bad Sec-WebSocket-Key gets 400 (got %d)", st);

    snprintf(req, sizeof req, "GET /chat HTTP/1.1\r\nHost: %s\r\n" STD "Origin: http://evil.example\r\n\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 403, "Origin from another host gets 403 (got %d)", st);

    snprintf(req, sizeof req, "GET /chat HTTP/1.1\r\nHost: %s\r\n" STD "Origin: http://%s\r\n\r\n", host, host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 101, "Origin same as Host gets 101 (got %d)", st);

    snprintf(req, sizeof req, "GET /chat HTTP/1.1\r\nHost: %s\r\n" STD "Origin: http://127.0.0.1:1\r\n\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 403, "Origin with another port gets 403 (got %d)", st);

    server_stop(&s1);

    /* Server 2: custom origin check and error handler. */
    up = ws_upgrader_new();
    check_status(ws_upgrader_set_check_origin(up, check_auth, NULL), WS_OK, "set_check_origin");
    static char tag[] = "from-handler";
    check_status(ws_upgrader_set_error_handler(up, on_error, tag), WS_OK, "set_error_handler");
    struct server s2;
    if (server_start(&s2, up, NULL, NULL) != 0) {
        check(0, "server 2 starts");
        return summary();
    }
    ws_upgrader_free(up);
    p = s2.port;
    snprintf(host, sizeof host, "127.0.0.1:%u", (unsigned)p);

    snprintf(req, sizeof req, "GET /auth?x=1 HTTP/1.1\r\nHost: %s\r\n" STD "\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 403, "check_origin rejecting (no Authorization) gets 403 (got %d)", st);
    check(ci_find(resp, "\r\nX-Error: from-handler\r\n") != NULL, "the error handler's header (with its user data) is in the response");
    check(strstr(resp, "\r\n\r\ncustom body 403") != NULL, "the error handler's body is in the response");
    check(strcmp(seen_target, "/auth?x=1") == 0 && strcmp(seen_method, "GET") == 0, "check_origin sees method GET and target \"%s\"",
          seen_target);
    check(strncmp(seen_remote, "127.0.0.1:", 10) == 0, "check_origin sees the remote addr \"%s\"", seen_remote);
    check(seen_header_count == 5, "check_origin sees 5 headers (got %d)", seen_header_count);

    snprintf(req, sizeof req, "GET /auth HTTP/1.1\r\nHost: %s\r\n" STD "Authorization: secret\r\nOrigin: http://evil.example\r\n\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 101, "check_origin accepting (Authorization: secret, foreign Origin) gets 101 (got %d)", st);

    snprintf(req, sizeof req, "GET /teapot HTTP/1.0\r\nHost: %s\r\n" STD "\r\n", host);
    st = exchange(p, req, resp, sizeof resp);
    check(st == 418, "the error handler can change the status (got %d)", st);
    check(strstr(resp, "custom body 400") != NULL, "... and saw the original status 400");

    st = exchange(p, "garbage\r\n\r\n", resp, sizeof resp);
    check(st == 400 && ci_find(resp, "X-Error: from-handler") != NULL, "an unparsable request gets 400 through the error handler (req NULL) (got %d)", st);
    server_stop(&s2);

    /* Server 3: a stalled client does not block another handshake. */
    up = ws_upgrader_new();
    ws_upgrader_set_handshake_timeout(up, 1000);
    struct server s3;
    if (server_start(&s3, up, NULL, NULL) != 0) {
        check(0, "server 3 starts");
        return summary();
    }
    ws_upgrader_free(up);
    {
        struct stall sc = {s3.port, 0, 0, 0};
        pthread_t tid;
        pthread_create(&tid, NULL, stalled_client, &sc);
        sleep_ms(100);
        double t0 = now_ms();
        ws_conn *c = dial_or_null(NULL, s3.url);
        double dt = now_ms() - t0;
        check(c != NULL && dt < 700, "another client completes its handshake while one stalls (%.1f ms)", dt);
        if (c) check(round_trip(c, WS_TEXT, 10, 1), "and its connection works");
        ws_conn_free(c);
        pthread_join(tid, NULL);
        check((sc.status == 408 || sc.got == 0) && sc.elapsed >= 800 && sc.elapsed < 5000,
              "the stalled client is dropped after the 1 s handshake timeout (status %d, %.0f ms)", sc.status, sc.elapsed);
    }
    server_stop(&s3);

    /* Client side against hand-written servers. */
    {
        struct fake f;
        ws_response *r = NULL;
        fake_start(&f, FAKE_GOOD);
        st = dial_fake(&f, NULL, &r);
        check_status(st, WS_OK, "dial a correct hand-written 101 (checks the test's own SHA-1)");
        check(r != NULL && ws_response_status(r) == 101, "response 101");
        ws_response_free(r);
        r = NULL;
        fake_join(&f);

        fake_start(&f, FAKE_403);
        st = dial_fake(&f, NULL, &r);
        check_status(st, WS_ERR_BAD_HANDSHAKE, "a 403 answer gives WS_ERR_BAD_HANDSHAKE");
        if (check(r != NULL, "the response is returned with WS_ERR_BAD_HANDSHAKE")) {
            check(ws_response_status(r) == 403, "response status 403 (got %u)", (unsigned)ws_response_status(r));
            const uint8_t *v;
            size_t n;
            check(ws_response_header(r, "x-reason", &v, &n) == WS_OK && n == 4 && memcmp(v, "nope", 4) == 0, "response header X-Reason: nope");
            check_status(ws_response_header(r, "X-Missing", &v, &n), WS_ERR_NOT_FOUND, "absent header is NOT_FOUND");
            size_t count = ws_response_header_count(r);
            int found = 0;
            for (size_t i = 0; i < count; i++) {
                const char *name;
                size_t nl, vl;
                const uint8_t *val;
                if (ws_response_header_at(r, i, &name, &nl, &val, &vl) == WS_OK && nl == 8 && memcmp(name, "X-Reason", 8) == 0 &&
                    vl == 4 && memcmp(val, "nope", 4) == 0)
                    found = 1;
            }
            check(count == 2 && found, "header_at iterates 2 headers including X-Reason (count %zu)", count);
            const char *name;
            size_t nl, vl;
            const uint8_t *val;
            check_status(ws_response_header_at(r, count, &name, &nl, &val, &vl), WS_ERR_NOT_FOUND, "header_at past the end");
            const uint8_t *body;
            size_t bl;
            check(ws_response_body(r, &body, &bl) == WS_OK && bl == 7 && memcmp(body, "go away", 7) == 0, "response body \"go away\"");
        }
        ws_response_free(r);
        r = NULL;
        fake_join(&f);

        fake_start(&f, FAKE_BAD_ACCEPT);
        st = dial_fake(&f, NULL, &r);
        check_status(st, WS_ERR_BAD_HANDSHAKE, "a 101 with a wrong Sec-WebSocket-Accept gives WS_ERR_BAD_HANDSHAKE");
        ws_response_free(r);
        r = NULL;
        fake_join(&f);

        ws_dialer *d = ws_dialer_new();
        const char *protos[] = {"a", "b"};
        ws_dialer_set_subprotocols(d, protos, 2);
        fake_start(&f, FAKE_BAD_PROTO);
        st = dial_fake(&f, d, &r);
        check_status(st, WS_ERR_BAD_HANDSHAKE, "a 101 choosing a subprotocol not offered gives WS_ERR_BAD_HANDSHAKE");
        ws_response_free(r);
        r = NULL;
        fake_join(&f);
        ws_dialer_free(d);

        d = ws_dialer_new();
        ws_dialer_set_handshake_timeout(d, 300);
        fake_start(&f, FAKE_SILENT);
        double t0 = now_ms();
        r = (ws_response *)1;
        st = dial_fake(&f, d, &r);
        double dt = now_ms() - t0;
        check_status(st, WS_ERR_TIMEOUT, "a server that never answers: WS_ERR_TIMEOUT");
        check(dt >= 250 && dt < 3000, "after the 300 ms handshake timeout (%.1f ms)", dt);
        check(r == NULL, "no response on timeout (response_out set to NULL)");
        fake_join(&f);
        ws_dialer_free(d);
    }

    /* URLs and connection failures. */
    {
        ws_conn *c = NULL;
        ws_response *r = NULL;
        check_status(ws_dial(NULL, "http://x", NULL, 0, &c, &r), WS_ERR_BAD_URL, "http://x is WS_ERR_BAD_URL");
        check_status(ws_dial(NULL, "ws://", NULL, 0, &c, &r), WS_ERR_BAD_URL, "ws:// is WS_ERR_BAD_URL");
        check_status(ws_dial(NULL, "not a url", NULL, 0, &c, &r), WS_ERR_BAD_URL, "\"not a url\" is WS_ERR_BAD_URL");
        uint16_t port;
        int lfd = tcp_listen(&port);
        close(lfd);
        char url[64];
        snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)port);
        check_status(ws_dial(NULL, url, NULL, 0, &c, &r), WS_ERR_CONNECT, "a closed port is WS_ERR_CONNECT");
        snprintf(url, sizeof url, "wss://127.0.0.1:%u/", (unsigned)port);
        check_status(ws_dial(NULL, url, NULL, 0, &c, &r), WS_ERR_CONNECT, "wss:// to a closed port is WS_ERR_CONNECT");
        check(c == NULL && r == NULL, "no conn or response after failures");
    }

    /* ws_upgrader_upgrade_fd. */
    up = ws_upgrader_new();
    const char *sprotos[] = {"p2", "p1"};
    ws_upgrader_set_subprotocols(up, sprotos, 2);
    upgrade_fd_case(up, 0, "upgrade_fd (whole head)");
    upgrade_fd_case(up, 20, "upgrade_fd (first 20 bytes)");
    {
        /* A refused request through upgrade_fd: the error goes out. */
        uint16_t port;
        int lfd = tcp_listen(&port);
        int cfd = tcp_connect(port);
        int sfd = accept(lfd, NULL, NULL);
        snprintf(req, sizeof req,
                 "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " KEY
                 "\r\nSec-WebSocket-Version: 12\r\n\r\n");
        send_all(cfd, req, strlen(req));
        char buf[4096];
        size_t n = read_http(sfd, buf, sizeof buf, 5000);
        ws_conn *c = NULL;
        ws_status s = ws_upgrader_upgrade_fd(up, sfd, (const uint8_t *)buf, n, NULL, 0, &c);
        check_status(s, WS_ERR_HANDSHAKE_REJECTED, "upgrade_fd of a bad request: WS_ERR_HANDSHAKE_REJECTED");
        read_http(cfd, resp, sizeof resp, 5000);
        check(status_of(resp) == 426, "... and the client got the 426 (got %d)", status_of(resp));
        close(cfd);
        close(lfd);
    }
    ws_upgrader_free(up);

    /* ws_is_websocket_upgrade and ws_subprotocols on raw bytes. */
    {
        const char *good = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                           "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: third\r\n\r\n";
        const char *noup = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n";
        const char *partial = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        check(ws_is_websocket_upgrade((const uint8_t *)good, strlen(good)), "is_websocket_upgrade: true (case-insensitive tokens)");
        check(!ws_is_websocket_upgrade((const uint8_t *)noup, strlen(noup)), "is_websocket_upgrade: false without Upgrade");
        check(!ws_is_websocket_upgrade((const uint8_t *)partial, strlen(partial)), "is_websocket_upgrade: false for an incomplete head");
        check(!ws_is_websocket_upgrade(NULL, 0), "is_websocket_upgrade(NULL, 0): false");
        char b[32];
        size_t bl = 0;
        check(ws_subprotocols((const uint8_t *)good, strlen(good), 0, b, sizeof b, &bl) == WS_OK && strcmp(b, "chat") == 0 && bl == 4,
              "subprotocols[0] = chat");
        check(ws_subprotocols((const uint8_t *)good, strlen(good), 1, b, sizeof b, &bl) == WS_OK && strcmp(b, "superchat") == 0,
              "subprotocols[1] = superchat");
        check(ws_subprotocols((const uint8_t *)good, strlen(good), 2, b, sizeof b, &bl) == WS_OK && strcmp(b, "third") == 0,
              "subprotocols[2] = third (from a second header line)");
        check_status(ws_subprotocols((const uint8_t *)good, strlen(good), 3, b, sizeof b, &bl), WS_ERR_NOT_FOUND, "subprotocols[3]: NOT_FOUND");
        bl = 0;
        check(ws_subprotocols((const uint8_t *)good, strlen(good), 1, b, 4, &bl) == WS_ERR_BUFFER_TOO_SMALL && bl == 9,
              "subprotocols into a small buffer: BUFFER_TOO_SMALL with the length (%zu)", bl);
        check_status(ws_subprotocols((const uint8_t *)partial, strlen(partial), 0, b, sizeof b, &bl), WS_ERR_INVALID_ARGUMENT,
                     "subprotocols of an incomplete head: INVALID_ARGUMENT");
        check_status(ws_subprotocols((const uint8_t *)noup, strlen(noup), 0, b, sizeof b, &bl), WS_ERR_NOT_FOUND,
                     "subprotocols of a request without any: NOT_FOUND");
    }
    return summary();
}
