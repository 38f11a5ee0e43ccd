/* Concurrent writers on one connection; close waking a blocked reader; a
 * second concurrent reader gets WS_ERR_BUSY. */
#include "common.h"

#define N_THREADS 8
#define N_MSGS 1000

struct writer_job {
    ws_conn *conn;
    int tid;
    int failures;
    ws_status first_error;
};

/* Message: "T<tid> S<seq> L<len> " + filler derived from (tid, seq). Even
 * threads send text, odd threads binary. */
static size_t make_msg(uint8_t *buf, int tid, int seq) {
    int hl = snprintf((char *)buf, 64, "T%d S%d ", tid, seq);
    size_t fill = (size_t)((seq * 37 + tid * 101) % 3000);
    for (size_t i = 0; i < fill; i++) buf[hl + i] = (uint8_t)('A' + (i + (size_t)seq + (size_t)tid) % 26);
    return (size_t)hl + fill;
}

static void *writer(void *arg) {
    struct writer_job *j = arg;
    uint8_t buf[4096];
    for (int seq = 0; seq < N_MSGS; seq++) {
        size_t n = make_msg(buf, j->tid, seq);
        ws_status st = ws_conn_write_message(j->conn, j->tid % 2 ? WS_BINARY : WS_TEXT, buf, n);
        if (st != WS_OK) {
            if (j->failures++ == 0) j->first_error = st;
        }
    }
    return NULL;
}

struct reader_job {
    ws_conn *conn;
    ws_status status;
    double returned_at;
    volatile int done;
};

static void *blocked_reader(void *arg) {
    struct reader_job *j = arg;
    ws_msg_type t;
    const uint8_t *data;
    size_t n;
    j->status = ws_conn_read_message(j->conn, &t, &data, &n);
    j->returned_at = now_ms();
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int wait_done(volatile int *flag, int ms) {
    double t0 = now_ms();
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
        if (now_ms() - t0 > ms) return 0;
        sleep_ms(2);
    }
    return 1;
}

