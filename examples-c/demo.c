/* demo: a WebSocket server and client in one process, through the C API.
 *
 *   cargo build --release && make -C examples-c demo
 *
 * The server thread echoes messages; the client sends a few, reads the
 * echoes, pings, and closes with the close handshake.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ws.h"

static void *serve_one(void *arg) {
    ws_listener *listener = arg;
    ws_conn *conn;
    if (ws_listener_accept(listener, 5000, &conn) != WS_OK) return NULL;
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        ws_status st = ws_conn_read_message(conn, &type, &data, &len);
        if (st != WS_OK) {
            char reason[128];
            size_t n;
            ws_conn_close_reason(conn, reason, sizeof reason, &n);
            printf("server: connection ended: %s (close code %u, reason \"%s\")\n", ws_status_str(st),
                   ws_conn_close_code(conn), reason);
            break;
        }
        printf("server: got %s message of %zu bytes, echoing\n", type == WS_TEXT ? "text" : "binary", len);
        if (ws_conn_write_message(conn, type, data, len) != WS_OK) break;
    }
    ws_conn_free(conn);
    return NULL;
}

static ws_status on_pong(ws_conn *conn, const uint8_t *data, size_t len, void *user_data) {
    (void)conn;
    printf("client: pong \"%.*s\" (%s)\n", (int)len, (const char *)data, (const char *)user_data);
    return WS_OK;
}

int main(void) {
    ws_listener *listener;
    if (ws_listen(NULL, "127.0.0.1", 0, &listener) != WS_OK) {
        char err[256];
        ws_last_error(err, sizeof err);
        fprintf(stderr, "listen: %s\n", err);
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/demo", ws_listener_port(listener));
    pthread_t server;
    pthread_create(&server, NULL, serve_one, listener);

    ws_conn *conn;
    ws_status st = ws_dial(NULL, url, NULL, 0, &conn, NULL);
    if (st != WS_OK) {
        char err[256];
        ws_last_error(err, sizeof err);
        fprintf(stderr, "dial %s: %s: %s\n", url, ws_status_str(st), err);
        return 1;
    }
    printf("client: connected to %s\n", url);
    ws_conn_set_pong_handler(conn, on_pong, "called on the reading thread");

    const char *words[] = {"hello", "from", "libws"};
    for (int i = 0; i < 3; i++) {
        ws_conn_write_message(conn, WS_TEXT, (const uint8_t *)words[i], strlen(words[i]));
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        if (ws_conn_read_message(conn, &type, &data, &len) != WS_OK) return 1;
        printf("client: echo \"%.*s\"\n", (int)len, (const char *)data);
    }

    /* A message written in pieces, read back in pieces. */
    ws_conn_next_writer(conn, WS_BINARY);
    for (int i = 0; i < 4; i++) ws_conn_writer_write(conn, (const uint8_t *)"0123456789", 10);
    ws_conn_writer_close(conn);
    ws_msg_type type;
    ws_conn_next_reader(conn, &type);
    size_t total = 0, n;
    uint8_t piece[16];
    while (ws_conn_reader_read(conn, piece, sizeof piece, &n) == WS_OK && n > 0) total += n;
    printf("client: streamed echo of %zu bytes\n", total);

    ws_conn_write_control(conn, WS_PING, (const uint8_t *)"are you there", 13, 1000);
    ws_conn_set_read_deadline(conn, 200);
    const uint8_t *data;
    size_t len;
    st = ws_conn_read_message(conn, &type, &data, &len); /* runs the pong handler, then times out */
    printf("client: read with a 200 ms deadline: %s\n", ws_status_str(st));

    st = ws_conn_close_graceful(conn, 1000, (const uint8_t *)"bye", 3, 2000);
    printf("client: close handshake: %s\n", ws_status_str(st));
    ws_conn_free(conn);
    pthread_join(server, NULL);
    ws_listener_free(listener);
    return 0;
}
