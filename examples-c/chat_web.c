/*
 * chat_web: a chat room in the browser, page and WebSocket on one port
 * (gorilla's chat example, with libws's HTTP handler in place of net/http).
 *
 *   chat_web [--host H] [--port P]      (default 127.0.0.1:8080)
 *
 * GET / serves the page (HTML and JavaScript embedded below); the page
 * opens ws://HOST:PORT/ws, and every text message a member sends goes to
 * every member, the sender included. Everything runs on one event-loop
 * thread. Each message becomes one prepared message queued on every
 * member; a member whose send queue is full (it does not read: more than
 * 8 MiB pending) is closed with 1008. Messages over 1 MiB close the sender
 * with 1009. On stderr, one line per member that joins or leaves (with the
 * close code). SIGINT/SIGTERM: graceful shutdown (close 1001), then exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "stop_signal.h"

static const char PAGE[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<title>libws chat</title>\n"
    "<style>\n"
    "body { font-family: sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }\n"
    "#log { flex: 1; overflow-y: auto; padding: 0.5em; }\n"
    "#log div { white-space: pre-wrap; }\n"
    "#status { color: #666; padding: 0 0.5em; }\n"
    "form { display: flex; padding: 0.5em; }\n"
    "#msg { flex: 1; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<div id=\"log\"></div>\n"
    "<div id=\"status\">connecting</div>\n"
    "<form id=\"form\"><input id=\"msg\" autocomplete=\"off\" autofocus><button>Send</button></form>\n"
    "<script>\n"
    "'use strict';\n"
    "const log = document.getElementById('log');\n"
    "const status = document.getElementById('status');\n"
    "const input = document.getElementById('msg');\n"
    "function show(text) {\n"
    "  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 1;\n"
    "  const line = document.createElement('div');\n"
    "  line.textContent = text;\n"
    "  log.appendChild(line);\n"
    "  if (atBottom) log.scrollTop = log.scrollHeight - log.clientHeight;\n"
    "}\n"
    "const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';\n"
    "const conn = new WebSocket(scheme + location.host + '/ws');\n"
    "window.chat = conn;\n"
    "conn.onopen = () => { status.textContent = 'connected'; };\n"
    "conn.onclose = (e) => { status.textContent = 'closed (' + e.code + ')'; };\n"
    "conn.onmessage = (e) => { show(e.data); };\n"
    "document.getElementById('form').onsubmit = (e) => {\n"
    "  e.preventDefault();\n"
    "  if (conn.readyState === WebSocket.OPEN && input.value) {\n"
    "    conn.send(input.value);\n"
    "    input.value = '';\n"
    "  }\n"
    "};\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

struct member {
    ws_conn *conn;
    struct member *prev, *next;
};

/* Only the loop's thread touches the list: no lock. */
static struct member *members;
static unsigned member_count;
static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--host H] [--port P]\n", prog);
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

static int target_is(const ws_request *req, const char *path) {
    const char *t = NULL;
    size_t n = 0;
    if (ws_request_target(req, &t, &n) != WS_OK) return 0;
    return n == strlen(path) && memcmp(t, path, n) == 0;
}

/* Plain HTTP: the page at "/", nothing else. */
static void serve_http(const ws_request *req, const uint8_t *body, size_t body_len, ws_http_response *resp,
                       void *user_data) {
    (void)body;
    (void)body_len;
    (void)user_data;
    const char *m = NULL;
    size_t mlen = 0;
    ws_request_method(req, &m, &mlen);
    int get_or_head = (mlen == 3 && memcmp(m, "GET", 3) == 0) || (mlen == 4 && memcmp(m, "HEAD", 4) == 0);
    if (!target_is(req, "/")) {
        static const char msg[] = "not found\n";
        ws_http_response_set_status(resp, 404);
        ws_http_response_add_header(resp, "Content-Type", "text/plain; charset=utf-8");
        ws_http_response_set_body(resp, (const uint8_t *)msg, sizeof msg - 1);
    } else if (!get_or_head) {
        static const char msg[] = "method not allowed\n";
        ws_http_response_set_status(resp, 405);
        ws_http_response_add_header(resp, "Allow", "GET, HEAD");
        ws_http_response_add_header(resp, "Content-Type", "text/plain; charset=utf-8");
        ws_http_response_set_body(resp, (const uint8_t *)msg, sizeof msg - 1);
    } else {
        ws_http_response_add_header(resp, "Content-Type", "text/html; charset=utf-8");
        ws_http_response_add_header(resp, "Cache-Control", "no-store");
        ws_http_response_set_body(resp, (const uint8_t *)PAGE, sizeof PAGE - 1);
    }
}

