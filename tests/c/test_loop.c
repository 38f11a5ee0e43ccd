/*
 * The event loop through the C API: a loop echo server with blocking
 * clients, a loop client in the same loop, the handshake callback (refuse
 * with 401, attach user data), sends from another thread with ws_loop_stop,
 * timers, broadcast, flow control (pause + drain), keepalive, a loop
 * driven from a foreign epoll, blocking-only functions on loop
 * connections, a loop dial through the dialer's HTTP proxy (accepted and
 * refused with 407), and misuse.
 */
#include "common.h"

#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>

/* ---- a loop echo server ----------------------------------------------- */

struct srv {
    int opened, closed, errors, handshakes;
    uint16_t last_code;
    ws_status last_error;
    void *last_user;
};

static int on_handshake(const ws_request *req, void *user_data, void **conn_user_data) {
    struct srv *s = user_data;
    s->handshakes++;
    const uint8_t *auth = NULL;
    size_t n = 0;
    if (ws_request_header(req, "Authorization", &auth, &n) != WS_OK) return 0; /* listener's user data */
    if (n == 6 && memcmp(auth, "secret", 6) == 0) {
        *conn_user_data = (void *)0x1234; /* per-connection data */
        return 0;
    }
    return 401;
}

static void srv_open(ws_conn *conn, void *user_data) {
    (void)conn;
    if (user_data == (void *)0x1234) return; /* an authorized client */
    ((struct srv *)user_data)->opened++;
}

static void srv_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    ws_conn_write_message(conn, type, data, len);
}

static void srv_error(ws_conn *conn, ws_status status, const char *message, void *user_data) {
    (void)conn;
    (void)message;
    if (user_data == (void *)0x1234) return;
    struct srv *s = user_data;
    s->errors++;
    s->last_error = status;
}

static void srv_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)reason;
    (void)len;
    if (user_data == (void *)0x1234) return;
    struct srv *s = user_data;
    s->closed++;
    s->last_code = code;
}

struct runner {
    ws_loop *loop;
    pthread_t tid;
    ws_status rc;
};

static void *run_loop(void *arg) {
    struct runner *r = arg;
    r->rc = ws_loop_run(r->loop);
    return NULL;
}

