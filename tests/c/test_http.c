/*
 * Plain HTTP on the WebSocket port through the C API
 * (ws_upgrader_set_http_handler, ws_http_response_*): a listener and a
 * loop listener serve a page, HEAD, a request body and its limit, keep the
 * handshake's statuses for bad upgrade attempts, and accept WebSockets on
 * the same port. The response setters refuse what they must.
 */
#include "common.h"

static const char PAGE[] = "<!doctype html><title>t</title><p>hello</p>";

/* What the handler saw and what its setters returned (checked later on
 * the main thread: the handler runs on the accepting or loop thread). */
static struct {
    pthread_mutex_t mu;
    int calls;
    ws_status bad_status, reserved_header, bad_header_value, null_resp, bad_max_body;
    char last_target[128];
    void *user_data;
} seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, "", NULL};

static int user_token;

static void http_handler(const ws_request *req, const uint8_t *body, size_t body_len, ws_http_response *resp,
                         void *user_data) {
    const char *target = NULL, *method = NULL;
    size_t tlen = 0, mlen = 0;
    ws_request_target(req, &target, &tlen);
    ws_request_method(req, &method, &mlen);
    pthread_mutex_lock(&seen.mu);
    seen.calls++;
    seen.user_data = user_data;
    snprintf(seen.last_target, sizeof seen.last_target, "%.*s", (int)tlen, target);
    seen.bad_status = ws_http_response_set_status(resp, 101);
    seen.reserved_header = ws_http_response_add_header(resp, "Content-Length", "1");
    seen.bad_header_value = ws_http_response_add_header(resp, "X-Bad", "a\r\nInjected: 1");
    seen.null_resp = ws_http_response_set_status(NULL, 200);
    pthread_mutex_unlock(&seen.mu);

    if (tlen == 1 && target[0] == '/') {
        ws_http_response_add_header(resp, "Content-Type", "text/html; charset=utf-8");
        ws_http_response_set_body(resp, (const uint8_t *)PAGE, sizeof PAGE - 1);
    } else if (tlen == 5 && memcmp(target, "/echo", 5) == 0) {
        char out[256];
        int n = snprintf(out, sizeof out, "%.*s %zu:%.*s", (int)mlen, method, body_len, (int)body_len,
                         (const char *)body);
        ws_http_response_set_body(resp, (const uint8_t *)out, (size_t)n);
    } else {
        ws_http_response_set_status(resp, 404);
        ws_http_response_add_header(resp, "X-Status-Was", ws_http_response_status(resp) == 404 ? "404" : "?");
        ws_http_response_set_body(resp, (const uint8_t *)"nope\n", 5);
    }
}

/* Sends `req` and reads the answer until the server closes. */
static int http_exchange(uint16_t port, const char *req, char *out, size_t cap) {
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    set_recv_timeout(fd, 5000);
    if (send_all(fd, req, strlen(req)) != 0) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
        if (got == cap - 1) break;
    }
    out[got] = '\0';
    close(fd);
    return (int)got;
}

static int status_of(const char *answer) {
    int st = 0;
    return sscanf(answer, "HTTP/1.1 %d", &st) == 1 ? st : -1;
}

static const char *body_of(const char *answer) {
    const char *p = strstr(answer, "\r\n\r\n");
    return p ? p + 4 : "";
}

