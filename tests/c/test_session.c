/*
 * The sans-IO session through the C API: a client and a server session
 * wired through memory (handshake with permessage-deflate, messages,
 * ping, close), the server fed the client's whole byte stream split at
 * every byte boundary (the same events each time; also in place), bad input (an HTTP
 * error for a bad request, close 1002 for an unmasked frame), timeouts
 * and misuse.
 */
#include "common.h"

struct log {
    char text[8192];
    size_t len;
    int echo;
};

static void add(struct log *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->len, sizeof l->text - l->len, fmt, ap);
    va_end(ap);
    if (n > 0 && l->len + (size_t)n < sizeof l->text) l->len += (size_t)n;
}

static void on_open(ws_session *s, const ws_request *req, const ws_response *resp, void *ud) {
    (void)s;
    add(ud, "open(%s,%u);", req ? "req" : "-", resp ? (unsigned)ws_response_status(resp) : 0u);
}

/* Where the last message's bytes were (for the in-place check). */
static const uint8_t *last_msg;

static void on_message(ws_session *s, ws_msg_type t, const uint8_t *d, size_t n, void *ud) {
    struct log *l = ud;
    last_msg = d;
    add(l, "msg(%d,%zu,%.*s);", (int)t, n, (int)(n > 20 ? 20 : n), (const char *)d);
    if (l->echo) ws_session_send(s, t, d, n);
}

static void on_ping(ws_session *s, const uint8_t *d, size_t n, void *ud) {
    (void)s;
    add(ud, "ping(%.*s);", (int)n, (const char *)d);
}

static void on_pong(ws_session *s, const uint8_t *d, size_t n, void *ud) {
    (void)s;
    add(ud, "pong(%.*s);", (int)n, (const char *)d);
}

static void on_close(ws_session *s, uint16_t code, const uint8_t *r, size_t n, void *ud) {
    (void)s;
    add(ud, "close(%u,%.*s);", (unsigned)code, (int)n, (const char *)r);
}

static void on_error(ws_session *s, ws_status st, const char *m, void *ud) {
    (void)s;
    (void)m;
    add(ud, "error(%s);", ws_status_str(st));
}

static ws_session_callbacks callbacks(void) {
    ws_session_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = on_open;
    cb.on_message = on_message;
    cb.on_ping = on_ping;
    cb.on_pong = on_pong;
    cb.on_close = on_close;
    cb.on_error = on_error;
    return cb;
}

/* Moves everything `from` has pending into `out` (appending). */
static size_t drain(ws_session *from, uint8_t *out, size_t cap, size_t at) {
    const uint8_t *d = NULL;
    size_t n = 0;
    ws_session_pending(from, &d, &n);
    if (at + n > cap) n = cap - at;
    memcpy(out + at, d, n);
    ws_session_sent(from, n);
    return at + n;
}

/* Feeds a fresh server session `stream[..n]` in two parts split at every
   byte boundary (through ws_session_recv_in_place, on a copy, when
   `in_place`); returns the first split whose events differ from `want`,
   or (size_t)-1 when none does. */
static size_t every_split_matches(ws_upgrader *up, const ws_session_callbacks *cb, const uint8_t *stream, size_t n,
                                  const struct log *want, int in_place) {
    static uint8_t copy[1 << 16];
    for (size_t split = 0; split <= n; split++) {
        struct log l = {{0}, 0, 1};
        ws_session *t = NULL;
        ws_session_server_new(up, cb, &l, &t);
        if (in_place) {
            memcpy(copy, stream, n); /* each run unmasks its own copy */
            ws_session_recv_in_place(t, copy, split);
            ws_session_recv_in_place(t, copy + split, n - split);
        } else {
            ws_session_recv(t, stream, split);
            ws_session_recv(t, stream + split, n - split);
        }
        int same = l.len == want->len && memcmp(l.text, want->text, l.len) == 0;
        ws_session_free(t);
        if (!same) return split;
    }
    return (size_t)-1;
}

/* A client and a server session with their opening handshake done. */
static void open_pair(ws_dialer *d, ws_upgrader *up, const ws_session_callbacks *cb, struct log *lc, struct log *ls,
                      ws_session **c, ws_session **s) {
    static uint8_t hs[4096];
    ws_session_client_new(d, "ws://x/", cb, lc, c);
    ws_session_server_new(up, cb, ls, s);
    ws_session_recv(*s, hs, drain(*c, hs, sizeof hs, 0));
    ws_session_recv(*c, hs, drain(*s, hs, sizeof hs, 0));
}