static void test_echo_and_handshake(void) {
    ws_loop *loop = NULL;
    check_status(ws_loop_new(&loop), WS_OK, "ws_loop_new");
    struct srv s;
    memset(&s, 0, sizeof s);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_handshake = on_handshake;
    cb.on_open = srv_open;
    cb.on_message = srv_message;
    cb.on_error = srv_error;
    cb.on_close = srv_close;
    uint16_t port = 0;
    check_status(ws_loop_listen(loop, NULL, "127.0.0.1", 0, &cb, &s, &port), WS_OK, "ws_loop_listen");
    check(port != 0, "listen port reported (%u)", (unsigned)port);
    struct runner r = {loop, 0, WS_OK};
    pthread_create(&r.tid, NULL, run_loop, &r);
    sleep_ms(50); /* the runner is inside ws_loop_run by now */
    check_status(ws_loop_poll(loop, 0), WS_ERR_BUSY, "a second thread driving the loop gets WS_ERR_BUSY");

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)port);
    ws_conn *c = dial_or_null(NULL, url);
    check(c != NULL, "a blocking client connects to the loop server");
    if (c) {
        size_t sizes[] = {0, 125, 126, 65535, 65536, 1u << 20, 16u << 20};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            check(round_trip(c, WS_BINARY, sizes[i], (unsigned)i), "binary echo of %zu bytes", sizes[i]);
            check(round_trip(c, WS_TEXT, sizes[i], (unsigned)i + 100), "text echo of %zu bytes", sizes[i]);
        }
        check_status(ws_conn_close_graceful(c, 1000, (const uint8_t *)"bye", 3, 5000), WS_OK, "client closes");
        ws_conn_free(c);
    }

    /* The handshake callback: a wrong Authorization is refused with 401. */
    ws_dialer *d = ws_dialer_new();
    ws_dialer_add_header(d, "Authorization", "wrong");
    ws_conn *bad = NULL;
    ws_response *resp = NULL;
    ws_status st = ws_dial(d, url, NULL, 0, &bad, &resp);
    check_status(st, WS_ERR_BAD_HANDSHAKE, "the handshake callback refuses");
    check(resp && ws_response_status(resp) == 401, "with 401 (got %d)", resp ? (int)ws_response_status(resp) : -1);
    ws_response_free(resp);
    ws_dialer_free(d);
    d = ws_dialer_new();
    ws_dialer_add_header(d, "Authorization", "secret");
    ws_conn *good = dial_or_null(d, url);
    check(good != NULL, "the handshake callback accepts the right header");
    if (good) {
        check(round_trip(good, WS_TEXT, 10, 7), "authorized client echoes");
        ws_conn_free(good);
    }
    ws_dialer_free(d);

    /* A protocol violation from a raw client: close 1002, others unaffected. */
    int fd = tcp_connect(port);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     (unsigned)port);
    send_all(fd, req, (size_t)n);
    set_recv_timeout(fd, 5000);
    char head[1024];
    size_t got = 0;
    while (got < sizeof head - 1) {
        ssize_t k = recv(fd, head + got, 1, 0);
        if (k <= 0) break;
        got++;
        if (got >= 4 && memcmp(head + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    check(got > 12 && memcmp(head, "HTTP/1.1 101", 12) == 0, "raw client handshake");
    const uint8_t unmasked[] = {0x82, 0x01, 0x00};
    send_all(fd, unmasked, sizeof unmasked);
    uint8_t frame[64];
    ssize_t k = recv(fd, frame, sizeof frame, 0);
    check(k >= 4 && frame[0] == 0x88 && frame[2] == 0x03 && frame[3] == 0xEA, "unmasked frame gets close 1002");
    close(fd);
    double t0 = now_ms();
    while (s.errors < 1 && now_ms() - t0 < 5000) sleep_ms(5);
    check(s.errors == 1 && s.last_error == WS_ERR_PROTOCOL, "on_error with WS_ERR_PROTOCOL (%d, %d)", s.errors,
          s.last_error);

    t0 = now_ms();
    while (s.closed < 2 && now_ms() - t0 < 5000) sleep_ms(5);
    check(s.opened == 2 && s.closed == 2, "on_open/on_close once each (%d opened, %d closed)", s.opened, s.closed);
    check(s.handshakes == 4, "handshake callback saw every valid request (%d)", s.handshakes);

    check_status(ws_loop_stop(loop), WS_OK, "ws_loop_stop from another thread");
    pthread_join(r.tid, NULL);
    check_status(r.rc, WS_OK, "ws_loop_run returned after stop");
    ws_loop_free(loop);
}

/* ---- a loop client, timers, cross-thread sends ------------------------- */

struct cli {
    ws_conn *conn;
    int opened, closed, messages, timer_fired, dial_errors;
    long sum;
    uint16_t code;
};

static void cli_open(ws_conn *conn, void *user_data) {
    struct cli *c = user_data;
    ws_conn_retain(conn); /* used from the main thread */
    c->conn = conn;
    __atomic_store_n(&c->opened, 1, __ATOMIC_SEQ_CST);
}

static void cli_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)conn;
    (void)type;
    struct cli *c = user_data;
    if (len == sizeof(int)) {
        int v;
        memcpy(&v, data, sizeof v);
        c->sum += v;
    }
    __atomic_add_fetch(&c->messages, 1, __ATOMIC_SEQ_CST);
}

static void cli_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)reason;
    (void)len;
    struct cli *c = user_data;
    c->code = code;
    __atomic_store_n(&c->closed, 1, __ATOMIC_SEQ_CST);
}

