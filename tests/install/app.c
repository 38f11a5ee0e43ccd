/*
 * An outside program built against an installed libws (tests/install.rs
 * builds it with pkg-config and with CMake, shared and static): checks
 * the header's version against the library's, then echoes one message
 * through a listener and a client in this process, and reports what the
 * library does with wss:// and TLS settings (tests/install.rs checks the
 * lines: a library with TLS fails to connect to the closed port and
 * judges the bad PEM, one built with `make install TLS=0` refuses each
 * with WS_ERR_UNSUPPORTED).
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

/* The TLS settings and an https:// proxy: made or refused. */
static void report_tls_settings(void) {
    ws_tls_client_config *client = ws_tls_client_config_new();
    ws_tls_server_config *server = NULL;
    ws_dialer *d = ws_dialer_new();
    ws_status srv = ws_tls_server_config_new_pem((const uint8_t *)"x", 1, (const uint8_t *)"y", 1, &server);
    ws_status proxy = ws_dialer_set_proxy(d, "https://127.0.0.1:1");
    printf("tls settings: client %s; server %s; https proxy %s\n", client ? "made" : "NULL", ws_status_str(srv),
           ws_status_str(proxy));
    ws_tls_client_config_free(client);
    ws_tls_server_config_free(server);
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
    report_tls_settings();
    return ok ? 0 : 4;
}
