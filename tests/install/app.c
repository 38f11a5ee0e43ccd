/*
 * An outside program built against an installed libws (tests/install.rs
 * builds it with pkg-config and with CMake, shared and static): checks
 * the header's version against the library's, then echoes one message
 * through a listener and a client in this process, and reports what the
 * library does with wss:// (tests/install.rs checks the line: a library
 * with TLS fails to connect to the closed port, one built with
 * `make install TLS=0` refuses the URL with WS_ERR_UNSUPPORTED).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ws.h>

static void *serve(void *arg) {
    ws_listener *l = arg;
    ws_conn *c = NULL;
    ws_msg_type t;
    const uint8_t *d;
    size_t n;
    if (ws_listener_accept(l, 10000, &c) != WS_OK) return NULL;
    while (ws_conn_read_message(c, &t, &d, &n) == WS_OK) {
        if (ws_conn_write_message(c, t, d, n) != WS_OK) break;
    }
    ws_conn_free(c);
    return NULL;
}

/* Dials `url` (the closed listener's port) as wss://, directly (no proxy
 * from the environment), and prints the status and message. */
static void report_wss(const char *ws_url) {
    char url[80], msg[256];
    ws_dialer *d = ws_dialer_new();
    ws_conn *c = NULL;
    ws_status st;
    snprintf(url, sizeof url, "wss://%s", ws_url + strlen("ws://"));
    ws_dialer_set_proxy(d, "");
    st = ws_dial(d, url, NULL, 0, &c, NULL);
    ws_last_error(msg, sizeof msg);
    printf("tls %s; wss: %s; %s\n", ws_has_tls() ? "yes" : "no", ws_status_str(st), msg);
    ws_conn_free(c);
    ws_dialer_free(d);
}

int main(void) {
    ws_listener *l = NULL;
    ws_conn *c = NULL;
    pthread_t server;
    char url[64];
    ws_msg_type t;
    const uint8_t *d;
    size_t n;
    int ok;
    if (strcmp(ws_version(), WS_VERSION_STRING) != 0) {
        printf("version mismatch: library %s, header %s\n", ws_version(), WS_VERSION_STRING);
        return 1;
    }
    if (ws_listen(NULL, "127.0.0.1", 0, &l) != WS_OK) return 2;
    pthread_create(&server, NULL, serve, l);
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", (unsigned)ws_listener_port(l));
    if (ws_dial(NULL, url, NULL, 0, &c, NULL) != WS_OK) return 3;
    ws_conn_write_message(c, WS_TEXT, (const uint8_t *)"installed", 9);
    ok = ws_conn_read_message(c, &t, &d, &n) == WS_OK && n == 9 && memcmp(d, "installed", 9) == 0;
    ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 5000);
    ws_conn_free(c);
    pthread_join(server, NULL);
    ws_listener_free(l);
    printf("%s libws %s\n", ok ? "echo ok" : "echo FAILED", ws_version());
    report_wss(url);
    return ok ? 0 : 4;
}