static void cli_dial_error(ws_status status, const char *message, const ws_response *resp, void *user_data) {
    (void)status;
    (void)message;
    (void)resp;
    struct cli *c = user_data;
    __atomic_add_fetch(&c->dial_errors, 1, __ATOMIC_SEQ_CST);
}

static void on_timer(ws_loop *loop, uint64_t id, void *user_data) {
    struct cli *c = user_data;
    if (__atomic_add_fetch(&c->timer_fired, 1, __ATOMIC_SEQ_CST) == 3) ws_loop_timer_cancel(loop, id);
}

static void test_loop_client(void) {
    ws_loop *loop = NULL;
    ws_loop_new(&loop);
    struct srv s;
    memset(&s, 0, sizeof s);
    ws_loop_callbacks scb;
    memset(&scb, 0, sizeof scb);
    scb.on_open = srv_open;
    scb.on_message = srv_message;
    scb.on_close = srv_close;
    uint16_t port = 0;
    ws_loop_listen(loop, NULL, "127.0.0.1", 0, &scb, &s, &port);

    struct cli c;
    memset(&c, 0, sizeof c);
    ws_loop_callbacks ccb;
    memset(&ccb, 0, sizeof ccb);
    ccb.on_open = cli_open;
    ccb.on_message = cli_message;
    ccb.on_close = cli_close;
    ccb.on_dial_error = cli_dial_error;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)port);
    check_status(ws_loop_dial(loop, NULL, url, NULL, 0, &ccb, &c), WS_OK, "ws_loop_dial");
    check_status(ws_loop_dial(loop, NULL, "http://x/", NULL, 0, &ccb, &c), WS_ERR_BAD_URL, "bad URL refused at once");
    check_status(ws_loop_dial(loop, NULL, "ws://127.0.0.1:1/", NULL, 0, &ccb, &c), WS_OK, "dial to a closed port");
    uint64_t tid = 0;
    check_status(ws_loop_timer_add(loop, 10, 10, on_timer, &c, &tid), WS_OK, "repeating timer");

    struct runner r = {loop, 0, WS_OK};
    pthread_create(&r.tid, NULL, run_loop, &r);
    double t0 = now_ms();
    while (!__atomic_load_n(&c.opened, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000) sleep_ms(2);
    check(c.opened, "loop client opened");
    /* Sends from this (non-loop) thread. */
    long want = 0;
    for (int i = 0; i < 1000 && c.conn; i++) {
        ws_conn_write_message(c.conn, WS_BINARY, (const uint8_t *)&i, sizeof i);
        want += i;
    }
    t0 = now_ms();
    while (__atomic_load_n(&c.messages, __ATOMIC_SEQ_CST) < 1000 && now_ms() - t0 < 5000) sleep_ms(2);
    check(c.messages == 1000 && c.sum == want, "1000 cross-thread sends echoed (%d, sum %ld/%ld)", c.messages,
          c.sum, want);
    check(__atomic_load_n(&c.dial_errors, __ATOMIC_SEQ_CST) == 1, "dial to a closed port -> on_dial_error");
    check(ws_conn_is_loop(c.conn), "ws_conn_is_loop");
    char addr[64];
    check_status(ws_conn_remote_addr(c.conn, addr, sizeof addr, NULL), WS_OK, "remote addr of a loop conn");
    check(strstr(addr, "127.0.0.1") != NULL, "remote addr %s", addr);
    check(ws_conn_fd(c.conn) >= 0, "fd of a loop conn");
    ws_msg_type type;
    const uint8_t *data;
    size_t len;
    check_status(ws_conn_read_message(c.conn, &type, &data, &len), WS_ERR_UNSUPPORTED,
                 "read_message on a loop conn is unsupported");
    check_status(ws_conn_set_read_deadline(c.conn, 10), WS_ERR_UNSUPPORTED, "deadlines on a loop conn unsupported");
    check_status(ws_conn_write_control(c.conn, WS_PING, (const uint8_t *)"p", 1, 0), WS_OK, "ping via write_control");
    check_status(ws_conn_close_graceful(c.conn, 1000, (const uint8_t *)"done", 4, 0), WS_OK, "graceful close");
    t0 = now_ms();
    while (!__atomic_load_n(&c.closed, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000) sleep_ms(2);
    check(c.closed && c.code == 1000, "client on_close with the server's echo of 1000 (%u)", (unsigned)c.code);
    check_status(ws_conn_write_message(c.conn, WS_TEXT, (const uint8_t *)"x", 1), WS_ERR_LOCALLY_CLOSED,
                 "a retained handle after close: WS_ERR_LOCALLY_CLOSED");
    check(ws_conn_close_code(c.conn) == 1000, "close code on the retained handle");
    ws_conn_free(c.conn); /* pairs with ws_conn_retain */
    ws_conn_free(c.conn); /* a second free is a no-op */
    t0 = now_ms();
    while (__atomic_load_n(&c.timer_fired, __ATOMIC_SEQ_CST) < 3 && now_ms() - t0 < 2000) sleep_ms(5);
    sleep_ms(50);
    check(c.timer_fired == 3, "timer ran 3 times then cancelled itself (%d)", c.timer_fired);
    ws_loop_stop(loop);
    pthread_join(r.tid, NULL);
    ws_loop_free(loop);
}

/* ---- flow control, broadcast, keepalive, foreign epoll ------------------ */

struct push {
    ws_conn *conn;
    int drained, closed;
    uint16_t code;
    ws_status error;
};

static void push_open(ws_conn *conn, void *user_data) {
    ((struct push *)user_data)->conn = conn;
}

static void push_drain(ws_conn *conn, void *user_data) {
    (void)conn;
    ((struct push *)user_data)->drained++;
}

static void push_error(ws_conn *conn, ws_status status, const char *message, void *user_data) {
    (void)conn;
    (void)message;
    ((struct push *)user_data)->error = status;
}

static void push_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)reason;
    (void)len;
    struct push *p = user_data;
    if (p->conn == conn) p->conn = NULL;
    p->closed = 1;
    p->code = code;
}

