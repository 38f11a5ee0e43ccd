/*
 * Client features after gorilla's: every value of a repeated header
 * (Set-Cookie) through ws_response_header_value_count/_value_at (and the
 * request side in a server callback), and ws_dial_fd, the handshake over a
 * socket the caller connected (gorilla's NetDial): success, the Host and
 * path from the URL, refusals with their response, a handshake timeout,
 * and bad descriptors (closed in every case).
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>

static const char COOKIE_A[] = "a=1; Path=/";
static const char COOKIE_B[] = "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT"; /* a comma inside */

/* What the server's origin callback saw of the last request. */
static struct {
    pthread_mutex_t mu;
    size_t multi_count;
    char multi1[32], host[64], target[64];
} seen = {PTHREAD_MUTEX_INITIALIZER, 0, "", "", ""};

static bool record_request(const ws_request *req, void *user_data) {
    (void)user_data;
    pthread_mutex_lock(&seen.mu);
    seen.multi_count = ws_request_header_value_count(req, "x-multi");
    const uint8_t *v = NULL;
    size_t n = 0;
    seen.multi1[0] = '\0';
    if (ws_request_header_value_at(req, "X-Multi", 1, &v, &n) == WS_OK)
        snprintf(seen.multi1, sizeof seen.multi1, "%.*s", (int)n, (const char *)v);
    if (ws_request_header(req, "Host", &v, &n) == WS_OK)
        snprintf(seen.host, sizeof seen.host, "%.*s", (int)n, (const char *)v);
    const char *t = NULL;
    if (ws_request_target(req, &t, &n) == WS_OK) snprintf(seen.target, sizeof seen.target, "%.*s", (int)n, t);
    pthread_mutex_unlock(&seen.mu);
    return true;
}

static int value_is(const ws_response *resp, const char *name, size_t i, const char *want) {
    const uint8_t *v = NULL;
    size_t n = 0;
    if (ws_response_header_value_at(resp, name, i, &v, &n) != WS_OK) return 0;
    return n == strlen(want) && memcmp(v, want, n) == 0;
}

/* A one-shot HTTP server that answers any request with `answer`. */
struct canned {
    int lfd;
    const char *answer;
    pthread_t tid;
};

static void *canned_thread(void *arg) {
    struct canned *c = arg;
    int fd = accept(c->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    set_recv_timeout(fd, 5000);
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n")) break;
    }
    send_all(fd, c->answer, strlen(c->answer));
    close(fd);
    return NULL;
}

/* The socket behind a descriptor (its inode), taken before the call under
   test: a closed descriptor's number is reused at once (the test servers'
   threads accept meanwhile), so "closed" means gone or now another file. */
