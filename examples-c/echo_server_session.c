/*
 * echo_server_session: echoes every text and binary message back unchanged,
 * over libws's sans-IO session API: this program owns the sockets and the
 * poll(2) loop; libws only turns bytes into events and events into bytes.
 *
 *   echo_server_session [--host H] [--port P] [--compress[=MODE]]
 *                       [--tls-cert CERT.pem --tls-key KEY.pem]   (default 127.0.0.1:9001)
 *
 * --compress[=pooled|dedicated|shared]: permessage-deflate in that memory
 * mode (see compress_flag.h; plain --compress is pooled).
 *
 * With --tls-cert/--tls-key it serves wss://: each session runs TLS itself
 * (this program still moves only bytes, now ciphertext; the PEM chain,
 * leaf first, and its key). Prints "listening on ws://HOST:PORT/"
 * (wss:// with TLS) once it is ready. Serves many
 * connections on one thread. Flow control: a connection with more than
 * 4 MiB waiting to be sent is not read until that drains (TCP then pushes
 * back on its peer). SIGINT/SIGTERM end the program.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compress_flag.h"
#include "ws.h"

#define MAX_CONNS 1024
#define READ_PAUSE_AT (4u << 20)

static volatile sig_atomic_t stop_requested;
/* The self-pipe: the handler also writes a byte here and poll(2) watches
 * the read end. A flag alone is not enough: a signal that lands after the
 * loop checked it and before poll(2) blocks would leave poll asleep with
 * no timeout (valgrind makes that window wide enough to hit every time). */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
    int saved = errno;
    ssize_t r = write(signal_pipe[1], "", 1); /* full pipe: a byte is there already */
    (void)r;
    errno = saved;
}

static int make_signal_pipe(void) {
    if (pipe(signal_pipe) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        if (fcntl(signal_pipe[i], F_SETFL, fcntl(signal_pipe[i], F_GETFL) | O_NONBLOCK) != 0 ||
            fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC) != 0)
            return -1;
    }
    return 0;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [--host H] [--port P] [--compress[=pooled|dedicated|shared]] [--tls-cert CERT.pem --tls-key "
            "KEY.pem]\n",
            prog);
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

/* A connection and what its session last said it wants, so that the loop
 * asks libws again only about connections it touched (a read, a due
 * timeout, a flush) and leaves the others alone. */
struct conn {
    int fd;
    ws_session *s;
    short events;   /* POLLIN and/or POLLOUT for poll(2) */
    int64_t due_ms; /* when ws_session_on_timeout is due (now_ms() clock), -1: never */
    int finished;   /* close the socket once nothing is pending */
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_message(ws_session *s, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    ws_status st = ws_session_send(s, type, data, len);
    if (st != WS_OK && st != WS_ERR_CLOSE_SENT) {
        fprintf(stderr, "echo_server_session: send: %s\n", ws_status_str(st));
    }
}

static void on_error(ws_session *s, ws_status status, const char *message, void *user_data) {
    (void)s;
    (void)user_data;
    fprintf(stderr, "echo_server_session: connection failed: %s: %s\n", ws_status_str(status), message);
}

/* Writes what the session has pending. Returns how many bytes are still
 * pending (the socket is full), or -1 when the socket failed. */
static long flush_conn(struct conn *c) {
    for (;;) {
        const uint8_t *data = NULL;
        size_t len = 0;
        if (ws_session_pending(c->s, &data, &len) != WS_OK || len == 0) return 0;
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return (long)len;
            return -1;
        }
        ws_session_sent(c->s, (size_t)n);
        if ((size_t)n < len) return (long)(len - (size_t)n); /* the socket took what it could */
    }
}

/* Asks the session what it wants after the loop touched it: poll events
 * from the bytes still pending, the next timeout, whether it is over. */
static void refresh(struct conn *c, long pending, int64_t now) {
    int reading = ws_session_wants_read(c->s);
    c->events = (short)((reading && pending <= (long)READ_PAUSE_AT ? POLLIN : 0) | (pending > 0 ? POLLOUT : 0));
    int64_t ms = -1;
    ws_session_next_timeout_ms(c->s, &ms);
    c->due_ms = ms < 0 ? -1 : now + ms;
    /* A finished session wants no input: only then is the question worth a call. */
    c->finished = !reading && ws_session_is_finished(c->s);
}

/* Reads what the socket has into the session; -1 when the connection ended. */
static int read_conn(struct conn *c, uint8_t *buf, size_t cap) {
    for (int round = 0; round < 8; round++) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            ws_session_recv_eof(c->s);
            return -1;
        }
        if (n == 0) {
            ws_session_recv_eof(c->s);
            return -1;
        }
        /* The buffer is ours to lend: frames are unmasked in it and whole
           messages reach on_message from it, without a copy. */
        ws_session_recv_in_place(c->s, buf, (size_t)n);
        if ((size_t)n < cap) return 0;
    }
    return 0;
}