struct job {
    char url[64];
    ws_conn *conn;
    int done;
    long want, got;
    char echo[32];
};

static void *dial_job(void *arg) {
    struct job *j = arg;
    j->conn = dial_or_null(NULL, j->url);
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *read_job(void *arg) {
    struct job *j = arg;
    ws_conn_set_read_deadline(j->conn, 10000);
    for (long i = 0; i < j->want; i++) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        if (ws_conn_read_message(j->conn, &type, &data, &len) != WS_OK) break;
        j->got++;
    }
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Polls until the flag is set or `ms` pass. */
static void poll_until(ws_loop *loop, int *flag, double ms) {
    double t0 = now_ms();
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST) && now_ms() - t0 < ms) ws_loop_poll(loop, 10);
}

static void test_flow_control_and_keepalive(void) {
    ws_loop *loop = NULL;
    ws_loop_new(&loop);
    check_status(ws_loop_set_max_buffered(loop, 1u << 20), WS_OK, "set_max_buffered");
    struct push p;
    memset(&p, 0, sizeof p);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = push_open;
    cb.on_drain = push_drain;
    cb.on_error = push_error;
    cb.on_close = push_close;
    uint16_t port = 0;
    ws_loop_listen(loop, NULL, "127.0.0.1", 0, &cb, &p, &port);
    struct job j;
    memset(&j, 0, sizeof j);
    snprintf(j.url, sizeof j.url, "ws://127.0.0.1:%u/", (unsigned)port);
    pthread_t t;
    pthread_create(&t, NULL, dial_job, &j);
    poll_until(loop, &j.done, 5000);
    pthread_join(t, NULL);
    while (!p.conn && ws_loop_poll(loop, 10) == WS_OK && !p.closed) {
    }
    check(j.conn && p.conn, "client connected to the polled loop");
    if (!j.conn || !p.conn) {
        ws_loop_free(loop);
        return;
    }

    /* The client does not read: the queue fills to the limit. */
    static uint8_t chunk[64 * 1024];
    long sent = 0;
    ws_status st = WS_OK;
    while (sent < 10000) {
        st = ws_conn_write_message(p.conn, WS_BINARY, chunk, sizeof chunk);
        if (st != WS_OK) break;
        sent++;
        ws_loop_poll(loop, 0);
    }
    check_status(st, WS_ERR_QUEUE_FULL, "a peer that does not read: WS_ERR_QUEUE_FULL after %ld messages", sent);
    check(ws_conn_buffered_amount(p.conn) > 512 * 1024, "buffered amount %zu", ws_conn_buffered_amount(p.conn));
    check(p.drained == 0, "no drain yet");
    /* Now it reads everything: the queue drains. */
    j.want = sent;
    j.done = 0;
    pthread_create(&t, NULL, read_job, &j);
    double t0 = now_ms();
    while ((p.drained == 0 || ws_conn_buffered_amount(p.conn) != 0) && now_ms() - t0 < 10000) ws_loop_poll(loop, 10);
    poll_until(loop, &j.done, 10000);
    pthread_join(t, NULL);
    check(j.got == sent, "every queued message arrived (%ld of %ld)", j.got, sent);
    check(p.drained >= 1 && ws_conn_buffered_amount(p.conn) == 0, "on_drain after the queue emptied (%d)", p.drained);

    /* Broadcast a prepared message. */
    ws_prepared_message *pm = NULL;
    ws_prepared_message_new(WS_TEXT, (const uint8_t *)"all", 3, &pm);
    size_t queued = 0;
    check_status(ws_loop_broadcast(loop, pm, &queued), WS_OK, "ws_loop_broadcast");
    check(queued == 1 && ws_loop_connection_count(loop) == 1, "queued on the one connection (%zu)", queued);
    ws_prepared_message_free(pm);
    j.want = 1;
    j.got = 0;
    j.done = 0;
    pthread_create(&t, NULL, read_job, &j);
    poll_until(loop, &j.done, 5000);
    pthread_join(t, NULL);
    check(j.got == 1, "broadcast received");

    /* Keepalive: the client never reads now, so it never answers pings. */
    check_status(ws_loop_set_keepalive(loop, 50, 150), WS_OK, "set_keepalive");
    t0 = now_ms();
    poll_until(loop, &p.closed, 5000);
    double took = now_ms() - t0;
    check(p.closed && p.code == 1006 && p.error == WS_ERR_TIMEOUT, "keepalive closes a silent peer: code %u, %s",
          (unsigned)p.code, ws_status_str(p.error));
    check(took >= 150, "not before the pong timeout (%.0f ms)", took);
    ws_conn_free(j.conn);
    ws_loop_free(loop);
}