/* A server handler that never sends anything but keeps reading. */
static void silent_handler(ws_conn *conn, void *ud) {
    (void)ud;
    ws_msg_type t;
    const uint8_t *data;
    size_t n;
    while (ws_conn_read_message(conn, &t, &data, &n) == WS_OK) {
    }
    ws_conn_free(conn);
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

    /* 8 writers, the main thread reads the echoes concurrently. */
    struct writer_job jobs[N_THREADS];
    pthread_t tids[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (struct writer_job){c, i, 0, WS_OK};
        pthread_create(&tids[i], NULL, writer, &jobs[i]);
    }
    int next_seq[N_THREADS] = {0};
    int bad = 0, out_of_order = 0, wrong_type = 0;
    ws_status rst = WS_OK;
    uint8_t want[4096];
    for (int k = 0; k < N_THREADS * N_MSGS; k++) {
        ws_msg_type t;
        const uint8_t *data;
        size_t n;
        rst = ws_conn_read_message(c, &t, &data, &n);
        if (rst != WS_OK) break;
        int tid = -1, seq = -1;
        char head[64];
        size_t hn = n < sizeof head - 1 ? n : sizeof head - 1;
        memcpy(head, data, hn);
        head[hn] = '\0';
        if (sscanf(head, "T%d S%d ", &tid, &seq) != 2 || tid < 0 || tid >= N_THREADS || seq < 0 || seq >= N_MSGS) {
            if (bad++ < 5) diag("unparsable message of %zu bytes: \"%.20s\"", n, head);
            continue;
        }
        size_t wl = make_msg(want, tid, seq);
        if (wl != n || memcmp(want, data, n) != 0) {
            if (bad++ < 5) diag("message T%d S%d corrupted (%zu bytes, want %zu)", tid, seq, n, wl);
        }
        if (t != (tid % 2 ? WS_BINARY : WS_TEXT)) wrong_type++;
        if (seq != next_seq[tid]) {
            if (out_of_order++ < 5) diag("thread %d: got seq %d, want %d", tid, seq, next_seq[tid]);
        }
        next_seq[tid] = seq + 1;
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(tids[i], NULL);
    int write_failures = 0;
    for (int i = 0; i < N_THREADS; i++) {
        if (jobs[i].failures) diag("writer %d: %d failures, first %s", i, jobs[i].failures, ws_status_str(jobs[i].first_error));
        write_failures += jobs[i].failures;
    }
    check(write_failures == 0, "8 threads x 1000 concurrent writes succeed");
    check_status(rst, WS_OK, "all 8000 echoes read");
    check(bad == 0, "every message arrives intact (no interleaving)");
    check(wrong_type == 0, "every message keeps its type");
    check(out_of_order == 0, "per-thread order is preserved");
    int all = 1;
    for (int i = 0; i < N_THREADS; i++) all &= next_seq[i] == N_MSGS;
    check(all, "every thread's last message arrived");
    ws_conn_close_graceful(c, 1000, NULL, 0, 5000);
    ws_conn_free(c);
    server_stop(&s);

    /* ws_conn_close from another thread wakes a blocked reader; a second
     * concurrent reader gets WS_ERR_BUSY. */
    if (server_start(&s, NULL, silent_handler, NULL) != 0) {
        check(0, "server 2 starts");
        return summary();
    }
    c = dial_or_null(NULL, s.url);
    if (!check(c != NULL, "dial 2")) return summary();
    struct reader_job a = {c, -1, 0, 0};
    pthread_t ta;
    pthread_create(&ta, NULL, blocked_reader, &a);
    sleep_ms(200);
    check(!__atomic_load_n(&a.done, __ATOMIC_SEQ_CST), "reader blocks while nothing arrives");
    struct reader_job b = {c, -1, 0, 0};
    pthread_t tb;
    pthread_create(&tb, NULL, blocked_reader, &b);
    int b_returned = wait_done(&b.done, 2000);
    check(b_returned && b.status == WS_ERR_BUSY, "a second concurrent reader gets WS_ERR_BUSY at once (got %s)",
          b_returned ? ws_status_str(b.status) : "still blocked");
    {
        ws_msg_type t;
        char buf[8];
        size_t n;
        ws_status st = ws_conn_next_reader(c, &t);
        check_status(st, WS_ERR_BUSY, "next_reader during a blocked read is WS_ERR_BUSY");
        st = ws_conn_reader_read(c, (uint8_t *)buf, sizeof buf, &n);
        check(st == WS_ERR_BUSY || st == WS_ERR_INVALID_ARGUMENT, "reader_read during a blocked read is refused (%s)", ws_status_str(st));
    }
    /* Writes still work while a reader is blocked. */
    check_status(ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"hi", 2), WS_OK, "write while another thread reads");
    double t0 = now_ms();
    check_status(ws_conn_close(c), WS_OK, "ws_conn_close from another thread");
    int a_returned = wait_done(&a.done, 2000);
    check(a_returned, "blocked reader returns after ws_conn_close");
    if (a_returned) {
        check_status(a.status, WS_ERR_LOCALLY_CLOSED, "blocked reader gets WS_ERR_LOCALLY_CLOSED");
        double dt = a.returned_at - t0;
        check(dt < 1000, "blocked reader woke within a second (%.1f ms)", dt);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    {
        ws_msg_type t;
        const uint8_t *data;
        size_t n;
        check_status(ws_conn_read_message(c, &t, &data, &n), WS_ERR_LOCALLY_CLOSED, "later reads also return WS_ERR_LOCALLY_CLOSED");
        check_status(ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"x", 1), WS_ERR_LOCALLY_CLOSED,
                     "writes after ws_conn_close return WS_ERR_LOCALLY_CLOSED");
        check_status(ws_conn_close(c), WS_OK, "a second ws_conn_close is harmless");
    }
    ws_conn_free(c);

    server_stop(&s);
    return summary();
}
