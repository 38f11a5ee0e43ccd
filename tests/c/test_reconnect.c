/*
 * Reconnecting loop dials through the C API (ws_loop_dial_reconnecting):
 * a server that closes every connection (1001) after one message is dialed again
 * and again (on_reconnect tells of each attempt), ws_reconnect_stop ends it,
 * a port with nothing behind it gives growing delays until max_retries, a
 * 403 is not retried, a dial cancelled in flight calls nothing back, and
 * bad options are refused. One loop runs both sides on this thread.
 */
#include "common.h"

#include <stdint.h>

/* ---- the server: answers one message with "bye" and closes with 1001 -- */

static int refuse_status; /* 0: accept */
static int accepted;

static int srv_handshake(const ws_request *req, void *user_data, void **conn_user_data) {
    (void)req;
    (void)user_data;
    (void)conn_user_data;
    accepted++;
    return refuse_status;
}

static void srv_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)type;
    (void)data;
    (void)len;
    (void)user_data;
    ws_conn_write_message(conn, WS_TEXT, (const uint8_t *)"bye", 3);
    ws_conn_close_graceful(conn, WS_CLOSE_GOING_AWAY, (const uint8_t *)"bye", 3, 0);
}

/* ---- the client ------------------------------------------------------- */

struct cl {
    int opens, messages, closes, dial_errors, reconnects;
    int last_dial_status; /* HTTP status of the last refused dial */
    uint32_t last_attempt;
    int64_t delays[16];
};

static void cl_open(ws_conn *conn, void *user_data) {
    ((struct cl *)user_data)->opens++;
    ws_conn_write_message(conn, WS_TEXT, (const uint8_t *)"hi", 2);
}

static void cl_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)conn;
    (void)type;
    (void)data;
    (void)len;
    ((struct cl *)user_data)->messages++;
}

static void cl_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)code;
    (void)reason;
    (void)len;
    ((struct cl *)user_data)->closes++;
}

static void cl_dial_error(ws_status status, const char *message, const ws_response *resp, void *user_data) {
    (void)status;
    (void)message;
    struct cl *c = user_data;
    c->dial_errors++;
    c->last_dial_status = resp ? ws_response_status(resp) : 0;
}

static void cl_reconnect(uint32_t attempt, int64_t delay_ms, ws_status last_status, void *user_data) {
    (void)last_status;
    struct cl *c = user_data;
    if (c->reconnects < 16) c->delays[c->reconnects] = delay_ms;
    c->reconnects++;
    c->last_attempt = attempt;
}

static const ws_loop_callbacks client_cb = {
    .on_open = cl_open,
    .on_message = cl_message,
    .on_close = cl_close,
    .on_dial_error = cl_dial_error,
};

/* Polls `lp` until `*counter >= want` or `ms` pass. */
static int poll_until(ws_loop *lp, const int *counter, int want, int ms) {
    for (int waited = 0; *counter < want && waited < ms; waited += 10) ws_loop_poll(lp, 10);
    return *counter >= want;
}

static void poll_for(ws_loop *lp, int ms) {
    for (int waited = 0; waited < ms; waited += 10) ws_loop_poll(lp, 10);
}

