/*
 * echo_client: connects to URL and echoes every message it receives back
 * unchanged until the server closes the connection.
 *
 *   echo_client [--compress] [--ca CA.pem] [--proxy URL] ws[s]://HOST:PORT/PATH
 *
 * --ca trusts that CA instead of the system store (for wss://); --proxy
 * goes through an http://, https://, socks5:// or socks5h:// proxy ("" for
 * none); without it the proxy comes from the environment (http_proxy,
 * https_proxy, all_proxy, no_proxy).
 *
 * Exits 0 after a clean close (close code 1000), 1 otherwise (a refused
 * certificate or proxy included).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "ws.h"

int main(int argc, char **argv) {
    const char *url = NULL;
    int compress = 0;
    const char *ca = NULL, *proxy = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--compress") == 0)
            compress = 1;
        else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc)
            proxy = argv[++i];
        else if (url == NULL)
            url = argv[i];
        else
            url = NULL, i = argc; /* too many arguments */
    }
    if (url == NULL) {
        fprintf(stderr, "usage: %s [--compress] [--ca CA.pem] [--proxy URL] URL\n", argv[0]);
        return 2;
    }
    ws_dialer *dialer = ws_dialer_new();
    if (compress) {
        ws_compression_options opts = ws_compression_options_default();
        ws_dialer_set_compression(dialer, &opts);
    }
    char msg[512];
    if (ca != NULL) {
        ws_tls_client_config *tls = ws_tls_client_config_new();
        ws_status tst = ws_tls_client_config_add_ca_file(tls, ca);
        if (tst == WS_OK) tst = ws_dialer_set_tls(dialer, tls);
        ws_tls_client_config_free(tls);
        if (tst != WS_OK) {
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_client: --ca %s: %s: %s\n", ca, ws_status_str(tst), msg);
            return 1;
        }
    }
    if (proxy != NULL && ws_dialer_set_proxy(dialer, proxy) != WS_OK) {
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_client: --proxy: %s\n", msg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ws_conn *conn = NULL;
    ws_response *resp = NULL;
    ws_status st = ws_dial(dialer, url, NULL, 0, &conn, &resp);
    ws_dialer_free(dialer);
    if (st != WS_OK) {
        ws_last_error(msg, sizeof msg);
        if (resp != NULL)
            fprintf(stderr, "echo_client: dial %s: %s (HTTP %u): %s\n", url, ws_status_str(st),
                    (unsigned)ws_response_status(resp), msg);
        else
            fprintf(stderr, "echo_client: dial %s: %s: %s\n", url, ws_status_str(st), msg);
        ws_response_free(resp);
        return 1;
    }
    ws_response_free(resp);

    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        st = ws_conn_read_message(conn, &type, &data, &len);
        if (st == WS_OK) st = ws_conn_write_message(conn, type, data, len);
        if (st != WS_OK) break;
    }
    int rc;
    if (st == WS_ERR_CLOSED && ws_conn_close_code(conn) == WS_CLOSE_NORMAL) {
        rc = 0;
    } else {
        char reason[128] = "";
        size_t rlen = 0;
        ws_conn_close_reason(conn, reason, sizeof reason, &rlen);
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "echo_client: connection ended: %s (close code %u, reason \"%s\"): %s\n",
                ws_status_str(st), (unsigned)ws_conn_close_code(conn), reason, msg);
        rc = 1;
    }
    ws_conn_free(conn);
    return rc;
}
