/* Streaming writer and reader; a control frame from another thread while a
 * streaming writer is open. */
#include "common.h"

static pthread_mutex_t ping_mu = PTHREAD_MUTEX_INITIALIZER;
static int pings_seen;
static char ping_payload[128];
static int ping_before_message_end; /* ping seen before the message's echo was written */

static ws_status on_ping(ws_conn *conn, const uint8_t *data, size_t len, void *ud) {
    (void)ud;
    pthread_mutex_lock(&ping_mu);
    pings_seen++;
    size_t n = len < sizeof ping_payload - 1 ? len : sizeof ping_payload - 1;
    memcpy(ping_payload, data, n);
    ping_payload[n] = '\0';
    pthread_mutex_unlock(&ping_mu);
    return ws_conn_default_ping_handler(conn, data, len, NULL);
}

/* Echo server whose ping handler records pings. */
static void ping_recording_echo(ws_conn *conn, void *ud) {
    (void)ud;
    ws_conn_set_ping_handler(conn, on_ping, NULL);
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        if (ws_conn_read_message(conn, &type, &data, &len) != WS_OK) break;
        pthread_mutex_lock(&ping_mu);
        ping_before_message_end = pings_seen;
        pthread_mutex_unlock(&ping_mu);
        if (ws_conn_write_message(conn, type, data, len) != WS_OK) break;
    }
    ws_conn_free(conn);
}

/* Odd piece sizes, cycling. */
static const size_t piece_sizes[] = {1, 3, 7, 13, 127, 1021, 4093, 16383, 16385, 65537, 2, 100003};
#define N_PIECES (sizeof piece_sizes / sizeof piece_sizes[0])

/* Writes `total` bytes of `msg` through the streaming writer in odd pieces. */
static ws_status write_streamed(ws_conn *c, ws_msg_type type, const uint8_t *msg, size_t total) {
    ws_status st = ws_conn_next_writer(c, type);
    if (st != WS_OK) return st;
    size_t off = 0;
    for (size_t i = 0; off < total; i++) {
        size_t n = piece_sizes[i % N_PIECES];
        if (n > total - off) n = total - off;
        st = ws_conn_writer_write(c, msg + off, n);
        if (st != WS_OK) return st;
        off += n;
    }
    return ws_conn_writer_close(c);
}

/* Reads the next message through the streaming reader with `cap`-byte
 * reads; compares it with `want`. Returns 1 when identical. */
static int read_streamed(ws_conn *c, ws_msg_type want_type, const uint8_t *want, size_t want_len, size_t cap) {
    ws_msg_type t = 0;
    ws_status st = ws_conn_next_reader(c, &t);
    if (st != WS_OK || t != want_type) {
        diag("next_reader: %s, type %d", ws_status_str(st), t);
        return 0;
    }
    uint8_t *buf = malloc(cap);
    size_t off = 0;
    int ok = 1;
    for (;;) {
        size_t n = 0;
        st = ws_conn_reader_read(c, buf, cap, &n);
        if (st != WS_OK) {
            diag("reader_read at %zu: %s", off, ws_status_str(st));
            ok = 0;
            break;
        }
        if (n == 0) break;
        if (n > cap || off + n > want_len || memcmp(buf, want + off, n) != 0) {
            diag("content differs at offset %zu (n=%zu)", off, n);
            ok = 0;
            break;
        }
        off += n;
    }
    free(buf);
    if (ok && off != want_len) {
        diag("got %zu bytes, want %zu", off, want_len);
        ok = 0;
    }
    return ok;
}

struct ping_job {
    ws_conn *conn;
    ws_status status;
};

static void *ping_thread(void *arg) {
    struct ping_job *j = arg;
    j->status = ws_conn_write_control(j->conn, WS_PING, (const uint8_t *)"mid-stream", 10, 5000);
    return NULL;
}