static void test_foreign_epoll(void) {
    ws_loop *loop = NULL;
    ws_loop_new(&loop);
    struct srv s;
    memset(&s, 0, sizeof s);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = srv_message;
    cb.on_open = srv_open;
    cb.on_close = srv_close;
    uint16_t port = 0;
    ws_loop_listen(loop, NULL, "127.0.0.1", 0, &cb, &s, &port);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = ws_loop_fd(loop)}};
    check(epoll_ctl(ep, EPOLL_CTL_ADD, ws_loop_fd(loop), &ev) == 0, "loop fd goes into a foreign epoll");
    struct job j;
    memset(&j, 0, sizeof j);
    snprintf(j.url, sizeof j.url, "ws://127.0.0.1:%u/", (unsigned)port);
    pthread_t t;
    pthread_create(&t, NULL, dial_job, &j);
    double t0 = now_ms();
    int wakeups = 0;
    while (now_ms() - t0 < 10000) {
        if (__atomic_load_n(&j.done, __ATOMIC_SEQ_CST) && j.conn && j.want == 0) {
            /* Connected: now echo one message, read from another thread. */
            ws_conn_write_message(j.conn, WS_TEXT, (const uint8_t *)"epoll", 5);
            j.want = 1;
            j.done = 0;
            pthread_join(t, NULL);
            pthread_create(&t, NULL, read_job, &j);
        }
        if (j.want == 1 && __atomic_load_n(&j.done, __ATOMIC_SEQ_CST)) break;
        if (__atomic_load_n(&j.done, __ATOMIC_SEQ_CST) && !j.conn) break;
        long long wait = ws_loop_next_timeout_ms(loop);
        if (wait < 0 || wait > 50) wait = 50;
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, (int)wait) > 0) wakeups++;
        ws_loop_poll(loop, 0);
    }
    pthread_join(t, NULL);
    check(j.got == 1, "echo through a loop driven by a foreign epoll");
    check(wakeups > 0, "the foreign epoll woke up for the loop (%d)", wakeups);
    if (j.conn) ws_conn_free(j.conn);
    close(ep);
    ws_loop_free(loop);
}

