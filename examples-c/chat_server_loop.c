/*
 * chat_server_loop: broadcasts every text/binary message to all connected
 * clients (the sender included), every connection on one thread.
 *
 *   chat_server_loop [--host H] [--port P] [--idle-timeout S]
 *                                               (default 127.0.0.1:9002)
 *
 * Each message becomes one prepared message (framed — and compressed, when
 * clients negotiated it — once, not once per client) queued on every
 * client. A client whose send queue is full (it does not read: more than
 * 8 MiB pending) is closed with 1008 rather than silently missing
 * messages. A client with no message either way for --idle-timeout
 * seconds (default 300; 0 = never) is closed with 1001.
 * SIGINT/SIGTERM: graceful shutdown (close 1001), then exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "stop_signal.h"

struct client {
    ws_conn *conn;
    struct client *prev, *next;
};

/* Only the loop's thread touches the list: no lock. */
static struct client *clients;
static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--host H] [--port P] [--idle-timeout S]\n", prog);
    exit(2);
}

static int parse_port(const char *s, uint16_t *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 65535) return -1;
    *out = (uint16_t)v;
    return 0;
}

static void on_open(ws_conn *conn, void *user_data) {
    (void)user_data;
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        ws_conn_close(conn);
        return;
    }
    c->conn = conn;
    c->next = clients;
    if (clients) clients->prev = c;
    clients = c;
    ws_conn_set_user_data(conn, c);
}

static void on_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)code;
    (void)reason;
    (void)len;
    struct client *c = user_data;
    if (!c) return;
    if (c->prev) c->prev->next = c->next; else clients = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
}

static void on_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)conn;
    (void)user_data;
    ws_prepared_message *pm = NULL;
    if (ws_prepared_message_new(type, data, len, &pm) != WS_OK) return;
    for (struct client *c = clients; c; c = c->next) {
        ws_status st = ws_conn_write_prepared(c->conn, pm);
        if (st == WS_ERR_QUEUE_FULL) {
            static const char why[] = "too slow";
            ws_conn_close_graceful(c->conn, 1008, (const uint8_t *)why, sizeof why - 1, 0);
        }
    }
    ws_prepared_message_free(pm);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    uint16_t port = 9002;
    long idle_s = 300;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) usage(argv[0]);
        } else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            idle_s = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || end == argv[i] || idle_s < 0 || idle_s > 86400L * 365) usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }
    if (stop_signal_block() != 0) {
        fprintf(stderr, "chat_server_loop: cannot block SIGINT/SIGTERM\n");
        return 1;
    }

    ws_loop *loop = NULL;
    if (ws_loop_new(&loop) != WS_OK) return 1;
    ws_loop_set_max_buffered(loop, 8u << 20);
    if (idle_s > 0) ws_loop_set_idle_timeout(loop, (int64_t)idle_s * 1000);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = on_open;
    cb.on_message = on_message;
    cb.on_close = on_close;
    uint16_t bound = 0;
    ws_status st = ws_loop_listen(loop, NULL, host, port, &cb, NULL, &bound);
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "chat_server_loop: listen on %s:%u: %s: %s\n", host, (unsigned)port, ws_status_str(st), msg);
        ws_loop_free(loop);
        return 1;
    }
    printf("listening on ws://%s:%u/\n", host, (unsigned)bound);
    fflush(stdout);
    /* Runs until SIGINT/SIGTERM: the signal thread starts a graceful
     * shutdown (close 1001, 2 s for the close handshakes) and the run
     * returns once every connection is closed. */
    if (stop_signal_watch(loop, 2000) != 0) {
        ws_loop_free(loop);
        return 1;
    }
    st = ws_loop_run(loop);
    if (st != WS_OK) {
        fprintf(stderr, "chat_server_loop: run: %s\n", ws_status_str(st));
        ws_loop_shutdown(loop, 2000);
        ws_loop_run(loop);
    }
    stop_signal_forget();
    ws_loop_free(loop);
    return st == WS_OK ? 0 : 1;
}