/* WebSockets only at /ws. */
static int32_t on_handshake(const ws_request *req, void *user_data, void **conn_user_data) {
    (void)user_data;
    (void)conn_user_data;
    return target_is(req, "/ws") ? 0 : 404;
}

static void on_open(ws_conn *conn, void *user_data) {
    (void)user_data;
    struct member *c = calloc(1, sizeof *c);
    if (!c) {
        ws_conn_close(conn);
        return;
    }
    c->conn = conn;
    c->next = members;
    if (members) members->prev = c;
    members = c;
    ws_conn_set_user_data(conn, c);
    member_count++;
    fprintf(stderr, "chat_web: member joined (%u now)\n", member_count);
}

static void on_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)reason;
    (void)len;
    struct member *c = user_data;
    if (!c) return;
    if (c->prev) c->prev->next = c->next; else members = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
    member_count--;
    fprintf(stderr, "chat_web: member left with close code %u (%u now)\n", (unsigned)code, member_count);
}

static void on_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    if (type != WS_TEXT) {
        static const char why[] = "text only";
        ws_conn_close_graceful(conn, 1003, (const uint8_t *)why, sizeof why - 1, 0);
        return;
    }
    ws_prepared_message *pm = NULL;
    if (ws_prepared_message_new(type, data, len, &pm) != WS_OK) return;
    for (struct member *c = members; c; c = c->next) {
        if (ws_conn_write_prepared(c->conn, pm) == WS_ERR_QUEUE_FULL) {
            static const char why[] = "too slow";
            ws_conn_close_graceful(c->conn, 1008, (const uint8_t *)why, sizeof why - 1, 0);
        }
    }
    ws_prepared_message_free(pm);
}

static int fail(const char *what, ws_status st) {
    char msg[256];
    ws_last_error(msg, sizeof msg);
    fprintf(stderr, "chat_web: %s: %s: %s\n", what, ws_status_str(st), msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    uint16_t port = 8080;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }
    if (stop_signal_block() != 0) {
        fprintf(stderr, "chat_web: cannot block SIGINT/SIGTERM\n");
        return 1;
    }

    ws_upgrader *up = ws_upgrader_new();
    ws_status st;
    if ((st = ws_upgrader_set_http_handler(up, serve_http, NULL)) != WS_OK) return fail("http handler", st);
    /* The page sends no bodies: refuse any. */
    if ((st = ws_upgrader_set_http_max_body(up, 0)) != WS_OK) return fail("http max body", st);
    if ((st = ws_upgrader_set_read_limit(up, 1u << 20)) != WS_OK) return fail("read limit", st);

    ws_loop *loop = NULL;
    if ((st = ws_loop_new(&loop)) != WS_OK) return fail("loop", st);
    ws_loop_set_max_buffered(loop, 8u << 20);
    /* A page that went away without a close (a laptop lid shut, a network
     * change) is found by keepalive: a ping after 30 s of silence, closed
     * when nothing comes back within 10 s. No idle timeout: a chat page
     * that only reads is a normal member. */
    ws_loop_set_keepalive(loop, 30000, 10000);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_handshake = on_handshake;
    cb.on_open = on_open;
    cb.on_message = on_message;
    cb.on_close = on_close;
    uint16_t bound = 0;
    st = ws_loop_listen(loop, up, host, port, &cb, NULL, &bound);
    ws_upgrader_free(up); /* the listener keeps a snapshot */
    if (st != WS_OK) {
        ws_loop_free(loop);
        return fail("listen", st);
    }
    printf("listening on http://%s:%u/\n", host, (unsigned)bound);
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
        fprintf(stderr, "chat_web: run: %s\n", ws_status_str(st));
        ws_loop_shutdown(loop, 2000);
        ws_loop_run(loop);
    }
    stop_signal_forget();
    ws_loop_free(loop);
    return st == WS_OK ? 0 : 1;
}
