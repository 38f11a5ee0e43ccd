/*
 * chat_server: broadcasts every text/binary message to all connected clients
 * (the sender included).
 *
 *   chat_server [--host H] [--port P]      (default 127.0.0.1:9002)
 *
 * One thread per connection reads; the reading thread writes each message to
 * every client. libws serializes writes on a connection, so no per-connection
 * write lock is needed. Clients are reference counted so that a connection
 * is freed only when no broadcast is still writing to it. A client that does
 * not take a message within 5 s is dropped.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define WRITE_TIMEOUT_MS 5000

struct client {
    ws_conn *conn;
    int refs; /* under clients_mu */
    struct client *next;
};

static pthread_mutex_t clients_mu = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients; /* list of connected clients */

static void client_release(struct client *c) {
    pthread_mutex_lock(&clients_mu);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&clients_mu);
    if (last) {
        ws_conn_free(c->conn);
        free(c);
    }
}

static void client_remove(struct client *c) {
    pthread_mutex_lock(&clients_mu);
    for (struct client **p = &clients; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            c->refs--; /* the list's reference; the caller still holds one */
            break;
        }
    }
    pthread_mutex_unlock(&clients_mu);
}

static void broadcast(ws_msg_type type, const uint8_t *data, size_t len) {
    /* Snapshot the list with a reference on each client, then write outside
     * the lock so that one slow client does not block joins and leaves. */
    pthread_mutex_lock(&clients_mu);
    size_t n = 0;
    for (struct client *c = clients; c != NULL; c = c->next) n++;
    struct client **snap = n ? malloc(n * sizeof *snap) : NULL;
    size_t k = 0;
    if (snap != NULL) {
        for (struct client *c = clients; c != NULL; c = c->next) {
            c->refs++;
            snap[k++] = c;
        }
    }
    pthread_mutex_unlock(&clients_mu);
    for (size_t i = 0; i < k; i++) {
        ws_conn_set_write_deadline(snap[i]->conn, WRITE_TIMEOUT_MS);
        ws_status st = ws_conn_write_message(snap[i]->conn, type, data, len);
        if (st != WS_OK) {
            /* Wakes that client's reader, which removes it. */
            ws_conn_close(snap[i]->conn);
        }
        client_release(snap[i]);
    }
    free(snap);
}

static void *client_thread(void *arg) {
    struct client *c = arg;
    static const uint16_t normal[] = {WS_CLOSE_NORMAL, WS_CLOSE_GOING_AWAY};
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        ws_status st = ws_conn_read_message(c->conn, &type, &data, &len);
        if (st == WS_OK) {
            broadcast(type, data, len); /* data stays valid until our next read */
            continue;
        }
        if (st != WS_ERR_CLOSED || ws_is_unexpected_close_error(c->conn, st, normal, 2)) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "chat_server: client left: %s: %s\n", ws_status_str(st), msg);
        }
        break;
    }
    client_remove(c);
    ws_conn_close(c->conn);
    client_release(c);
    return NULL;
}

struct sig_ctx {
    sigset_t set;
    ws_listener *listener;
};

static void *signal_thread(void *arg) {
    struct sig_ctx *ctx = arg;
    int sig = 0;
    if (sigwait(&ctx->set, &sig) == 0) ws_listener_shutdown(ctx->listener);
    return NULL;
}

static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--host H] [--port P]\n", prog);
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    uint16_t port = 9002;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || end == argv[i] || v < 0 || v > 65535) usage(argv[0]);
            port = (uint16_t)v;
        } else {
            usage(argv[0]);
        }
    }

    static struct sig_ctx ctx;
    sigemptyset(&ctx.set);
    sigaddset(&ctx.set, SIGINT);
    sigaddset(&ctx.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &ctx.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* A member may only read for as long as it likes: no read (idle)
     * timeout, unlike the library's server default of 60 s; writes keep
     * a bound, so one stalled member cannot hold a broadcast up. */
    ws_upgrader *up = ws_upgrader_new();
    if (up == NULL || ws_upgrader_set_timeouts(up, -1, WRITE_TIMEOUT_MS) != WS_OK) {
        fprintf(stderr, "chat_server: cannot configure the upgrader\n");
        return 1;
    }
    ws_listener *listener = NULL;
    ws_status st = ws_listen(up, host, port, &listener);
    ws_upgrader_free(up); /* the listener keeps its own copy */
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "chat_server: listen on %s:%u: %s: %s\n", host, (unsigned)port, ws_status_str(st), msg);
        return 1;
    }
    ctx.listener = listener;
    pthread_t sig_tid;
    if (pthread_create(&sig_tid, NULL, signal_thread, &ctx) != 0) {
        fprintf(stderr, "chat_server: pthread_create failed\n");
        return 1;
    }
    printf("listening on ws://%s:%u/\n", host, (unsigned)ws_listener_port(listener));
    fflush(stdout);

    int rc = 0;
    for (;;) {
        ws_conn *conn = NULL;
        st = ws_listener_accept(listener, -1, &conn);
        if (st == WS_ERR_LOCALLY_CLOSED) break;
        if (st != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "chat_server: accept: %s: %s\n", ws_status_str(st), msg);
            if (st == WS_ERR_TIMEOUT || st == WS_ERR_IO) continue;
            rc = 1;
            break;
        }
        struct client *c = calloc(1, sizeof *c);
        if (c == NULL) {
            ws_conn_free(conn);
            continue;
        }
        c->conn = conn;
        c->refs = 2; /* the list's and the client thread's */
        pthread_mutex_lock(&clients_mu);
        c->next = clients;
        clients = c;
        pthread_mutex_unlock(&clients_mu);

        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, client_thread, c) != 0) {
            fprintf(stderr, "chat_server: pthread_create failed\n");
            client_remove(c);
            client_release(c);
        }
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) pthread_join(sig_tid, NULL);
    ws_listener_free(listener);
    return rc;
}
