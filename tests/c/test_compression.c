/* permessage-deflate through the C API: negotiation, compressed echo of
 * every size, per-connection settings, prepared messages, bad options. */
#include "common.h"

static ws_listener *start_server(const ws_compression_options *opts) {
    ws_upgrader *up = ws_upgrader_new();
    if (opts) ws_upgrader_set_compression(up, opts);
    ws_listener *l = NULL;
    ws_listen(up, "127.0.0.1", 0, &l);
    ws_upgrader_free(up);
    return l;
}

static void *echo_one(void *arg) {
    ws_listener *l = arg;
    ws_conn *c;
    if (ws_listener_accept(l, 5000, &c) != WS_OK) return NULL;
    for (;;) {
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        if (ws_conn_read_message(c, &t, &d, &n) != WS_OK) break;
        if (ws_conn_write_message(c, t, d, n) != WS_OK) break;
    }
    ws_conn_free(c);
    return NULL;
}

static ws_conn *dial_to(ws_listener *l, const ws_compression_options *opts, ws_status *st_out) {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", ws_listener_port(l));
    ws_dialer *d = ws_dialer_new();
    if (opts) ws_dialer_set_compression(d, opts);
    ws_conn *c = NULL;
    *st_out = ws_dial(d, url, NULL, 0, &c, NULL);
    ws_dialer_free(d);
    return c;
}

static uint8_t *text_of(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)("the quick brown fox jumps over the lazy dog "[i % 44]);
    return p;
}

int main(void) {
    watchdog(120);
    ws_compression_options opts = ws_compression_options_default();
    check(opts.server_max_window_bits == 12 && opts.client_max_window_bits == 12 && opts.level == 1 &&
              opts.mem_level == 8 && opts.memory == WS_COMPRESSION_POOLED && !opts.server_no_context_takeover,
          "default compression options");

    /* Negotiated echo of every size. */
    ws_listener *l = start_server(&opts);
    pthread_t th;
    pthread_create(&th, NULL, echo_one, l);
    ws_status st;
    ws_conn *c = dial_to(l, &opts, &st);
    check(st == WS_OK && c != NULL, "dial with compression");
    check(ws_conn_compression_negotiated(c), "compression negotiated");
    size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *msg = text_of(sizes[i]);
        ws_status w = ws_conn_write_message(c, WS_TEXT, msg, sizes[i]);
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        ws_status r = ws_conn_read_message(c, &t, &d, &n);
        char name[64];
        snprintf(name, sizeof name, "compressed echo of %zu bytes", sizes[i]);
        check(w == WS_OK && r == WS_OK && t == WS_TEXT && n == sizes[i] && memcmp(d, msg, n) == 0, name);
        free(msg);
    }
    check(ws_conn_set_compression_level(c, 9) == WS_OK, "level 9");
    check(ws_conn_set_compression_level(c, 10) == WS_ERR_INVALID_ARGUMENT, "level 10 refused");
    check(ws_conn_set_compression_level(c, -3) == WS_ERR_INVALID_ARGUMENT, "level -3 refused");
    check(ws_conn_set_compression_threshold(c, 100) == WS_OK, "threshold");
    check(ws_conn_enable_write_compression(c, false) == WS_OK, "disable write compression");
    uint8_t *m = text_of(5000);
    ws_conn_write_message(c, WS_BINARY, m, 5000);
    ws_conn_enable_write_compression(c, true);
    ws_conn_write_message(c, WS_BINARY, m, 50); /* under the threshold */
    ws_conn_write_message(c, WS_BINARY, m, 5000);
    int ok = 1;
    size_t expect[] = {5000, 50, 5000};
    for (int i = 0; i < 3; i++) {
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        ok &= ws_conn_read_message(c, &t, &d, &n) == WS_OK && n == expect[i] && memcmp(d, m, n) == 0;
    }
    check(ok, "uncompressed, small and compressed messages interleave");

    /* Prepared message. */
    ws_prepared_message *pm = NULL;
    check(ws_prepared_message_new(WS_TEXT, m, 5000, &pm) == WS_OK, "prepared message");
    check(ws_conn_write_prepared(c, pm) == WS_OK && ws_conn_write_prepared(c, pm) == WS_OK, "write prepared twice");
    ok = 1;
    for (int i = 0; i < 2; i++) {
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        ok &= ws_conn_read_message(c, &t, &d, &n) == WS_OK && t == WS_TEXT && n == 5000 && memcmp(d, m, n) == 0;
    }
    check(ok, "prepared messages arrive intact");
    check(ws_conn_write_prepared(c, NULL) == WS_ERR_INVALID_ARGUMENT, "NULL prepared message");
    ws_prepared_message *bad = NULL;
    check(ws_prepared_message_new(WS_PING, m, 126, &bad) == WS_ERR_INVALID_ARGUMENT, "long control prepared refused");
    check(ws_prepared_message_new(77, m, 1, &bad) == WS_ERR_INVALID_ARGUMENT, "bad type prepared refused");
    ws_prepared_message_free(pm);
    ws_prepared_message_free(pm);
    ws_prepared_message_free(NULL);
    free(m);
    ws_conn_close_graceful(c, 1000, NULL, 0, 2000);
    ws_conn_free(c);
    pthread_join(th, NULL);
    ws_listener_free(l);

    /* Server without compression: the client goes on uncompressed. */
    l = start_server(NULL);
    pthread_create(&th, NULL, echo_one, l);
    c = dial_to(l, &opts, &st);
    check(st == WS_OK && !ws_conn_compression_negotiated(c), "no compression when the server declines");
    ws_conn_close(c);
    ws_conn_free(c);
    pthread_join(th, NULL);
    ws_listener_free(l);

    /* Bad options. */
    ws_compression_options bad_opts = opts;
    bad_opts.server_max_window_bits = 7;
    ws_dialer *d = ws_dialer_new();
    check(ws_dialer_set_compression(d, &bad_opts) == WS_ERR_INVALID_ARGUMENT, "window bits 7 refused");
    bad_opts = opts;
    bad_opts.level = 11;
    check(ws_dialer_set_compression(d, &bad_opts) == WS_ERR_INVALID_ARGUMENT, "level 11 refused");
    bad_opts = opts;
    bad_opts.mem_level = 0;
    check(ws_dialer_set_compression(d, &bad_opts) == WS_ERR_INVALID_ARGUMENT, "memLevel 0 refused");
    bad_opts.mem_level = 10;
    check(ws_dialer_set_compression(d, &bad_opts) == WS_ERR_INVALID_ARGUMENT, "memLevel 10 refused");
    bad_opts = opts;
    bad_opts.memory = 3;
    check(ws_dialer_set_compression(d, &bad_opts) == WS_ERR_INVALID_ARGUMENT, "unknown memory mode refused");
    bad_opts.memory = WS_COMPRESSION_SHARED;
    check(ws_dialer_set_compression(d, &bad_opts) == WS_OK, "shared memory mode accepted");
    check(ws_dialer_set_compression(d, NULL) == WS_OK, "NULL turns compression off");
    ws_dialer_free(d);
    check(ws_upgrader_set_compression(NULL, &opts) == WS_ERR_INVALID_ARGUMENT, "NULL upgrader");
    check(!ws_conn_compression_negotiated(NULL), "NULL conn not negotiated");
    return summary();
}
