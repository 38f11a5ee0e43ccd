/*
 * echo_server_loop: echoes every text and binary message back unchanged,
 * every connection on one thread (libws's event loop).
 *
 *   echo_server_loop [--host H] [--port P] [--compress[=MODE]] [--idle-timeout S]
 *                    [--read-limit BYTES] [--tls-cert CERT.pem --tls-key KEY.pem]
 *                    (default 127.0.0.1:9001; MODE: pooled, dedicated or
 *                    shared, see compress_flag.h)
 *
 * With --tls-cert/--tls-key it serves wss:// (PEM chain, leaf first, and
 * its key). Prints "listening on ws://HOST:PORT/" (wss:// with TLS) once
 * it is ready. Flow control: a
 * connection whose peer does not read its echoes is paused once 4 MiB are
 * queued and resumed when the queue drains, so memory stays bounded and
 * no message is dropped (a send refused at the 64 MiB backstop closes the
 * connection). SIGINT/SIGTERM start a graceful shutdown (close
 * 1001 to everyone, up to 2 s), then the program exits.
 *
 * Safe defaults for a server facing the network: a connection with no
 * message either way for --idle-timeout seconds (default 60; 0 = never) is
 * closed with 1001. --read-limit sets the largest message accepted
 * (default: libws's, 64 MiB; 0 = no limit).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "stop_signal.h"
#include "compress_flag.h"

#define PAUSE_AT (4u << 20)

static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--host H] [--port P] [--compress[=pooled|dedicated|shared]] [--idle-timeout S] [--read-limit BYTES] [--tls-cert CERT.pem --tls-key KEY.pem]\n", prog);
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

static int parse_u64(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return -1;
    *out = (uint64_t)v;
    return 0;
}

static void on_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    ws_status st = ws_conn_write_message(conn, type, data, len);
    if (st != WS_OK && st != WS_ERR_CLOSE_SENT) {
        char msg[256];
        ws_conn_last_error(conn, msg, sizeof msg);
        fprintf(stderr, "echo_server_loop: send: %s: %s\n", ws_status_str(st), msg);
        ws_conn_close(conn);
        return;
    }
    if (ws_conn_buffered_amount(conn) > PAUSE_AT) ws_conn_pause_reading(conn, true);
}

static void on_drain(ws_conn *conn, void *user_data) {
    (void)user_data;
    ws_conn_pause_reading(conn, false);
}

static void on_error(ws_conn *conn, ws_status status, const char *message, void *user_data) {
    (void)conn;
    (void)user_data;
    fprintf(stderr, "echo_server_loop: connection failed: %s: %s\n", ws_status_str(status), message);
}

int main(int argc, char **argv) {
    int compress = 0;
    ws_compression_options copts;
    const char *host = "127.0.0.1";
    uint16_t port = 9001;
    uint64_t idle_s = 60, read_limit = 0;
    int have_read_limit = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) usage(argv[0]);
        } else if (compress_flag(argv[i], &copts) > 0) {
            compress = 1;
        } else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &idle_s) != 0 || idle_s > 86400u * 365) usage(argv[0]);
        } else if (strcmp(argv[i], "--read-limit") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &read_limit) != 0) usage(argv[0]);
            have_read_limit = 1;
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    if (stop_signal_block() != 0) {
        fprintf(stderr, "echo_server_loop: cannot block SIGINT/SIGTERM\n");
        return 1;
    }

    ws_loop *loop = NULL;
    if (ws_loop_new(&loop) != WS_OK) {
        fprintf(stderr, "echo_server_loop: cannot create the loop\n");
        return 1;
    }
    /* Flow control (see on_message) keeps queues near 4 MiB; the limit is
     * the backstop, e.g. against pings from a peer that never reads our
     * pongs, and leaves room for one message of up to the read limit. */
    ws_loop_set_max_buffered(loop, 64u << 20);
    if (idle_s > 0) ws_loop_set_idle_timeout(loop, (int64_t)idle_s * 1000);

    ws_upgrader *up = ws_upgrader_new();
    if (compress) ws_upgrader_set_compression(up, &copts); /* see compress_flag.h */
    if (have_read_limit) ws_upgrader_set_read_limit(up, read_limit);
    if ((cert == NULL) != (key == NULL)) usage(argv[0]);
    if (cert != NULL) {
        ws_tls_server_config *tls = NULL;
        ws_status tst = ws_tls_server_config_new_files(cert, key, &tls);
        if (tst == WS_OK) tst = ws_upgrader_set_tls(up, tls);
        ws_tls_server_config_free(tls); /* the upgrader keeps its share */
        if (tst != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_server_loop: TLS: %s: %s\n", ws_status_str(tst), msg);
            return 1;
        }
    }
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = on_message;
    cb.on_drain = on_drain;
    cb.on_error = on_error;
    uint16_t bound = 0;
    ws_status st = ws_loop_listen(loop, up, host, port, &cb, NULL, &bound);
    ws_upgrader_free(up);
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server_loop: listen on %s:%u: %s: %s\n", host, (unsigned)port, ws_status_str(st), msg);
        ws_loop_free(loop);
        return 1;
    }
    printf("listening on %s://%s:%u/\n", cert ? "wss" : "ws", host, (unsigned)bound);
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
        fprintf(stderr, "echo_server_loop: run: %s\n", ws_status_str(st));
        ws_loop_shutdown(loop, 2000);
        ws_loop_run(loop);
    }
    stop_signal_forget();
    ws_loop_free(loop);
    return st == WS_OK ? 0 : 1;
}