static void test_misuse(void) {
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    check_status(ws_loop_new(NULL), WS_ERR_INVALID_ARGUMENT, "ws_loop_new(NULL)");
    check_status(ws_loop_poll(NULL, 0), WS_ERR_INVALID_ARGUMENT, "poll(NULL)");
    check_status(ws_loop_listen(NULL, NULL, NULL, 0, &cb, NULL, NULL), WS_ERR_INVALID_ARGUMENT, "listen(NULL)");
    ws_loop *loop = NULL;
    ws_loop_new(&loop);
    check_status(ws_loop_listen(loop, NULL, "127.0.0.1", 0, NULL, NULL, NULL), WS_ERR_INVALID_ARGUMENT,
                 "listen without callbacks");
    check_status(ws_loop_listen(loop, NULL, "no such host name.invalid", 0, &cb, NULL, NULL), WS_ERR_BAD_URL,
                 "listen on a bad host");
    check_status(ws_loop_timer_add(loop, 1, 0, NULL, NULL, NULL), WS_ERR_INVALID_ARGUMENT, "timer without callback");
    check_status(ws_loop_timer_add(loop, -1, 0, on_timer, NULL, NULL), WS_ERR_INVALID_ARGUMENT, "negative delay");
    check_status(ws_loop_set_keepalive(loop, -5, 0), WS_ERR_INVALID_ARGUMENT, "negative keepalive");
    check_status(ws_loop_timer_add(loop, INT64_MAX, 0, on_timer, NULL, NULL), WS_ERR_INVALID_ARGUMENT,
                 "a timer delay of INT64_MAX ms is refused");
    check_status(ws_loop_set_close_timeout(loop, INT64_MAX), WS_ERR_INVALID_ARGUMENT, "an absurd close timeout");
    check_status(ws_loop_shutdown(loop, INT64_MAX), WS_ERR_INVALID_ARGUMENT, "an absurd shutdown timeout");
    check_status(ws_loop_set_close_timeout(loop, -1), WS_OK, "a negative close timeout means no limit");
    check_status(ws_loop_set_idle_timeout(loop, -1), WS_OK, "a negative idle timeout turns it off");
    check_status(ws_loop_set_keepalive(loop, 1000, -1), WS_OK, "keepalive pings without a pong timeout");
    check_status(ws_loop_broadcast(loop, NULL, NULL), WS_ERR_INVALID_ARGUMENT, "broadcast NULL message");
    check(ws_conn_buffered_amount(NULL) == 0, "buffered_amount(NULL) is 0");
    check_status(ws_conn_retain(NULL), WS_ERR_INVALID_ARGUMENT, "retain(NULL)");
    check(ws_loop_fd(loop) >= 0 && ws_loop_fd(NULL) == -1, "ws_loop_fd");
    check_status(ws_loop_poll(loop, 0), WS_OK, "poll an empty loop without blocking");
    check(ws_loop_next_timeout_ms(loop) == -1, "an empty loop has no timeout of its own");
    ws_loop_free(loop);
    ws_loop_free(loop);
    ws_loop_free(NULL);
    check(1, "double free and free(NULL) are no-ops");
}