int main(void) {
    watchdog(100);
    struct server s;
    if (server_start(&s, NULL, ping_recording_echo, NULL) != 0) {
        check(0, "server starts");
        return summary();
    }
    ws_conn *c = dial_or_null(NULL, s.url);
    if (!check(c != NULL, "dial")) return summary();

    /* Binary, ~5 MB, written in odd pieces; read back with 7-byte and 64 KiB
     * buffers. */
    size_t total = 5u * 1024 * 1024 + 12345;
    uint8_t *msg = malloc(total);
    fill_pattern(msg, total, WS_BINARY, 42);
    check_status(write_streamed(c, WS_BINARY, msg, total), WS_OK, "streamed binary message of %zu bytes written", total);
    check(read_streamed(c, WS_BINARY, msg, total, 7), "echo read back with a 7-byte buffer, content identical");
    check_status(write_streamed(c, WS_BINARY, msg, total), WS_OK, "second streamed binary message written");
    check(read_streamed(c, WS_BINARY, msg, total, 65536), "echo read back with a 64 KiB buffer, content identical");
    /* The whole-message reader sees a streamed message whole. */
    check_status(write_streamed(c, WS_BINARY, msg, total), WS_OK, "third streamed binary message written");
    {
        ws_msg_type t;
        const uint8_t *data;
        size_t n;
        ws_status st = ws_conn_read_message(c, &t, &data, &n);
        check(st == WS_OK && t == WS_BINARY && n == total && memcmp(data, msg, n) == 0,
              "streamed message read whole with ws_conn_read_message");
    }

    /* Text with multi-byte UTF-8 sequences, split across pieces by the odd
     * sizes and across reads by the 7-byte buffer. */
    {
        const char *unit = "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 ";
        size_t ul = strlen(unit);
        size_t reps = (3u * 1024 * 1024) / ul;
        size_t tl = ul * reps;
        uint8_t *text = malloc(tl);
        for (size_t i = 0; i < reps; i++) memcpy(text + i * ul, unit, ul);
        check_status(write_streamed(c, WS_TEXT, text, tl), WS_OK, "streamed UTF-8 text of %zu bytes written", tl);
        check(read_streamed(c, WS_TEXT, text, tl, 7), "UTF-8 text read back with a 7-byte buffer");
        check_status(write_streamed(c, WS_TEXT, text, tl), WS_OK, "streamed UTF-8 text written again");
        check(read_streamed(c, WS_TEXT, text, tl, 65536), "UTF-8 text read back with a 64 KiB buffer");
        free(text);
    }

    /* Empty streamed message. */
    check_status(write_streamed(c, WS_BINARY, msg, 0), WS_OK, "empty streamed message written");
    check(read_streamed(c, WS_BINARY, msg, 0, 7), "empty streamed message read back");

    /* An unfinished message is discarded by the next next_reader. */
    {
        ws_conn_write_message(c, WS_BINARY, msg, 100000);
        ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"next", 4);
        ws_msg_type t;
        uint8_t buf[10];
        size_t n = 0;
        check(ws_conn_next_reader(c, &t) == WS_OK && t == WS_BINARY, "next_reader on a 100000-byte message");
        size_t n0 = 1;
        check_status(ws_conn_reader_read(c, buf, 0, &n0), WS_ERR_INVALID_ARGUMENT, "reader_read with cap 0 mid-message");
        ws_status st = ws_conn_reader_read(c, buf, sizeof buf, &n);
        check(st == WS_OK && n > 0 && n <= sizeof buf && memcmp(buf, msg, n) == 0, "read its first bytes (%zu)", n);
        check(read_streamed(c, WS_TEXT, (const uint8_t *)"next", 4, 7), "next_reader skips the rest and reads the next message");
    }

    /* A ping from another thread while this thread's streaming writer is
     * open goes out between fragments; the message still arrives intact. */
    {
        ws_status st = ws_conn_next_writer(c, WS_BINARY);
        check_status(st, WS_OK, "next_writer for the interleaving test");
        size_t half = total / 2;
        size_t off = 0;
        for (size_t i = 0; off < half; i++) {
            size_t n = piece_sizes[i % N_PIECES];
            if (n > half - off) n = half - off;
            if (ws_conn_writer_write(c, msg + off, n) != WS_OK) break;
            off += n;
        }
        struct ping_job job = {c, -1};
        pthread_t tid;
        pthread_create(&tid, NULL, ping_thread, &job);
        pthread_join(tid, NULL);
        check_status(job.status, WS_OK, "ping written from another thread while the writer is open");
        /* Give the server time to read the frames so far (and the ping)
         * while our message is still open. */
        double t0 = now_ms();
        int seen = 0;
        while (now_ms() - t0 < 5000) {
            pthread_mutex_lock(&ping_mu);
            seen = pings_seen;
            pthread_mutex_unlock(&ping_mu);
            if (seen) break;
            sleep_ms(5);
        }
        check(seen == 1, "the peer's ping handler saw the ping before the message ended");
        for (size_t i = 0; off < total; i++) {
            size_t n = piece_sizes[i % N_PIECES];
            if (n > total - off) n = total - off;
            if (ws_conn_writer_write(c, msg + off, n) != WS_OK) break;
            off += n;
        }
        check_status(ws_conn_writer_close(c), WS_OK, "writer closed after the ping");
        check(read_streamed(c, WS_BINARY, msg, total, 65536), "message interrupted by a ping arrives intact");
        pthread_mutex_lock(&ping_mu);
        check(strcmp(ping_payload, "mid-stream") == 0, "ping payload \"mid-stream\" (got \"%s\")", ping_payload);
        check(ping_before_message_end == 1, "ping handled before the message completed");
        pthread_mutex_unlock(&ping_mu);
    }

    /* Streaming calls in the wrong state. */
    {
        uint8_t b[4];
        size_t n = 0;
        check_status(ws_conn_writer_write(c, (const uint8_t *)"x", 1), WS_ERR_INVALID_ARGUMENT, "writer_write without next_writer");
        check(round_trip(c, WS_TEXT, 5, 3), "connection still works");
        check_status(ws_conn_reader_read(c, b, sizeof b, &n), WS_ERR_INVALID_ARGUMENT, "reader_read after the message was read whole");
    }

    free(msg);
    check_status(ws_conn_close_graceful(c, 1000, NULL, 0, -1), WS_OK, "close_graceful without a time limit");
    ws_conn_free(c);
    server_stop(&s);
    return summary();
}
