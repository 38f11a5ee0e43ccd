/* Read and write deadlines, control frames with a timeout, accept timeout. */
#include "common.h"

/* A server handler that does not read until `go` is set, then reads and
 * discards everything, answering the text "ping-me" with "pong-me". */
static volatile int go;
static void lazy_handler(ws_conn *conn, void *ud) {
    (void)ud;
    while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST)) sleep_ms(5);
    for (;;) {
        ws_msg_type t;
        const uint8_t *data;
        size_t n;
        if (ws_conn_read_message(conn, &t, &data, &n) != WS_OK) break;
        if (t == WS_TEXT && n == 7 && memcmp(data, "ping-me", 7) == 0)
            ws_conn_write_message(conn, WS_TEXT, (const uint8_t *)"pong-me", 7);
    }
    ws_conn_free(conn);
}

struct write_job {
    ws_conn *conn;
    const uint8_t *buf;
    size_t len;
    ws_status status;
    volatile int done;
    double returned_at;
};

static void *blocking_writer(void *arg) {
    struct write_job *j = arg;
    for (int i = 0; i < 1000; i++) {
        j->status = ws_conn_write_message(j->conn, WS_BINARY, j->buf, j->len);
        if (j->status != WS_OK) break;
    }
    j->returned_at = now_ms();
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(void) {
    watchdog(100);
    struct server s;
    if (server_start(&s, NULL, NULL, NULL) != 0) {
        check(0, "server starts");
        return summary();
    }
    ws_conn *c = dial_or_null(NULL, s.url);
    if (!check(c != NULL, "dial")) return summary();
    ws_msg_type t;
    const uint8_t *data;
    size_t n;

    /* Read deadline of 50 ms with no traffic. Timed from before it is
     * set: the deadline counts from there (under valgrind the gap to the
     * read is milliseconds). */
    double t0 = now_ms();
    check_status(ws_conn_set_read_deadline(c, 50), WS_OK, "set read deadline 50 ms");
    ws_status st = ws_conn_read_message(c, &t, &data, &n);
    double dt = now_ms() - t0;
    check_status(st, WS_ERR_TIMEOUT, "read with no traffic times out");
    check(dt >= 45 && dt < 1000, "after about 50 ms (%.1f ms)", dt);
    t0 = now_ms();
    st = ws_conn_read_message(c, &t, &data, &n);
    dt = now_ms() - t0;
    check(st == WS_ERR_TIMEOUT && dt < 30, "the deadline is a fixed point: a later read times out at once (%.1f ms)", dt);
    check_status(ws_conn_set_read_deadline(c, -1), WS_OK, "clear read deadline");
    check(round_trip(c, WS_TEXT, 100, 1), "a round trip succeeds after the timeout");
    check(round_trip(c, WS_BINARY, 1 << 20, 2), "a 1 MiB round trip succeeds after the timeout");

    /* Deadline 0: non-blocking reads. */
    check_status(ws_conn_set_read_deadline(c, 0), WS_OK, "set read deadline 0");
    t0 = now_ms();
    st = ws_conn_read_message(c, &t, &data, &n);
    dt = now_ms() - t0;
    check(st == WS_ERR_TIMEOUT && dt < 30, "non-blocking read with nothing arrived: WS_ERR_TIMEOUT at once (%.1f ms)", dt);
    {
        /* A message that arrives in pieces is assembled across non-blocking
         * reads (the partial message is kept). */
        size_t len = 3u << 20;
        uint8_t *msg = malloc(len);
        fill_pattern(msg, len, WS_BINARY, 5);
        check_status(ws_conn_write_message(c, WS_BINARY, msg, len), WS_OK, "write 3 MiB");
        int timeouts = 0;
        t0 = now_ms();
        for (;;) {
            st = ws_conn_set_read_deadline(c, 0);
            st = ws_conn_read_message(c, &t, &data, &n);
            if (st != WS_ERR_TIMEOUT || now_ms() - t0 > 10000) break;
            timeouts++;
            sleep_ms(1);
        }
        check(st == WS_OK && t == WS_BINARY && n == len && memcmp(data, msg, len) == 0,
              "polling with deadline 0 eventually reads the 3 MiB echo intact (%d timeouts meanwhile)", timeouts);
        free(msg);
    }
    check_status(ws_conn_set_read_deadline(c, -1), WS_OK, "clear read deadline again");
    check(round_trip(c, WS_TEXT, 10, 3), "round trip after non-blocking reads");

    /* Control frame with a timeout on a healthy connection. */
    check_status(ws_conn_write_control(c, WS_PING, (const uint8_t *)"x", 1, 1000), WS_OK, "ping with a 1 s timeout");
    check_status(ws_conn_write_control(c, WS_PING, (const uint8_t *)"y", 1, 0), WS_OK, "ping with timeout 0 on an idle connection");
    check(round_trip(c, WS_TEXT, 10, 4), "round trip after pings");
    ws_conn_close_graceful(c, 1000, NULL, 0, 5000);
    ws_conn_free(c);
    server_stop(&s);

    /* Write deadline: a server that does not read. */
    if (server_start(&s, NULL, lazy_handler, NULL) != 0) {
        check(0, "lazy server starts");
        return summary();
    }
    c = dial_or_null(NULL, s.url);
    if (!check(c != NULL, "dial the lazy server")) return summary();
    size_t chunk = 1u << 20;
    uint8_t *big = malloc(chunk);
    fill_pattern(big, chunk, WS_BINARY, 7);
    size_t sent = 0, limit = 256u << 20;
    int incomplete = 0, first_failure_seen = 0;
    ws_status first_failure = WS_OK;
    st = WS_OK;
    t0 = now_ms();
    /* Write until a write times out with nothing sent: only then is the
     * socket surely full (after WRITE_INCOMPLETE the kernel may still grow
     * its send buffer a little). */
    while (sent < limit) {
        ws_conn_set_write_deadline(c, 200);
        st = ws_conn_write_message(c, WS_BINARY, big, chunk);
        if (st != WS_OK && !first_failure_seen) {
            first_failure_seen = 1;
            first_failure = st;
        }
        if (st == WS_ERR_WRITE_INCOMPLETE) incomplete = 1;
        if (st != WS_OK && st != WS_ERR_WRITE_INCOMPLETE) break;
        sent += chunk;
    }
    dt = now_ms() - t0;
    check(first_failure == WS_ERR_TIMEOUT || first_failure == WS_ERR_WRITE_INCOMPLETE,
          "writes to a peer that does not read end with TIMEOUT or WRITE_INCOMPLETE (first: %s)", ws_status_str(first_failure));
    check(st == WS_ERR_TIMEOUT, "then a write times out with nothing sent (%s after %zu MiB, %.0f ms)", ws_status_str(st),
          sent >> 20, dt);

    /* Control frames with a timeout while the socket is full. */
    t0 = now_ms();
    ws_status cst = ws_conn_write_control(c, WS_PING, (const uint8_t *)"z", 1, 100);
    dt = now_ms() - t0;
    check(cst == WS_ERR_TIMEOUT || cst == WS_ERR_WRITE_INCOMPLETE, "ping with a 100 ms timeout on a full socket: %s",
          ws_status_str(cst));
    check(dt >= 80 && dt < 2000, "... after about 100 ms (%.1f ms)", dt);
    incomplete |= cst == WS_ERR_WRITE_INCOMPLETE;
    t0 = now_ms();
    cst = ws_conn_write_control(c, WS_PING, (const uint8_t *)"z", 1, 0);
    dt = now_ms() - t0;
    check((cst == WS_ERR_TIMEOUT || cst == WS_ERR_WRITE_INCOMPLETE) && dt < 50,
          "ping with timeout 0 on a full socket: %s at once (%.1f ms)", ws_status_str(cst), dt);
    incomplete |= cst == WS_ERR_WRITE_INCOMPLETE;
    diag("a WRITE_INCOMPLETE happened: %s", incomplete ? "yes" : "no");

    /* Let the peer read; the queued rest goes out and the connection works. */
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    ws_conn_set_write_deadline(c, -1);
    check_status(ws_conn_flush(c), WS_OK, "flush once the peer reads");
    check_status(ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"ping-me", 7), WS_OK, "write after the write timeout");
    ws_conn_set_read_deadline(c, 10000);
    st = ws_conn_read_message(c, &t, &data, &n);
    check(st == WS_OK && n == 7 && memcmp(data, "pong-me", 7) == 0, "the connection still works after a write timeout (%s)",
          ws_status_str(st));
    ws_conn_close_graceful(c, 1000, NULL, 0, 5000);
    ws_conn_free(c);

    /* A writer blocked on a full socket (no deadline) is woken by
     * ws_conn_close from another thread. */
    __atomic_store_n(&go, 0, __ATOMIC_SEQ_CST);
    c = dial_or_null(NULL, s.url);
    if (check(c != NULL, "dial the lazy server again")) {
        struct write_job j = {c, big, chunk, -1, 0, 0};
        pthread_t tid;
        pthread_create(&tid, NULL, blocking_writer, &j);
        sleep_ms(500);
        check(!__atomic_load_n(&j.done, __ATOMIC_SEQ_CST), "writer blocks on a full socket");
        t0 = now_ms();
        ws_conn_close(c);
        double w0 = now_ms();
        while (!__atomic_load_n(&j.done, __ATOMIC_SEQ_CST) && now_ms() - w0 < 3000) sleep_ms(2);
        int done = __atomic_load_n(&j.done, __ATOMIC_SEQ_CST);
        check(done && j.status == WS_ERR_LOCALLY_CLOSED, "blocked writer returns WS_ERR_LOCALLY_CLOSED after ws_conn_close (%s)",
              done ? ws_status_str(j.status) : "still blocked");
        if (done) check(j.returned_at - t0 < 1000, "within a second (%.1f ms)", j.returned_at - t0);
        pthread_join(tid, NULL);
        ws_conn_free(c);
    }
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    free(big);
    server_stop(&s);

    /* Accept with a timeout and no clients. */
    ws_listener *l = NULL;
    if (check_status(ws_listen(NULL, "127.0.0.1", 0, &l), WS_OK, "listen")) {
        ws_conn *none = NULL;
        t0 = now_ms();
        st = ws_listener_accept(l, 50, &none);
        dt = now_ms() - t0;
        check_status(st, WS_ERR_TIMEOUT, "accept with a 50 ms timeout and no clients");
        check(dt >= 45 && dt < 1000, "after about 50 ms (%.1f ms)", dt);
        check(none == NULL, "conn_out untouched on timeout");
        t0 = now_ms();
        st = ws_listener_accept(l, 0, &none);
        dt = now_ms() - t0;
        check(st == WS_ERR_TIMEOUT && dt < 30, "accept with timeout 0: WS_ERR_TIMEOUT at once (%.1f ms)", dt);
        ws_listener_shutdown(l);
        t0 = now_ms();
        st = ws_listener_accept(l, 5000, &none);
        dt = now_ms() - t0;
        check(st == WS_ERR_LOCALLY_CLOSED && dt < 100, "accept after shutdown: WS_ERR_LOCALLY_CLOSED at once (%s)", ws_status_str(st));
        ws_listener_free(l);
    }
    return summary();
}