static ino_t fd_inode(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static int fd_is_closed(int fd, ino_t was) {
    struct stat st;
    if (fstat(fd, &st) == -1) return errno == EBADF;
    return st.st_ino != was;
}

static void test_repeated_headers(struct server *s) {
    ws_dialer *d = ws_dialer_new();
    ws_dialer_add_header(d, "X-Multi", "one");
    ws_dialer_add_header(d, "X-Multi", "two, still two");
    ws_conn *c = NULL;
    ws_response *resp = NULL;
    check_status(ws_dial(d, s->url, NULL, 0, &c, &resp), WS_OK, "dial a server that sets two cookies");
    if (resp) {
        check(ws_response_header_value_count(resp, "set-cookie") == 2, "two Set-Cookie values");
        check(value_is(resp, "Set-Cookie", 0, COOKIE_A), "first cookie in order");
        check(value_is(resp, "SET-COOKIE", 1, COOKIE_B), "second cookie whole, comma included");
        const uint8_t *v;
        size_t n;
        check_status(ws_response_header_value_at(resp, "Set-Cookie", 2, &v, &n), WS_ERR_NOT_FOUND,
                     "past the last value: NOT_FOUND");
        check(ws_response_header_value_count(resp, "X-Absent") == 0, "absent header: 0 values");
        check(ws_response_header_value_count(resp, NULL) == 0, "NULL name: 0 values");
        check(ws_response_header_value_count(NULL, "Set-Cookie") == 0, "NULL response: 0 values");
        check_status(ws_response_header_value_at(resp, NULL, 0, &v, &n), WS_ERR_INVALID_ARGUMENT, "NULL name refused");
        check_status(ws_response_header_value_at(resp, "Set-Cookie", 0, NULL, &n), WS_ERR_INVALID_ARGUMENT,
                     "NULL value_out refused");
        ws_response_free(resp);
    }
    pthread_mutex_lock(&seen.mu);
    check(seen.multi_count == 2 && strcmp(seen.multi1, "two, still two") == 0,
          "the server sees both request values (%zu, '%s')", seen.multi_count, seen.multi1);
    pthread_mutex_unlock(&seen.mu);
    if (c) {
        ws_conn_close(c);
        ws_conn_free(c);
    }
    ws_dialer_free(d);
}

static void test_dial_fd(struct server *s) {
    /* Over a socket we connected; Host and path come from the URL only. */
    int fd = tcp_connect(s->port);
    ino_t ino = fd_inode(fd);
    ws_conn *c = NULL;
    ws_response *resp = NULL;
    check_status(ws_dial_fd(NULL, fd, "ws://chat.example:1234/room?x=1", NULL, 0, &c, &resp), WS_OK,
                 "ws_dial_fd over a connected socket");
    pthread_mutex_lock(&seen.mu);
    check(strcmp(seen.host, "chat.example:1234") == 0 && strcmp(seen.target, "/room?x=1") == 0,
          "Host and path from the URL (%s, %s)", seen.host, seen.target);
    pthread_mutex_unlock(&seen.mu);
    check(resp != NULL && ws_response_status(resp) == 101, "the 101 response is returned");
    ws_response_free(resp);
    if (c) {
        check(ws_conn_fd(c) == fd, "the connection uses the caller's socket");
        check(round_trip(c, WS_BINARY, 70000, 5), "echo over it");
        ws_conn_close(c);
        ws_conn_free(c);
    }
    check(fd_is_closed(fd, ino), "freeing the connection closed the socket");

    /* A server that refuses: BAD_HANDSHAKE with its response and cookies. */
    struct canned k = {-1, "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nSet-Cookie: x=1\r\n"
                           "Set-Cookie: y=2\r\n\r\ngone", 0};
    uint16_t port = 0;
    k.lfd = tcp_listen(&port);
    pthread_create(&k.tid, NULL, canned_thread, &k);
    fd = tcp_connect(port);
    ino = fd_inode(fd);
    resp = NULL;
    c = NULL;
    check_status(ws_dial_fd(NULL, fd, "ws://h/", NULL, 0, &c, &resp), WS_ERR_BAD_HANDSHAKE, "refused over a socket");
    check(resp && ws_response_status(resp) == 404 && ws_response_header_value_count(resp, "Set-Cookie") == 2 &&
              value_is(resp, "Set-Cookie", 1, "y=2"),
          "the refusal's response, both cookies");
    ws_response_free(resp);
    check(c == NULL && fd_is_closed(fd, ino), "no connection, socket closed");
    pthread_join(k.tid, NULL);

    /* A peer that never answers: the dialer's handshake timeout. */
    ws_dialer *d = ws_dialer_new();
    ws_dialer_set_handshake_timeout(d, 200);
    fd = tcp_connect(port); /* the listen queue completes the connect; nobody reads */
    ino = fd_inode(fd);
    double t0 = now_ms();
    check_status(ws_dial_fd(d, fd, "ws://h/", NULL, 0, &c, NULL), WS_ERR_TIMEOUT, "silent peer: timeout");
    double took = now_ms() - t0;
    check(took >= 150 && took < 2000, "after the handshake timeout (%.0f ms)", took);
    check(fd_is_closed(fd, ino), "socket closed after the timeout");
    ws_dialer_free(d);
    close(k.lfd);

    /* Bad descriptors and URLs: refused, and the descriptor is closed. */
    check_status(ws_dial_fd(NULL, -1, "ws://h/", NULL, 0, &c, NULL), WS_ERR_INVALID_ARGUMENT, "negative fd");
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    ino_t sv0_ino = fd_inode(sv[0]);
    check_status(ws_dial_fd(NULL, sv[0], "ws://h/", NULL, 0, &c, NULL), WS_ERR_INVALID_ARGUMENT,
                 "a Unix socket is not a TCP socket");
    check(fd_is_closed(sv[0], sv0_ino), "and it was closed");
    close(sv[1]);
    int unconnected = socket(AF_INET, SOCK_STREAM, 0);
    ino_t unconnected_ino = fd_inode(unconnected);
    check_status(ws_dial_fd(NULL, unconnected, "ws://h/", NULL, 0, &c, NULL), WS_ERR_INVALID_ARGUMENT,
                 "an unconnected socket");
    check(fd_is_closed(unconnected, unconnected_ino), "and it was closed");
    fd = tcp_connect(s->port);
    ino = fd_inode(fd);
    check_status(ws_dial_fd(NULL, fd, "wss://h/", NULL, 0, &c, NULL), WS_ERR_TLS,
                 "wss:// runs TLS over the socket (a plain server fails it)");
    check(fd_is_closed(fd, ino), "and the socket was closed");
    fd = tcp_connect(s->port);
    ino = fd_inode(fd);
    check_status(ws_dial_fd(NULL, fd, "http://h/", NULL, 0, &c, NULL), WS_ERR_BAD_URL, "not a ws:// URL");
    check(fd_is_closed(fd, ino), "and the socket was closed");
    fd = tcp_connect(s->port);
    ino = fd_inode(fd);
    check_status(ws_dial_fd(NULL, fd, "ws://h/", NULL, 0, NULL, NULL), WS_ERR_INVALID_ARGUMENT, "NULL conn_out");
    check(fd_is_closed(fd, ino), "and the socket was closed");
}

int main(void) {
    watchdog(60);
    signal(SIGPIPE, SIG_IGN);
    ws_upgrader *up = ws_upgrader_new();
    ws_upgrader_add_response_header(up, "Set-Cookie", COOKIE_A);
    ws_upgrader_add_response_header(up, "Set-Cookie", COOKIE_B);
    ws_upgrader_set_check_origin(up, record_request, NULL);
    struct server s;
    if (server_start(&s, up, NULL, NULL) != 0) {
        check(0, "server started");
        return summary();
    }
    test_repeated_headers(&s);
    test_dial_fd(&s);
    server_stop(&s);
    ws_upgrader_free(up);
    return summary();
}