static ws_reconnect_options fast(int32_t max_retries) {
    ws_reconnect_options o = ws_reconnect_options_default();
    o.initial_delay_ms = 20;
    o.max_delay_ms = 200;
    o.jitter = 0;
    o.max_retries = max_retries;
    o.on_reconnect = cl_reconnect;
    return o;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) return -1;
    close(fd);
    return ntohs(a.sin_port);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    ws_reconnect_options def = ws_reconnect_options_default();
    check(def.initial_delay_ms == 1000 && def.max_delay_ms == 30000 && def.multiplier == 2.0 && def.jitter == 0.5 &&
              def.max_retries < 0 && def.on_reconnect == NULL,
          "default options: 1 s doubling to 30 s, jitter 0.5, forever");

    ws_loop *lp = NULL;
    if (!check_status(ws_loop_new(&lp), WS_OK, "ws_loop_new")) return summary();
    ws_loop_callbacks scb = {.on_handshake = srv_handshake, .on_message = srv_message};
    uint16_t port = 0;
    check_status(ws_loop_listen(lp, NULL, "127.0.0.1", 0, &scb, NULL, &port), WS_OK, "a loop server");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", port);

    /* A server that closes each connection: the client comes back. */
    struct cl c = {0};
    ws_reconnect_options o = fast(-1);
    ws_reconnect *r = NULL;
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, &o, &c, &r), WS_OK,
                 "ws_loop_dial_reconnecting");
    check(poll_until(lp, &c.opens, 4, 10000), "four connections, each after the server closed the last (%d)", c.opens);
    check(c.messages >= 3 && c.closes >= 3 && c.reconnects >= 3, "every message, close and reconnect reported");
    check(c.delays[0] == 20 && c.delays[1] == 20 && c.last_attempt == 1,
          "the attempt count restarts after each open (delays %lld, %lld)", (long long)c.delays[0],
          (long long)c.delays[1]);
    check(!ws_reconnect_is_stopped(r), "still running");
    check_status(ws_reconnect_stop(r), WS_OK, "ws_reconnect_stop");
    check_status(ws_reconnect_stop(r), WS_OK, "ws_reconnect_stop again");
    int opens = c.opens, seen = accepted;
    check(poll_until(lp, &c.closes, opens, 10000), "every opened connection got its on_close (%d opens, %d closes)",
          c.opens, c.closes);
    poll_for(lp, 300);
    check(c.opens == opens && accepted <= seen + 1 && ws_reconnect_is_stopped(r), "no dial after stop");
    ws_reconnect_free(r);
    ws_reconnect_free(r); /* a second free is a no-op */

    /* Nothing listens: growing delays, then it gives up. */
    struct cl d = {0};
    char dead[64];
    snprintf(dead, sizeof dead, "ws://127.0.0.1:%d/", free_port());
    o = fast(3);
    check_status(ws_loop_dial_reconnecting(lp, NULL, dead, NULL, 0, &client_cb, &o, &d, &r), WS_OK,
                 "dial a port nothing listens on");
    check(poll_until(lp, &d.dial_errors, 4, 10000), "four failed dials (%d)", d.dial_errors);
    poll_for(lp, 300);
    check(d.dial_errors == 4 && d.reconnects == 3 && ws_reconnect_is_stopped(r), "three retries, then stopped");
    check(d.delays[0] == 20 && d.delays[1] == 40 && d.delays[2] == 80, "delays 20, 40, 80 ms (%lld, %lld, %lld)",
          (long long)d.delays[0], (long long)d.delays[1], (long long)d.delays[2]);
    ws_reconnect_free(r);

    /* 403: not retried. */
    refuse_status = 403;
    struct cl e = {0};
    o = fast(-1);
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, &o, &e, &r), WS_OK, "dial a 403");
    check(poll_until(lp, &e.dial_errors, 1, 10000), "the refusal arrives");
    poll_for(lp, 300);
    check(e.dial_errors == 1 && e.last_dial_status == 403 && e.reconnects == 0 && ws_reconnect_is_stopped(r),
          "a 4xx refusal is not retried");
    ws_reconnect_free(r);
    refuse_status = 0;

    /* A cancellable one-shot dial, cancelled before the loop ran. */
    struct cl f = {0};
    o = fast(0);
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, &o, &f, &r), WS_OK, "a one-shot dial");
    ws_reconnect_free(r); /* stops it */
    poll_for(lp, 400);
    check(f.opens == 0 && f.closes == 0 && f.dial_errors == 0, "a dial cancelled in flight calls nothing back");

    /* Bad arguments. */
    o = fast(-1);
    o.initial_delay_ms = 0;
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, &o, &f, &r), WS_ERR_INVALID_ARGUMENT,
                 "initial delay 0: WS_ERR_INVALID_ARGUMENT");
    o = fast(-1);
    o.jitter = 2;
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, &o, &f, &r), WS_ERR_INVALID_ARGUMENT,
                 "jitter 2: WS_ERR_INVALID_ARGUMENT");
    check_status(ws_loop_dial_reconnecting(lp, NULL, "http://x/", NULL, 0, &client_cb, NULL, &f, &r), WS_ERR_BAD_URL,
                 "a bad URL: WS_ERR_BAD_URL at once");
    check_status(ws_loop_dial_reconnecting(lp, NULL, url, NULL, 0, &client_cb, NULL, &f, NULL),
                 WS_ERR_INVALID_ARGUMENT, "out NULL: WS_ERR_INVALID_ARGUMENT");
    check_status(ws_reconnect_stop(NULL), WS_ERR_INVALID_ARGUMENT, "stop(NULL)");
    check(ws_reconnect_is_stopped(NULL), "is_stopped(NULL) is true");
    ws_reconnect_free(NULL);

    ws_loop_free(lp);
    return summary();
}
