/*
 * Shared helpers for the C tests of libws (header-only; each test program
 * is one .c file that includes this).
 *
 * Output: one "ok N - name" / "not ok N - name" line per check and a final
 * "P passed, F failed" line; the exit status is non-zero if any failed.
 */
#ifndef LIBWS_TEST_COMMON_H
#define LIBWS_TEST_COMMON_H

#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ws.h"

/* Helpers a test does not use must not trip -Werror=unused-function. */
#define TFN static __attribute__((unused))

static int t_count, t_passed, t_failed;
static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;

/* Records one check. `fmt` names it; on failure the last libws error of the
 * calling thread is printed as a diagnostic. */
TFN int check(int cond, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&t_mu);
    int n = ++t_count;
    if (cond) {
        t_passed++;
        printf("ok %d - %s\n", n, name);
    } else {
        t_failed++;
        char err[512];
        ws_last_error(err, sizeof err);
        printf("not ok %d - %s\n#   (thread's last libws error: \"%s\")\n", n, name, err);
    }
    fflush(stdout);
    pthread_mutex_unlock(&t_mu);
    return cond;
}

/* Checks a status against the expected one and names both on failure. */
TFN int check_status(ws_status got, ws_status want, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (got != want) {
        char err[512];
        ws_last_error(err, sizeof err);
        printf("#   %s: got %d (%s), want %d (%s); last error \"%s\"\n", name, got, ws_status_str(got), want,
               ws_status_str(want), err);
    }
    return check(got == want, "%s", name);
}

TFN int summary(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    fflush(stdout);
    return t_failed == 0 ? 0 : 1;
}

TFN void diag(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

TFN double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

TFN void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Kills the test if it hangs (the Rust runner has its own timeout too). */
TFN void watchdog(unsigned seconds) {
    signal(SIGPIPE, SIG_IGN);
    alarm(seconds);
}

/* Deterministic test payload: text is ASCII, binary covers all byte values. */
TFN void fill_pattern(uint8_t *buf, size_t len, ws_msg_type type, unsigned seed) {
    for (size_t i = 0; i < len; i++) {
        if (type == WS_TEXT)
            buf[i] = (uint8_t)('a' + (i + seed) % 26);
        else
            buf[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
    }
}

/* ---- An in-process WebSocket server -------------------------------------
 * ws_listen on 127.0.0.1:0; an accept thread runs `handler` on a new thread
 * for every accepted connection (the default handler echoes). The handler
 * owns the connection and frees it. */

typedef void (*conn_handler)(ws_conn *conn, void *user_data);

struct server {
    ws_listener *listener;
    uint16_t port;
    pthread_t accept_tid;
    conn_handler handler;
    void *user_data;
    char url[64];
};

struct conn_job {
    ws_conn *conn;
    conn_handler handler;
    void *user_data;
};

TFN void echo_handler(ws_conn *conn, void *user_data) {
    (void)user_data;
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        if (ws_conn_read_message(conn, &type, &data, &len) != WS_OK) break;
        if (ws_conn_write_message(conn, type, data, len) != WS_OK) break;
    }
    ws_conn_free(conn);
}

TFN void *conn_thread(void *arg) {
    struct conn_job job = *(struct conn_job *)arg;
    free(arg);
    job.handler(job.conn, job.user_data);
    return NULL;
}

TFN void *accept_thread(void *arg) {
    struct server *s = arg;
    for (;;) {
        ws_conn *conn = NULL;
        ws_status st = ws_listener_accept(s->listener, -1, &conn);
        if (st == WS_ERR_LOCALLY_CLOSED) break;
        if (st != WS_OK) continue;
        struct conn_job *job = malloc(sizeof *job);
        job->conn = conn;
        job->handler = s->handler ? s->handler : echo_handler;
        job->user_data = s->user_data;
        pthread_t tid;
        if (pthread_create(&tid, NULL, conn_thread, job) != 0) {
            free(job);
            ws_conn_free(conn);
            continue;
        }
        pthread_detach(tid);
    }
    return NULL;
}

/* Starts a server; `up` may be NULL (defaults), `handler` NULL (echo). */
TFN int server_start(struct server *s, const ws_upgrader *up, conn_handler handler, void *user_data) {
    memset(s, 0, sizeof *s);
    s->handler = handler;
    s->user_data = user_data;
    ws_status st = ws_listen(up, "127.0.0.1", 0, &s->listener);
    if (st != WS_OK) {
        char err[256];
        ws_last_error(err, sizeof err);
        printf("# ws_listen failed: %s: %s\n", ws_status_str(st), err);
        return -1;
    }
    s->port = ws_listener_port(s->listener);
    snprintf(s->url, sizeof s->url, "ws://127.0.0.1:%u/", (unsigned)s->port);
    if (pthread_create(&s->accept_tid, NULL, accept_thread, s) != 0) return -1;
    return 0;
}

/* Stops accepting (connections already handed out go on). */
TFN void server_stop(struct server *s) {
    if (s->listener == NULL) return;
    ws_listener_shutdown(s->listener);
    pthread_join(s->accept_tid, NULL);
    ws_listener_free(s->listener);
    s->listener = NULL;
}

TFN ws_conn *dial_or_null(const ws_dialer *d, const char *url) {
    ws_conn *c = NULL;
    ws_status st = ws_dial(d, url, NULL, 0, &c, NULL);
    if (st != WS_OK) {
        char err[256];
        ws_last_error(err, sizeof err);
        printf("# ws_dial %s failed: %s: %s\n", url, ws_status_str(st), err);
        return NULL;
    }
    return c;
}

/* One echo round trip: sends `len` bytes of pattern, reads them back. */
TFN int round_trip(ws_conn *c, ws_msg_type type, size_t len, unsigned seed) {
    uint8_t *buf = malloc(len ? len : 1);
    fill_pattern(buf, len, type, seed);
    int ok = 0;
    if (ws_conn_write_message(c, type, buf, len) == WS_OK) {
        ws_msg_type got;
        const uint8_t *data;
        size_t n;
        if (ws_conn_read_message(c, &got, &data, &n) == WS_OK)
            ok = got == type && n == len && (len == 0 || memcmp(data, buf, len) == 0);
    }
    free(buf);
    return ok;
}

/* ---- Plain TCP helpers ---------------------------------------------------*/

TFN int tcp_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
TFN int tcp_listen(uint16_t *port_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(a.sin_port);
    return fd;
}

TFN void set_recv_timeout(int fd, long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

TFN int send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif
