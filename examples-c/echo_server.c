/*
 * echo_server: echoes every text and binary message back unchanged.
 *
 *   echo_server [--host H] [--port P] [--compress[=MODE]] [--idle-timeout S]
 *               [--read-limit BYTES] [--tls-cert CERT.pem --tls-key KEY.pem]
 *               (default 127.0.0.1:9001; MODE: pooled, dedicated or shared)
 *
 * With --tls-cert/--tls-key it serves wss:// (the PEM chain, leaf first,
 * and its key: PKCS#8, RSA or EC). SIGHUP reloads both files: new
 * handshakes get the new certificate, open connections stay.
 *
 * Prints "listening on ws://HOST:PORT/" (wss:// with TLS) once it is ready (with --port 0 the
 * kernel picks the port, and this line tells which). One detached thread per
 * connection. SIGINT/SIGTERM stop the server cleanly: the signals are blocked
 * in every thread and a dedicated thread sigwait()s for them, then shuts the
 * listener down, which wakes the accept loop.
 *
 * Safe defaults for a server facing the network: a connection that sends
 * no message for --idle-timeout seconds (default 60; 0 = never) is closed
 * with 1001, and a client that does not take an echo within 10 s is
 * dropped, so stalled peers cannot pin threads and descriptors forever.
 * --read-limit sets the largest message accepted (default: libws's,
 * 64 MiB; 0 = no limit).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "compress_flag.h"

#define WRITE_TIMEOUT_MS 10000

/* Milliseconds a connection may stay silent (0 = no limit). */
static int64_t idle_timeout_ms = 60000;

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

static void *echo_conn(void *arg) {
    ws_conn *conn = arg;
    static const uint16_t normal[] = {WS_CLOSE_NORMAL, WS_CLOSE_GOING_AWAY};
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        /* A relative deadline per read is an idle timeout; a read that
         * times out keeps its partial state, but an idle peer is closed. */
        ws_conn_set_read_deadline(conn, idle_timeout_ms > 0 ? idle_timeout_ms : -1);
        ws_status st = ws_conn_read_message(conn, &type, &data, &len);
        if (st == WS_ERR_TIMEOUT) {
            ws_conn_close_graceful(conn, WS_CLOSE_GOING_AWAY, (const uint8_t *)"idle timeout", 12, 1000);
            break;
        }
        if (st == WS_OK) {
            ws_conn_set_write_deadline(conn, WRITE_TIMEOUT_MS);
            st = ws_conn_write_message(conn, type, data, len);
        }
        if (st == WS_OK) continue;
        /* A close with 1000/1001 is the normal end of a connection. */
        if (st != WS_ERR_CLOSED || ws_is_unexpected_close_error(conn, st, normal, 2)) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_server: connection ended: %s: %s\n", ws_status_str(st), msg);
        }
        break;
    }
    ws_conn_free(conn);
    return NULL;
}

struct sig_ctx {
    sigset_t set;
    ws_listener *listener;
    ws_tls_server_config *tls;
    const char *cert, *key;
};

static void *signal_thread(void *arg) {
    struct sig_ctx *ctx = arg;
    int sig = 0;
    while (sigwait(&ctx->set, &sig) == 0) {
        if (sig != SIGHUP) break;
        if (ctx->tls == NULL) continue;
        ws_status st = ws_tls_server_config_replace_certificate_files(ctx->tls, ctx->cert, ctx->key);
        char msg[256] = "";
        if (st != WS_OK) ws_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server: certificate reload: %s %s\n", ws_status_str(st), msg);
    }
    ws_listener_shutdown(ctx->listener);
    return NULL;
}

int main(int argc, char **argv) {
    int compress = 0;
    ws_compression_options copts;
    const char *host = "127.0.0.1";
    uint16_t port = 9001;
    uint64_t read_limit = 0, idle_s = 0;
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
            idle_timeout_ms = (int64_t)idle_s * 1000;
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

    /* Block the stop signals before any thread exists: every thread inherits
     * the mask, and only signal_thread receives them (via sigwait). */
    static struct sig_ctx ctx;
    sigemptyset(&ctx.set);
    sigaddset(&ctx.set, SIGINT);
    sigaddset(&ctx.set, SIGTERM);
    sigaddset(&ctx.set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &ctx.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ws_upgrader *up = ws_upgrader_new();
    /* The idle timeout is --idle-timeout's (the per-read deadline below
     * closes with 1001), not the library's 60 s default read timeout,
     * which would cut "0 = never" and longer values to 60 s. */
    ws_upgrader_set_timeouts(up, -1, WRITE_TIMEOUT_MS);
    if (compress) ws_upgrader_set_compression(up, &copts); /* see compress_flag.h */
    if ((cert == NULL) != (key == NULL)) usage(argv[0]);
    if (cert != NULL) {
        ws_status tst = ws_tls_server_config_new_files(cert, key, &ctx.tls);
        if (tst == WS_OK) tst = ws_upgrader_set_tls(up, ctx.tls);
        if (tst != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_server: TLS: %s: %s\n", ws_status_str(tst), msg);
            return 1;
        }
        ctx.cert = cert;
        ctx.key = key;
    }
    /* The default read limit (64 MiB) is above Autobahn's largest message
     * (16 MiB). */
    if (have_read_limit) ws_upgrader_set_read_limit(up, read_limit);
    ws_listener *listener = NULL;
    ws_status st = ws_listen(up, host, port, &listener);
    ws_upgrader_free(up);
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_server: listen on %s:%u: %s: %s\n", host, (unsigned)port, ws_status_str(st), msg);
        return 1;
    }
    ctx.listener = listener;
    pthread_t sig_tid;
    if (pthread_create(&sig_tid, NULL, signal_thread, &ctx) != 0) {
        fprintf(stderr, "echo_server: pthread_create failed\n");
        return 1;
    }

    printf("listening on %s://%s:%u/\n", cert ? "wss" : "ws", host, (unsigned)ws_listener_port(listener));
    fflush(stdout);

    int rc = 0;
    for (;;) {
        ws_conn *conn = NULL;
        st = ws_listener_accept(listener, -1, &conn);
        if (st == WS_ERR_LOCALLY_CLOSED) break; /* shut down by a signal */
        if (st != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_server: accept: %s: %s\n", ws_status_str(st), msg);
            if (st == WS_ERR_TIMEOUT || st == WS_ERR_IO) continue;
            rc = 1;
            break;
        }
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, echo_conn, conn) != 0) {
            fprintf(stderr, "echo_server: pthread_create failed\n");
            ws_conn_free(conn);
        }
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) pthread_join(sig_tid, NULL);
    /* Connection threads are detached; exiting the process ends them. */
    ws_listener_free(listener);
    ws_tls_server_config_free(ctx.tls);
    return rc;
}