/* ---- a loop dial through the dialer's proxy ----------------------------- */

/* A minimal HTTP CONNECT proxy on a thread (the Rust tests use tinyproxy,
 * stunnel4 and microsocks; this one checks the C plumbing): for each of
 * `want` connections it reads the request head; with "Basic dTpw" (u:p) it
 * connects to the requested 127.0.0.1 port, answers 200 and relays both
 * ways until either side closes; without, it answers 407 with a body. */
struct cproxy {
    int lfd, want;
    uint16_t port;
    pthread_t tid;
    char last_request[1024];
};

static void relay(int a, int b) {
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    for (;;) {
        if (poll(p, 2, 5000) <= 0) return;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = recv(p[i].fd, buf, sizeof buf, 0);
            if (n <= 0 || send_all(p[1 - i].fd, buf, (size_t)n) != 0) return;
        }
    }
}

static void *cproxy_run(void *arg) {
    struct cproxy *px = arg;
    for (int k = 0; k < px->want; k++) {
        int c = accept(px->lfd, NULL, NULL);
        if (c < 0) return NULL;
        set_recv_timeout(c, 5000);
        char req[1024];
        size_t got = 0;
        req[0] = 0;
        while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
            ssize_t n = recv(c, req + got, sizeof req - 1 - got, 0);
            if (n <= 0) break;
            got += (size_t)n;
            req[got] = 0;
        }
        memcpy(px->last_request, req, got + 1);
        unsigned port = 0;
        if (strstr(req, "Proxy-Authorization: Basic dTpw\r\n") && sscanf(req, "CONNECT 127.0.0.1:%u ", &port) == 1) {
            int t = tcp_connect((uint16_t)port);
            const char *ok = "HTTP/1.1 200 Connection established\r\n\r\n";
            if (t >= 0 && send_all(c, ok, strlen(ok)) == 0) relay(c, t);
            if (t >= 0) close(t);
        } else {
            const char *no = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 7\r\n\r\nlog in\n";
            send_all(c, no, strlen(no));
        }
        close(c);
    }
    return NULL;
}

struct pcli {
    ws_conn *conn;
    int opened, echoed, dial_errors;
    ws_status dial_status;
    uint16_t resp_status;
    char resp_body[64];
    char message[512];
};

static void pcli_open(ws_conn *conn, void *user_data) {
    struct pcli *c = user_data;
    __atomic_store_n(&c->opened, 1, __ATOMIC_SEQ_CST);
    ws_conn_write_message(conn, WS_TEXT, (const uint8_t *)"via proxy", 9);
}

static void pcli_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)type;
    struct pcli *c = user_data;
    if (len == 9 && memcmp(data, "via proxy", 9) == 0) __atomic_store_n(&c->echoed, 1, __ATOMIC_SEQ_CST);
    ws_conn_close_graceful(conn, WS_CLOSE_NORMAL, NULL, 0, 0); /* 0: queue it, do not wait */
}

static void pcli_dial_error(ws_status status, const char *message, const ws_response *resp, void *user_data) {
    struct pcli *c = user_data;
    c->dial_status = status;
    snprintf(c->message, sizeof c->message, "%s", message ? message : "");
    if (resp) {
        c->resp_status = ws_response_status(resp);
        const uint8_t *b = NULL;
        size_t n = 0;
        if (ws_response_body(resp, &b, &n) == WS_OK && n < sizeof c->resp_body) {
            memcpy(c->resp_body, b, n);
            c->resp_body[n] = 0;
        }
    }
    __atomic_add_fetch(&c->dial_errors, 1, __ATOMIC_SEQ_CST);
}

