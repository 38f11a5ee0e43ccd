/* NULL handles and out-params, double frees, invalid types, codes and
 * sizes, status strings, last error, ws_format_close_message. */
#include "common.h"

#include <stdint.h>

#define INV WS_ERR_INVALID_ARGUMENT

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
    uint8_t *copy;
    size_t n;
    char buf[128];
    uint8_t ub[16];

    /* NULL handles. */
    check_status(ws_conn_read_message(NULL, &t, &data, &n), INV, "read_message(NULL conn)");
    check_status(ws_conn_read_message_copy(NULL, &t, &copy, &n), INV, "read_message_copy(NULL conn)");
    check_status(ws_conn_write_message(NULL, WS_TEXT, (const uint8_t *)"x", 1), INV, "write_message(NULL conn)");
    check_status(ws_conn_write_control(NULL, WS_PING, NULL, 0, 100), INV, "write_control(NULL conn)");
    check_status(ws_conn_close(NULL), INV, "close(NULL)");
    check_status(ws_conn_close_graceful(NULL, 1000, NULL, 0, 100), INV, "close_graceful(NULL)");
    check_status(ws_conn_flush(NULL), INV, "flush(NULL)");
    check_status(ws_conn_next_reader(NULL, &t), INV, "next_reader(NULL)");
    check_status(ws_conn_reader_read(NULL, ub, sizeof ub, &n), INV, "reader_read(NULL)");
    check_status(ws_conn_next_writer(NULL, WS_TEXT), INV, "next_writer(NULL)");
    check_status(ws_conn_writer_write(NULL, ub, 1), INV, "writer_write(NULL)");
    check_status(ws_conn_writer_close(NULL), INV, "writer_close(NULL)");
    check_status(ws_conn_set_read_deadline(NULL, 10), INV, "set_read_deadline(NULL)");
    check_status(ws_conn_set_write_deadline(NULL, 10), INV, "set_write_deadline(NULL)");
    check_status(ws_conn_set_read_limit(NULL, 10), INV, "set_read_limit(NULL)");
    check_status(ws_conn_set_ping_handler(NULL, NULL, NULL), INV, "set_ping_handler(NULL)");
    check_status(ws_conn_set_pong_handler(NULL, NULL, NULL), INV, "set_pong_handler(NULL)");
    check_status(ws_conn_set_close_handler(NULL, NULL, NULL), INV, "set_close_handler(NULL)");
    check_status(ws_conn_local_addr(NULL, buf, sizeof buf, &n), INV, "local_addr(NULL)");
    check_status(ws_conn_remote_addr(NULL, buf, sizeof buf, &n), INV, "remote_addr(NULL)");
    check_status(ws_conn_close_reason(NULL, buf, sizeof buf, &n), INV, "close_reason(NULL)");
    check(ws_conn_close_code(NULL) == 0, "close_code(NULL) is 0");
    check(ws_conn_subprotocol(NULL) == NULL, "subprotocol(NULL) is NULL");
    check(ws_conn_fd(NULL) == -1, "fd(NULL) is -1");
    check(ws_conn_last_error(NULL, buf, sizeof buf) == 0 || 1, "conn_last_error(NULL) does not crash");
    static const uint16_t codes[] = {1000};
    check(!ws_is_close_error(NULL, WS_ERR_CLOSED, codes, 1), "is_close_error(NULL conn) is false");
    check(!ws_is_unexpected_close_error(NULL, WS_ERR_CLOSED, codes, 1), "is_unexpected_close_error(NULL conn) is false");
    check_status(ws_dialer_set_subprotocols(NULL, NULL, 0), INV, "dialer_set_subprotocols(NULL)");
    check_status(ws_dialer_add_header(NULL, "a", "b"), INV, "dialer_add_header(NULL)");
    check_status(ws_dialer_set_handshake_timeout(NULL, 1), INV, "dialer_set_handshake_timeout(NULL)");
    check_status(ws_upgrader_set_subprotocols(NULL, NULL, 0), INV, "upgrader_set_subprotocols(NULL)");
    check_status(ws_upgrader_add_response_header(NULL, "a", "b"), INV, "upgrader_add_response_header(NULL)");
    check_status(ws_upgrader_set_read_limit(NULL, 1), INV, "upgrader_set_read_limit(NULL)");
    check_status(ws_listener_accept(NULL, 0, &c), INV, "listener_accept(NULL)");
    check_status(ws_listener_shutdown(NULL), INV, "listener_shutdown(NULL)");
    check_status(ws_listener_addr(NULL, buf, sizeof buf, &n), INV, "listener_addr(NULL)");
    check(ws_listener_port(NULL) == 0, "listener_port(NULL) is 0");
    check(ws_response_status(NULL) == 0, "response_status(NULL) is 0");
    check_status(ws_response_header(NULL, "a", &data, &n), INV, "response_header(NULL)");
    check_status(ws_response_body(NULL, &data, &n), INV, "response_body(NULL)");
    check(ws_response_header_count(NULL) == 0, "response_header_count(NULL) is 0");
    check_status(ws_request_method(NULL, (const char **)&data, &n), INV, "request_method(NULL)");
    check(ws_request_header_count(NULL) == 0, "request_header_count(NULL) is 0");
    check_status(ws_error_response_set_status(NULL, 400), INV, "error_response_set_status(NULL)");

    /* NULL out-params and buffers on a live connection. */
    check_status(ws_conn_read_message(c, NULL, &data, &n), INV, "read_message: NULL type_out");
    check_status(ws_conn_read_message(c, &t, NULL, &n), INV, "read_message: NULL data_out");
    check_status(ws_conn_read_message(c, &t, &data, NULL), INV, "read_message: NULL len_out");
    check_status(ws_conn_read_message_copy(c, &t, NULL, &n), INV, "read_message_copy: NULL data_out");
    check_status(ws_conn_write_message(c, WS_TEXT, NULL, 5), INV, "write_message: NULL data with length 5");
    check_status(ws_conn_write_message(c, WS_TEXT, NULL, 0), WS_OK, "write_message: NULL data with length 0 is an empty message");
    check(ws_conn_read_message(c, &t, &data, &n) == WS_OK && t == WS_TEXT && n == 0, "... and it echoes back empty");
    check_status(ws_conn_next_reader(c, NULL), INV, "next_reader: NULL type_out");
    /* Out-params that libws treats as optional (or a NULL buffer as an
     * empty one): the call must not crash, and must not write through NULL. */
    {
        ws_status st = ws_conn_local_addr(c, NULL, 10, &n);
        check(st == INV || st == WS_ERR_BUFFER_TOO_SMALL, "local_addr: NULL buf with cap 10 is refused (%s)", ws_status_str(st));
        st = ws_conn_local_addr(c, buf, sizeof buf, NULL);
        check(st == INV || st == WS_OK, "local_addr: NULL len_out does not crash (%s)", ws_status_str(st));
        st = ws_conn_ping_handler(c, NULL, NULL);
        check(st == INV || st == WS_OK, "ping_handler: NULL out-params do not crash (%s)", ws_status_str(st));
    }
    check_status(ws_dial(NULL, NULL, NULL, 0, &c, NULL), INV, "dial: NULL url");
    {
        ws_conn *none = NULL;
        check_status(ws_dial(NULL, s.url, NULL, 0, NULL, NULL), INV, "dial: NULL conn_out");
        check_status(ws_dial(NULL, s.url, NULL, 3, &none, NULL), INV, "dial: NULL headers with n_headers 3");
        ws_header bad[] = {{"Sec-WebSocket-Key", "x"}};
        ws_status st = ws_dial(NULL, s.url, bad, 1, &none, NULL);
        check(st != WS_OK && none == NULL, "dial: a header libws writes itself is refused (%s)", ws_status_str(st));
        ws_header bad2[] = {{"X-Bad", "a\r\nInjected: 1"}};
        st = ws_dial(NULL, s.url, bad2, 1, &none, NULL);
        check(st != WS_OK && none == NULL, "dial: a header value with CRLF is refused (%s)", ws_status_str(st));
        ws_listener *l = NULL;
        check_status(ws_listen(NULL, NULL, 0, &l), INV, "listen: NULL host");
        check_status(ws_listen(NULL, "127.0.0.1", 0, NULL), INV, "listen: NULL listener_out");
        st = ws_listen(NULL, "not an address", 0, &l);
        check(st != WS_OK && l == NULL, "listen: a bad host fails (%s)", ws_status_str(st));
        ws_upgrader *up = ws_upgrader_new();
        check_status(ws_upgrader_set_subprotocols(up, NULL, 2), INV, "upgrader_set_subprotocols(NULL list, 2)");
        const char *with_null[] = {"a", NULL};
        check_status(ws_upgrader_set_subprotocols(up, with_null, 2), INV, "upgrader_set_subprotocols with a NULL entry");
        check_status(ws_upgrader_add_response_header(up, NULL, "x"), INV, "upgrader_add_response_header(NULL name)");
        check_status(ws_upgrader_add_response_header(up, "Bad Name", "x"), INV, "upgrader_add_response_header(name with a space)");
        check_status(ws_upgrader_upgrade_fd(up, -1, NULL, 0, NULL, 0, &none), INV, "upgrade_fd(-1)");
        ws_upgrader_free(up);
        ws_dialer *d = ws_dialer_new();
        check_status(ws_dialer_add_header(d, "X-A", NULL), INV, "dialer_add_header(NULL value)");
        check_status(ws_dialer_set_subprotocols(d, NULL, 1), INV, "dialer_set_subprotocols(NULL list, 1)");
        ws_dialer_free(d);
    }

    /* Unknown message types. */
    check_status(ws_conn_write_message(c, 3, (const uint8_t *)"x", 1), INV, "write_message type 3");
    check_status(ws_conn_write_message(c, 0, (const uint8_t *)"x", 1), INV, "write_message type 0 (continuation)");
    check_status(ws_conn_write_message(c, 99, (const uint8_t *)"x", 1), INV, "write_message type 99");
    check_status(ws_conn_write_control(c, WS_TEXT, (const uint8_t *)"x", 1, 100), INV, "write_control with WS_TEXT");
    check_status(ws_conn_write_control(c, 11, NULL, 0, 100), INV, "write_control type 11");
    check_status(ws_conn_next_writer(c, WS_PING), INV, "next_writer(WS_PING)");
    check_status(ws_conn_next_writer(c, 7), INV, "next_writer type 7");

    /* Control payload sizes. */
    uint8_t big[200];
    memset(big, 'a', sizeof big);
    check_status(ws_conn_write_control(c, WS_PING, big, 126, 1000), INV, "ping with 126 bytes");
    check_status(ws_conn_write_control(c, WS_PONG, big, 126, 1000), INV, "pong with 126 bytes");
    check_status(ws_conn_write_control(c, WS_PING, big, 125, 1000), WS_OK, "ping with 125 bytes is fine");
    check_status(ws_conn_write_message(c, WS_PING, big, 126), INV, "write_message(WS_PING) with 126 bytes");

    /* Invalid close codes and reasons. */
    /* close_graceful refusing its arguments: each on its own connection,
     * since the refusal must not (but currently does) close the socket. */
    {
        struct {
            uint16_t code;
            const uint8_t *reason;
            size_t len;
            const char *name;
        } bad[] = {
            {1005, (const uint8_t *)"x", 1, "1005 with a reason"},
            {1006, NULL, 0, "1006"},
            {999, NULL, 0, "999"},
            {1015, NULL, 0, "1015"},
            {5000, NULL, 0, "5000"},
            {1000, big, 124, "a 124-byte reason"},
            {1000, (const uint8_t *)"\xff\xfe", 2, "a non-UTF-8 reason"},
            {1000, NULL, 3, "a NULL reason of length 3"},
        };
        int survived = 0, total = (int)(sizeof bad / sizeof bad[0]);
        for (int i = 0; i < total; i++) {
            ws_conn *cc = dial_or_null(NULL, s.url);
            if (cc == NULL) continue;
            check_status(ws_conn_close_graceful(cc, bad[i].code, bad[i].reason, bad[i].len, 100), INV, "close_graceful(%s) refused",
                         bad[i].name);
            int ok = round_trip(cc, WS_TEXT, 5, 1);
            if (!ok) diag("close_graceful(%s) was refused but closed the connection", bad[i].name);
            survived += ok;
            ws_conn_free(cc);
        }
        check(survived == total, "a connection stays usable after close_graceful refused its arguments (%d of %d did)", survived, total);
    }
    {
        uint8_t p[2] = {0x03, 0xEE}; /* 1006 */
        check_status(ws_conn_write_control(c, WS_CLOSE, p, 2, 100), INV, "write_control(WS_CLOSE) with code 1006");
        uint8_t one[1] = {0x03};
        check_status(ws_conn_write_control(c, WS_CLOSE, one, 1, 100), INV, "write_control(WS_CLOSE) with a 1-byte payload");
    }
    check(round_trip(c, WS_TEXT, 50, 1), "the connection still works after the refused calls");
    check(round_trip(c, WS_BINARY, 70000, 2), "the connection still works (binary)");

    /* Status strings. */
    {
        int all = 1, distinct = 1;
        const char *seen[21];
        for (int i = 0; i <= 20; i++) {
            const char *str = ws_status_str(i);
            seen[i] = str;
            if (str == NULL || str[0] == '\0') all = 0;
            for (int j = 0; j < i; j++)
                if (str && seen[j] && strcmp(str, seen[j]) == 0) distinct = 0;
        }
        check(all, "ws_status_str gives a non-empty string for every code 0..20");
        check(distinct, "... all different");
        check(strstr(ws_status_str(WS_OK), "OK") != NULL, "WS_OK's string mentions OK (\"%s\")", ws_status_str(WS_OK));
        check(strstr(ws_status_str(WS_ERR_TIMEOUT), "TIMEOUT") != NULL, "WS_ERR_TIMEOUT's string names it (\"%s\")",
              ws_status_str(WS_ERR_TIMEOUT));
        const char *u = ws_status_str(12345);
        const char *neg = ws_status_str(-1);
        check(u != NULL && u[0] != '\0' && neg != NULL && neg[0] != '\0', "unknown codes get a string (\"%s\")", u);
        const char *v = ws_version();
        check(v != NULL && strcmp(v, "0.1.0") == 0, "ws_version is \"%s\"", v ? v : "(null)");
    }

    /* ws_last_error after a failure. */
    {
        ws_conn_write_message(c, 3, (const uint8_t *)"x", 1);
        size_t full = ws_last_error(NULL, 0);
        char msg[256];
        size_t again = ws_last_error(msg, sizeof msg);
        check(full > 0 && again == full && strlen(msg) == full, "ws_last_error: \"%s\" (%zu bytes)", msg, full);
        char small[5];
        size_t got = ws_last_error(small, sizeof small);
        check(got == full && strlen(small) == 4 && memcmp(small, msg, 4) == 0, "ws_last_error truncates like snprintf");
        size_t cl = ws_conn_last_error(c, msg, sizeof msg);
        check(cl > 0 && strlen(msg) == cl, "ws_conn_last_error: \"%s\"", msg);
    }

    /* ws_format_close_message. */
    {
        uint8_t out[125];
        size_t ol = 99;
        check(ws_format_close_message(1000, (const uint8_t *)"bye", 3, out, sizeof out, &ol) == WS_OK && ol == 5 && out[0] == 0x03 &&
                  out[1] == 0xE8 && memcmp(out + 2, "bye", 3) == 0,
              "format_close_message(1000, \"bye\") = 03 E8 'bye'");
        ol = 99;
        check(ws_format_close_message(1005, NULL, 0, out, sizeof out, &ol) == WS_OK && ol == 0, "format_close_message(1005) is empty");
        check(ws_format_close_message(4999, NULL, 0, out, sizeof out, &ol) == WS_OK && ol == 2 && out[0] == 0x13 && out[1] == 0x87,
              "format_close_message(4999) = 13 87");
        check(ws_format_close_message(1000, big, 123, out, sizeof out, &ol) == WS_OK && ol == 125, "123-byte reason fits");
        check_status(ws_format_close_message(1000, big, 124, out, sizeof out, &ol), INV, "124-byte reason refused");
        check_status(ws_format_close_message(1006, NULL, 0, out, sizeof out, &ol), INV, "1006 refused");
        check_status(ws_format_close_message(1004, NULL, 0, out, sizeof out, &ol), INV, "1004 refused");
        check_status(ws_format_close_message(1015, NULL, 0, out, sizeof out, &ol), INV, "1015 refused");
        check_status(ws_format_close_message(999, NULL, 0, out, sizeof out, &ol), INV, "999 refused");
        check_status(ws_format_close_message(1005, (const uint8_t *)"x", 1, out, sizeof out, &ol), INV, "1005 with a reason refused");
        check_status(ws_format_close_message(1000, (const uint8_t *)"\xc3", 1, out, sizeof out, &ol), INV, "non-UTF-8 reason refused");
        ws_status st = ws_format_close_message(1000, (const uint8_t *)"bye", 3, out, 2, &ol);
        check(st == WS_ERR_BUFFER_TOO_SMALL && ol == 5, "a 2-byte buffer: BUFFER_TOO_SMALL with the needed length (%s, %zu)",
              ws_status_str(st), ol);
        check_status(ws_format_close_message(1000, NULL, 0, NULL, 0, &ol), WS_ERR_BUFFER_TOO_SMALL, "NULL out with cap 0: BUFFER_TOO_SMALL");
        st = ws_format_close_message(1000, NULL, 0, out, sizeof out, NULL);
        check(st == INV || st == WS_OK, "format_close_message with NULL len_out does not crash (%s)", ws_status_str(st));
        /* The formatted payload is accepted by write_control. */
        ws_format_close_message(1000, (const uint8_t *)"done", 4, out, sizeof out, &ol);
        check_status(ws_conn_write_control(c, WS_CLOSE, out, ol, 1000), WS_OK, "write_control(WS_CLOSE) with a formatted payload");
        st = ws_conn_read_message(c, &t, &data, &n);
        check(st == WS_ERR_CLOSED && ws_conn_close_code(c) == 1000, "the peer answers the close with 1000 (%s, %u)", ws_status_str(st),
              (unsigned)ws_conn_close_code(c));
        check_status(ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"x", 1), WS_ERR_CLOSE_SENT, "writing after a close frame: CLOSE_SENT");
    }

    /* Freeing NULL and double frees of every handle type. */
    ws_conn_free(c);
    ws_conn_free(c);
    ws_conn_free(NULL);
    check(1, "conn: free, double free and free(NULL) are harmless");
    ws_dialer *d = ws_dialer_new();
    ws_dialer_free(d);
    ws_dialer_free(d);
    ws_dialer_free(NULL);
    check(1, "dialer: free, double free and free(NULL) are harmless");
    ws_upgrader *up = ws_upgrader_new();
    ws_upgrader_free(up);
    ws_upgrader_free(up);
    ws_upgrader_free(NULL);
    check(1, "upgrader: free, double free and free(NULL) are harmless");
    ws_buffer_pool *pool = ws_buffer_pool_new(4096);
    check(pool != NULL, "buffer pool created");
    check(ws_buffer_pool_new((size_t)1 << 40) == NULL, "a 1 TiB buffer pool is refused, not allocated");
    ws_dialer *bd = ws_dialer_new();
    check_status(ws_dialer_set_buffer_sizes(bd, (size_t)1 << 40, 0), WS_ERR_INVALID_ARGUMENT,
                 "a 1 TiB dialer buffer is refused");
    check_status(ws_dialer_set_buffer_sizes(bd, 0, SIZE_MAX), WS_ERR_INVALID_ARGUMENT, "SIZE_MAX is refused");
    check_status(ws_dialer_set_buffer_sizes(bd, 1 << 20, 1 << 20), WS_OK, "1 MiB buffers are fine");
    ws_dialer_free(bd);
    ws_upgrader *bu = ws_upgrader_new();
    check_status(ws_upgrader_set_buffer_sizes(bu, (size_t)1 << 40, 0), WS_ERR_INVALID_ARGUMENT,
                 "a 1 TiB upgrader buffer is refused");
    ws_upgrader_free(bu);
    ws_buffer_pool_free(pool);
    ws_buffer_pool_free(pool);
    ws_buffer_pool_free(NULL);
    check(1, "buffer pool: free, double free and free(NULL) are harmless");
    ws_response *r = NULL;
    ws_conn *c2 = NULL;
    if (check_status(ws_dial(NULL, s.url, NULL, 0, &c2, &r), WS_OK, "dial for a response")) {
        ws_response_free(r);
        ws_response_free(r);
        ws_response_free(NULL);
        check(1, "response: free, double free and free(NULL) are harmless");
        ws_conn_close(c2);
        ws_conn_free(c2);
    }
    server_stop(&s);
    server_stop(&s);
    ws_listener *l = NULL;
    if (check_status(ws_listen(NULL, "127.0.0.1", 0, &l), WS_OK, "listen")) {
        ws_listener_free(l);
        ws_listener_free(l);
        ws_listener_free(NULL);
        check(1, "listener: free, double free and free(NULL) are harmless");
    }
    ws_bytes_free(NULL);
    return summary();
}