static uint8_t stream[1 << 16];

int main(void) {
    ws_session_callbacks cb = callbacks();
    ws_upgrader *up = ws_upgrader_new();
    ws_dialer *dl = ws_dialer_new();
    ws_compression_options opts = ws_compression_options_default();
    ws_upgrader_set_compression(up, &opts);
    ws_dialer_set_compression(dl, &opts);

    /* ---- a whole exchange through memory ---- */
    struct log cl = {{0}, 0, 0}, sl = {{0}, 0, 1};
    ws_session *c = NULL, *s = NULL;
    check(ws_session_client_new(dl, "ws://example.com/x", &cb, &cl, &c) == WS_OK, "client session");
    check(ws_session_server_new(up, &cb, &sl, &s) == WS_OK, "server session");
    check(ws_session_wants_write(c), "the request is pending at once");
    static uint8_t buf[1 << 16];
    size_t n = drain(c, stream, sizeof stream, 0);
    check(ws_session_recv(s, stream, n) == WS_OK, "server takes the request");
    size_t m = drain(s, buf, sizeof buf, 0);
    check(m > 12 && memcmp(buf, "HTTP/1.1 101", 12) == 0, "101 pending");
    check(ws_session_recv(c, buf, m) == WS_OK, "client takes the response");
    check(strstr(cl.text, "open(-,101);") != NULL, "client open event with the response: %s", cl.text);
    check(ws_session_compression_negotiated(c) && ws_session_compression_negotiated(s), "deflate agreed, both sides");
    check(strcmp(ws_session_subprotocol(c), "") == 0 && strcmp(ws_session_subprotocol(s), "") == 0,
          "no subprotocol offered: \"\"");
    check(ws_session_send(c, WS_TEXT, (const uint8_t *)"hello hello hello", 17) == WS_OK, "send text");
    static uint8_t zeros[3000];
    check(ws_session_send(c, WS_BINARY, zeros, sizeof zeros) == WS_OK, "send binary");
    check(ws_session_send(c, WS_TEXT, NULL, 0) == WS_OK, "send empty");
    check(ws_session_send(c, WS_PING, (const uint8_t *)"hi", 2) == WS_OK, "send ping");
    check(ws_session_close(c, 1000, (const uint8_t *)"bye", 3) == WS_OK, "close");
    check(ws_session_send(c, WS_TEXT, (const uint8_t *)"x", 1) == WS_ERR_CLOSE_SENT, "nothing after close");
    size_t start = n;
    n = drain(c, stream, sizeof stream, n);
    check(ws_session_recv(s, stream + start, n - start) == WS_OK, "server takes the frames");
    m = drain(s, buf, sizeof buf, 0);
    check(ws_session_recv(c, buf, m) == WS_OK, "client takes the echoes");
    check(ws_session_is_finished(s), "the server is finished after both closes");
    check(!ws_session_is_finished(c), "the client waits for the server's TCP close");
    ws_session_recv_eof(c);
    check(ws_session_is_finished(c), "then it is finished");
    check(strstr(sl.text, "msg(1,17,hello hello hello);") && strstr(sl.text, "ping(hi);") &&
              strstr(sl.text, "close(1000,bye);"),
          "server events: %s", sl.text);
    check(strstr(cl.text, "pong(hi);") && strstr(cl.text, "msg(2,3000,") && strstr(cl.text, "close(1000,);") &&
              strstr(cl.text, "error") == NULL,
          "client events: %s", cl.text);
    ws_session_free(c);
    ws_session_free(s);

    /* ---- every split of the client's stream, copied and in place ---- */
    for (int in_place = 0; in_place <= 1; in_place++) {
        size_t bad = every_split_matches(up, &cb, stream, n, &sl, in_place);
        check(bad == (size_t)-1, "%severy split of %zu bytes gives the same server events (first bad split: %zu)",
              in_place ? "in place: " : "", n, bad);
    }
    static uint8_t lent[sizeof stream];
    {
        /* Open, then one whole masked frame: delivered from the caller's buffer. */
        struct log l = {{0}, 0, 0};
        ws_session *t = NULL;
        ws_session_server_new(up, &cb, &l, &t);
        memcpy(lent, stream, start);
        ws_session_recv_in_place(t, lent, start);
        uint8_t frame[] = {0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
        last_msg = NULL;
        check(ws_session_recv_in_place(t, frame, sizeof frame) == WS_OK && strstr(l.text, "msg(1,5,hello);"),
              "in place: the message arrives: %s", l.text);
        check(last_msg == frame + 6, "in place: on_message points into the caller's buffer");
        check(ws_session_recv_in_place(t, NULL, 0) == WS_OK, "in place: NULL with length 0");
        ws_session_free(t);
    }

    /* ---- the agreed subprotocol, both sides ---- */
    {
        ws_upgrader *pu = ws_upgrader_new();
        ws_dialer *pd = ws_dialer_new();
        const char *srv[] = {"b", "a"}, *cli[] = {"a", "b"};
        ws_upgrader_set_subprotocols(pu, srv, 2);
        ws_dialer_set_subprotocols(pd, cli, 2);
        struct log l1 = {{0}, 0, 0}, l2 = {{0}, 0, 1};
        ws_session *pc = NULL, *ps = NULL;
        ws_session_client_new(pd, "ws://x/", &cb, &l1, &pc);
        ws_session_server_new(pu, &cb, &l2, &ps);
        check(strcmp(ws_session_subprotocol(ps), "") == 0 && !ws_session_compression_negotiated(ps),
              "nothing agreed before the handshake");
        n = drain(pc, buf, sizeof buf, 0);
        ws_session_recv(ps, buf, n);
        n = drain(ps, buf, sizeof buf, 0);
        ws_session_recv(pc, buf, n);
        const char *a = ws_session_subprotocol(pc), *b2 = ws_session_subprotocol(ps);
        check(a != NULL && b2 != NULL && strcmp(a, b2) == 0 && a[0] != 0, "both sides name the same subprotocol: %s/%s",
              a ? a : "NULL", b2 ? b2 : "NULL");
        check(!ws_session_compression_negotiated(pc), "no deflate offered: none agreed");
        check(ws_session_subprotocol(NULL) == NULL, "NULL session: NULL");
        ws_session_free(pc);
        ws_session_free(ps);
        ws_upgrader_free(pu);
        ws_dialer_free(pd);
    }

    /* ---- a refused handshake: the client keeps the answer ---- */
    {
        struct log l1 = {{0}, 0, 0};
        ws_session *rc = NULL;
        ws_session_client_new(NULL, "ws://x/", &cb, &l1, &rc);
        check(ws_session_refused_response(rc) == NULL, "no refused answer before one came");
        drain(rc, buf, sizeof buf, 0);
        const char *no = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n";
        ws_session_recv(rc, (const uint8_t *)no, strlen(no));
        const ws_response *r = ws_session_refused_response(rc);
        check(strstr(l1.text, "error(") != NULL && r != NULL && ws_response_status(r) == 401,
              "the 401 is reported and kept: %s", l1.text);
        check(ws_session_refused_response(rc) == r, "the same answer on every call");
        ws_session_free(rc);
    }

    /* ---- bad input ---- */
    struct log bl = {{0}, 0, 0};
    ws_session *b = NULL;
    ws_session_server_new(NULL, &cb, &bl, &b);
    const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ws_session_recv(b, (const uint8_t *)get, strlen(get));
    m = drain(b, buf, sizeof buf, 0);
    check(m > 12 && memcmp(buf, "HTTP/1.1 400", 12) == 0, "not an upgrade: 400");
    check(ws_session_is_finished(b) && strstr(bl.text, "error(WS_ERR_HANDSHAKE") != NULL, "and finished: %s", bl.text);
    ws_session_free(b);

    ws_session *cc = NULL, *ss = NULL;
    struct log l1 = {{0}, 0, 0}, l2 = {{0}, 0, 0};
    ws_session_client_new(NULL, "ws://x/", &cb, &l1, &cc);
    ws_session_server_new(NULL, &cb, &l2, &ss);
    n = drain(cc, buf, sizeof buf, 0);
    ws_session_recv(ss, buf, n);
    drain(ss, buf, sizeof buf, 0);
    const uint8_t unmasked[] = {0x81, 0x01, 'x'};
    ws_session_recv(ss, unmasked, sizeof unmasked);
    m = drain(ss, buf, sizeof buf, 0);
    check(m >= 4 && buf[0] == 0x88 && ((buf[2] << 8) | buf[3]) == 1002, "unmasked frame: close 1002");
    check(ws_session_is_finished(ss), "and finished");

    /* ---- a large message from the caller's memory: ws_session_send_head ---- */
    {
        static uint8_t big[60000], wire[61000];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)('a' + i % 26);
        ws_session *hc = NULL, *hs = NULL;
        struct log lc = {{0}, 0, 0}, ls = {{0}, 0, 0};
        open_pair(NULL, NULL, &cb, &lc, &ls, &hc, &hs);
        uint8_t head[WS_MAX_FRAME_HEADER];
        size_t hl = 99;
        ws_status hst = ws_session_send_head(hs, WS_BINARY, sizeof big, head, &hl);
        check(hst == WS_OK && hl == 4 && head[0] == 0x82 && head[1] == 126 && ((head[2] << 8) | head[3]) == (int)sizeof big,
              "server: the header of a 60000-byte binary frame (%s, %zu bytes)", ws_status_str(hst), hl);
        check(!ws_session_wants_write(hs), "nothing was queued: the caller sends the payload");
        memcpy(wire, head, hl);
        memcpy(wire + hl, big, sizeof big);
        check(ws_session_recv(hc, wire, hl + sizeof big) == WS_OK && strstr(lc.text, "msg(2,60000,abcdefghijklmnopqrst);"),
              "the client gets the message: %s", lc.text);
        check(ws_session_send_head(hc, WS_BINARY, sizeof big, head, &hl) == WS_OK && hl == 0,
              "a client masks: no header, the caller sends it with ws_session_send");
        check(ws_session_send(hs, WS_TEXT, (const uint8_t *)"q", 1) == WS_OK &&
                  ws_session_send_head(hs, WS_TEXT, sizeof big, head, &hl) == WS_OK && hl == 0,
              "output pending: no header (it would overtake the output)");
        drain(hs, buf, sizeof buf, 0);
        check(ws_session_send_head(hs, WS_TEXT, 5, head, &hl) == WS_OK && hl == 2 && head[0] == 0x81 && head[1] == 5,
              "once drained: a text header");
        check(ws_session_send_head(hs, WS_PING, 0, head, &hl) == WS_ERR_INVALID_ARGUMENT, "not for a control frame");
        check(ws_session_send_head(hs, WS_BINARY, 1, NULL, &hl) == WS_ERR_INVALID_ARGUMENT, "NULL head");
        check(ws_session_close(hs, 1000, NULL, 0) == WS_OK &&
                  ws_session_send_head(hs, WS_BINARY, 1, head, &hl) == WS_ERR_CLOSE_SENT && hl == 0,
              "after a close: refused as ws_session_send is");
        ws_session_free(hc);
        ws_session_free(hs);
        /* With deflate agreed, a message above the threshold is compressed. */
        struct log la = {{0}, 0, 0}, lb = {{0}, 0, 0};
        open_pair(dl, up, &cb, &la, &lb, &hc, &hs);
        check(ws_session_compression_negotiated(hs) && ws_session_send_head(hs, WS_BINARY, sizeof big, head, &hl) == WS_OK &&
                  hl == 0,
              "compressed: no header");
        ws_session_free(hc);
        ws_session_free(hs);
    }

    /* ---- timeouts and misuse ---- */
    int64_t ms = 0;
    check(ws_session_set_timeouts(cc, 0, 1000, 20, 0) == WS_OK, "set timeouts");
    check(ws_session_next_timeout_ms(cc, &ms) == WS_OK && ms > 0, "handshake deadline pending: %lld", (long long)ms);
    check(ws_session_sent(cc, 1) == WS_ERR_INVALID_ARGUMENT, "sent more than pending is refused");
    check(ws_session_send(cc, 99, NULL, 0) == WS_ERR_INVALID_ARGUMENT, "unknown type");
    check(ws_session_send(NULL, WS_TEXT, NULL, 0) == WS_ERR_INVALID_ARGUMENT, "NULL session");
    check(ws_session_client_new(NULL, "http://x/", &cb, NULL, &b) == WS_ERR_BAD_URL, "bad URL");
    ws_session_free(cc);
    ws_session_free(ss);
    ws_session_free(NULL);

    ws_upgrader_free(up);
    ws_dialer_free(dl);
    return summary();
}