static void test_loop_dial_through_proxy(void) {
    struct cproxy px;
    memset(&px, 0, sizeof px);
    px.want = 2;
    px.lfd = tcp_listen(&px.port);
    check(px.lfd >= 0, "proxy listens");
    pthread_create(&px.tid, NULL, cproxy_run, &px);

    ws_loop *loop = NULL;
    ws_loop_new(&loop);
    struct srv s;
    memset(&s, 0, sizeof s);
    ws_loop_callbacks scb;
    memset(&scb, 0, sizeof scb);
    scb.on_message = srv_message;
    uint16_t port = 0;
    ws_loop_listen(loop, NULL, "127.0.0.1", 0, &scb, &s, &port);
    struct runner r = {loop, 0, WS_OK};
    pthread_create(&r.tid, NULL, run_loop, &r);

    ws_loop_callbacks ccb;
    memset(&ccb, 0, sizeof ccb);
    ccb.on_open = pcli_open;
    ccb.on_message = pcli_message;
    ccb.on_dial_error = pcli_dial_error;
    char url[64], proxy[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)port);

    /* With credentials: through the proxy to the loop's own server. */
    ws_dialer *d = ws_dialer_new();
    snprintf(proxy, sizeof proxy, "http://u:p@127.0.0.1:%u", (unsigned)px.port);
    check_status(ws_dialer_set_proxy(d, proxy), WS_OK, "ws_dialer_set_proxy");
    ws_dialer_set_handshake_timeout(d, 5000);
    struct pcli ok;
    memset(&ok, 0, sizeof ok);
    check_status(ws_loop_dial(loop, d, url, NULL, 0, &ccb, &ok), WS_OK, "ws_loop_dial through the proxy");
    double t0 = now_ms();
    while (!__atomic_load_n(&ok.echoed, __ATOMIC_SEQ_CST) && !__atomic_load_n(&ok.dial_errors, __ATOMIC_SEQ_CST) &&
           now_ms() - t0 < 10000)
        sleep_ms(2);
    check(ok.opened && ok.echoed, "opened and echoed through the proxy (dial error: \"%s\")", ok.message);

    /* Without: the proxy's 407, its status and body as the dial's response. */
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", (unsigned)px.port);
    ws_dialer_set_proxy(d, proxy);
    struct pcli no;
    memset(&no, 0, sizeof no);
    check_status(ws_loop_dial(loop, d, url, NULL, 0, &ccb, &no), WS_OK, "ws_loop_dial to a refusing proxy");
    t0 = now_ms();
    while (!__atomic_load_n(&no.dial_errors, __ATOMIC_SEQ_CST) && now_ms() - t0 < 10000) sleep_ms(2);
    check_status(no.dial_status, WS_ERR_PROXY_REFUSED, "refusal -> WS_ERR_PROXY_REFUSED");
    check(strstr(no.message, "407") != NULL, "the message names the status: %s", no.message);
    check(no.resp_status == 407 && strcmp(no.resp_body, "log in\n") == 0, "the proxy's response (%u, \"%s\")",
          (unsigned)no.resp_status, no.resp_body);
    check(!no.opened, "no on_open after a refusal");
    ws_dialer_free(d);

    pthread_join(px.tid, NULL);
    close(px.lfd);
    char want[64];
    snprintf(want, sizeof want, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n", (unsigned)port);
    check(strncmp(px.last_request, want, strlen(want)) == 0, "the CONNECT request names the target");
    ws_loop_stop(loop);
    pthread_join(r.tid, NULL);
    ws_loop_free(loop);
}

int main(void) {
    watchdog(100);
    signal(SIGPIPE, SIG_IGN);
    test_echo_and_handshake();
    test_loop_client();
    test_loop_dial_through_proxy();
    test_flow_control_and_keepalive();
    test_foreign_epoll();
    test_misuse();
    return summary();
}