static void check_port(uint16_t port, const char *who) {
    char a[8192];
    http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", a, sizeof a);
    check(status_of(a) == 200 && strcmp(body_of(a), PAGE) == 0, "%s: GET / serves the page", who);
    check(strstr(a, "\r\nContent-Type: text/html; charset=utf-8\r\n") != NULL, "%s: Content-Type set", who);
    check(strstr(a, "\r\nConnection: close\r\n") != NULL, "%s: Connection: close", who);
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", sizeof PAGE - 1);
    check(strstr(a, cl) != NULL, "%s: Content-Length is the body's", who);

    http_exchange(port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", a, sizeof a);
    check(status_of(a) == 200 && strstr(a, cl) != NULL && body_of(a)[0] == '\0', "%s: HEAD: headers only", who);

    http_exchange(port, "GET /missing HTTP/1.1\r\n\r\n", a, sizeof a);
    check(status_of(a) == 404 && strcmp(body_of(a), "nope\n") == 0 && strstr(a, "X-Status-Was: 404") != NULL,
          "%s: 404 from the handler", who);

    http_exchange(port, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", a, sizeof a);
    check(strcmp(body_of(a), "POST 4:abcd") == 0, "%s: the handler gets the body (%s)", who, body_of(a));
    http_exchange(port, "POST /echo HTTP/1.1\r\nContent-Length: 17\r\n\r\n", a, sizeof a);
    check(status_of(a) == 413, "%s: a body over the limit is 413 (%d)", who, status_of(a));
    http_exchange(port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", a, sizeof a);
    check(status_of(a) == 411, "%s: chunked is 411", who);

    http_exchange(port,
                  "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n",
                  a, sizeof a);
    check(status_of(a) == 426, "%s: a bad upgrade attempt keeps its status (426)", who);
    http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", a, sizeof a);
    check(status_of(a) == 400, "%s: upgrade without Connection/key is 400", who);

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", (unsigned)port);
    ws_conn *c = dial_or_null(NULL, url);
    check(c != NULL, "%s: WebSocket on the same port", who);
    if (c) {
        check(round_trip(c, WS_TEXT, 100, 3), "%s: echo over it", who);
        ws_conn_close(c);
        ws_conn_free(c);
    }
}

/* The loop's echo. */
static void loop_on_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    ws_conn_write_message(conn, type, data, len);
}

static void *loop_thread(void *arg) {
    ws_loop_run(arg);
    return NULL;
}

int main(void) {
    watchdog(60);
    signal(SIGPIPE, SIG_IGN);
    ws_upgrader *up = ws_upgrader_new();
    check_status(ws_upgrader_set_http_handler(up, http_handler, &user_token), WS_OK, "set_http_handler");
    check_status(ws_upgrader_set_http_max_body(up, 16), WS_OK, "set_http_max_body 16");
    check_status(ws_upgrader_set_http_max_body(up, (size_t)64 * 1024 * 1024 + 1), WS_ERR_INVALID_ARGUMENT,
                 "max body over 64 MiB refused");
    check_status(ws_upgrader_set_http_handler(NULL, http_handler, NULL), WS_ERR_INVALID_ARGUMENT,
                 "NULL upgrader refused");

    struct server s;
    if (server_start(&s, up, NULL, NULL) == 0) {
        check_port(s.port, "listener");
        server_stop(&s);
    } else {
        check(0, "listener started");
    }

    pthread_mutex_lock(&seen.mu);
    check(seen.calls == 4, "the handler ran once per plain request (%d)", seen.calls);
    check(seen.user_data == &user_token, "the handler got its user data");
    check(strcmp(seen.last_target, "/echo") == 0, "the handler saw the target (%s)", seen.last_target);
    check(seen.bad_status == WS_ERR_INVALID_ARGUMENT, "status 101 refused");
    check(seen.reserved_header == WS_ERR_INVALID_ARGUMENT, "Content-Length header refused");
    check(seen.bad_header_value == WS_ERR_INVALID_ARGUMENT, "CR/LF in a header value refused");
    check(seen.null_resp == WS_ERR_INVALID_ARGUMENT, "NULL response refused");
    pthread_mutex_unlock(&seen.mu);

    ws_loop *lp = NULL;
    check_status(ws_loop_new(&lp), WS_OK, "loop_new");
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = loop_on_message;
    uint16_t port = 0;
    check_status(ws_loop_listen(lp, up, "127.0.0.1", 0, &cb, NULL, &port), WS_OK, "loop_listen");
    pthread_t tid;
    pthread_create(&tid, NULL, loop_thread, lp);
    check_port(port, "loop");
    ws_loop_stop(lp);
    pthread_join(tid, NULL);
    ws_loop_free(lp);

    /* Without the handler, plain requests are refused as before. */
    check_status(ws_upgrader_set_http_handler(up, NULL, NULL), WS_OK, "handler removed");
    if (server_start(&s, up, NULL, NULL) == 0) {
        char a[4096];
        http_exchange(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", a, sizeof a);
        check(status_of(a) == 400, "no handler: GET is 400 (%d)", status_of(a));
        http_exchange(s.port, "POST / HTTP/1.1\r\nHost: x\r\n\r\n", a, sizeof a);
        check(status_of(a) == 405, "no handler: POST is 405");
        server_stop(&s);
    }
    ws_upgrader_free(up);
    return summary();
}