static void drop_conn(struct conn *conns, int *count, int i) {
    close(conns[i].fd);
    ws_session_free(conns[i].s);
    conns[i] = conns[--*count];
}

static int listen_on(const char *host, uint16_t port, uint16_t *bound) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 512) != 0) {
        close(fd);
        return -1;
    }
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *bound = ntohs(a.sin_port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv) {
    int compress = 0;
    ws_compression_options copts;
    const char *cert = NULL, *key = NULL;
    const char *host = "127.0.0.1";
    uint16_t port = 9001;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) usage(argv[0]);
        } else if (compress_flag(argv[i], &copts) > 0) {
            compress = 1;
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else {
            usage(argv[0]);
        }
    }
    if ((cert == NULL) != (key == NULL)) usage(argv[0]);
    if (make_signal_pipe() != 0) {
        perror("echo_server_session: pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint16_t bound = 0;
    int lfd = listen_on(host, port, &bound);
    if (lfd < 0) {
        fprintf(stderr, "echo_server_session: listen on %s:%u: %s\n", host, (unsigned)port, strerror(errno));
        return 1;
    }
    ws_upgrader *up = ws_upgrader_new();
    if (compress) ws_upgrader_set_compression(up, &copts); /* see compress_flag.h */
    ws_tls_server_config *tls = NULL;
    if (cert != NULL) {
        /* The upgrader shares the config: every session made from it runs TLS. */
        ws_status tst = ws_tls_server_config_new_files(cert, key, &tls);
        if (tst == WS_OK) tst = ws_upgrader_set_tls(up, tls);
        if (tst != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_server_session: TLS: %s: %s\n", ws_status_str(tst), msg);
            return 1;
        }
    }
    ws_session_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = on_message;
    cb.on_error = on_error;
    printf("listening on %s://%s:%u/\n", cert ? "wss" : "ws", host, (unsigned)bound);
    fflush(stdout);

    static struct conn conns[MAX_CONNS];
    /* pfds[0]: the signal pipe, pfds[1]: the listener, then connection i
     * at pfds[i + 2]. */
    static struct pollfd pfds[MAX_CONNS + 2];
    static uint8_t buf[256 * 1024];
    int count = 0;
    while (!stop_requested) {
        int64_t now = now_ms();
        int timeout = -1;
        pfds[0].fd = signal_pipe[0];
        pfds[0].events = POLLIN;
        pfds[1].fd = lfd;
        pfds[1].events = count < MAX_CONNS ? POLLIN : 0;
        for (int i = 0; i < count; i++) {
            pfds[i + 2].fd = conns[i].fd;
            pfds[i + 2].events = conns[i].events;
            if (conns[i].due_ms >= 0) {
                int64_t ms = conns[i].due_ms > now ? conns[i].due_ms - now : 0;
                if (timeout < 0 || ms < timeout) timeout = ms > 60000 ? 60000 : (int)ms;
            }
        }
        int n = poll(pfds, (nfds_t)count + 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo_server_session: poll");
            break;
        }
        if (pfds[0].revents & POLLIN) break; /* SIGINT or SIGTERM */
        now = now_ms();
        /* Connections first (indexes shift when one is dropped, so walk
         * down); only those with an event or a due timeout. */
        for (int i = count - 1; i >= 0; i--) {
            struct conn *c = &conns[i];
            short re = pfds[i + 2].revents;
            int due = c->due_ms >= 0 && now >= c->due_ms;
            if (re == 0 && !due) continue;
            int dead = 0;
            if (re & (POLLIN | POLLHUP | POLLERR)) dead = read_conn(c, buf, sizeof buf) != 0;
            if (due) ws_session_on_timeout(c->s);
            long pending = flush_conn(c);
            if (pending < 0) dead = 1;
            refresh(c, pending, now);
            if (dead || (c->finished && pending == 0)) drop_conn(conns, &count, i);
        }
        if (pfds[1].revents & POLLIN) {
            while (count < MAX_CONNS) {
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0) break;
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ws_session *s = NULL;
                if (ws_session_server_new(up, &cb, NULL, &s) != WS_OK) {
                    close(fd);
                    continue;
                }
                conns[count].fd = fd;
                conns[count].s = s;
                refresh(&conns[count], 0, now_ms());
                count++;
            }
        }
    }
    while (count > 0) drop_conn(conns, &count, count - 1);
    ws_upgrader_free(up);
    ws_tls_server_config_free(tls);
    close(lfd);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    return 0;
}
