/*
 * autobahn_client: runs the Autobahn|Testsuite fuzzingserver's cases.
 *
 *   autobahn_client [URL [AGENT]]     (URL like ws://127.0.0.1:9001)
 *
 * Without arguments, AUTOBAHN_URL and AUTOBAHN_AGENT are used (defaults
 * ws://127.0.0.1:9001 and "libws"). Asks the server for the case count, runs
 * every case by echoing each text/binary message back until the connection
 * ends, then asks the server to update its reports. Exits 0 when every case
 * ran (whatever the verdicts; read them in the report).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "compress_flag.h"

static const char *base_url;
static ws_dialer *dialer;
static char agent_enc[512];

static void percent_encode(const char *in, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

static ws_conn *dial(const char *path) {
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    ws_conn *conn = NULL;
    ws_status st = ws_dial(dialer, url, NULL, 0, &conn, NULL);
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "autobahn_client: dial %s: %s: %s\n", url, ws_status_str(st), msg);
        return NULL;
    }
    return conn;
}

/* Echoes until any error ends the connection. */
static void echo_until_end(ws_conn *conn) {
    for (;;) {
        ws_msg_type type;
        const uint8_t *data;
        size_t len;
        if (ws_conn_read_message(conn, &type, &data, &len) != WS_OK) return;
        if (ws_conn_write_message(conn, type, data, len) != WS_OK) return;
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    int compress = 0;
    ws_compression_options copts;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int c = compress_flag(argv[i], &copts);
        if (c > 0) {
            compress = 1;
        } else if (c == 0 && npos < 2) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "usage: %s [--compress[=pooled|dedicated|shared]] [URL [AGENT]]\n", argv[0]);
            return 2;
        }
    }
    const char *url = npos > 0 ? pos[0] : getenv("AUTOBAHN_URL");
    const char *agent = npos > 1 ? pos[1] : (npos > 0 ? NULL : getenv("AUTOBAHN_AGENT"));
    if (url == NULL || *url == '\0') url = "ws://127.0.0.1:9001";
    if (agent == NULL || *agent == '\0') agent = "libws";
    dialer = ws_dialer_new();
    if (compress) ws_dialer_set_compression(dialer, &copts); /* see compress_flag.h */
    /* Drop trailing slashes so that URL + "/runCase..." is well formed. */
    static char base[1024];
    snprintf(base, sizeof base, "%s", url);
    for (size_t n = strlen(base); n > 0 && base[n - 1] == '/'; n--) base[n - 1] = '\0';
    base_url = base;
    percent_encode(agent, agent_enc, sizeof agent_enc);

    ws_conn *conn = dial("/getCaseCount");
    if (conn == NULL) return 1;
    ws_msg_type type;
    uint8_t *data = NULL;
    size_t len = 0;
    ws_status st = ws_conn_read_message_copy(conn, &type, &data, &len);
    if (st != WS_OK || type != WS_TEXT) {
        fprintf(stderr, "autobahn_client: reading the case count: %s\n", ws_status_str(st));
        ws_conn_free(conn);
        return 1;
    }
    char count_buf[32];
    size_t cl = len < sizeof count_buf - 1 ? len : sizeof count_buf - 1;
    memcpy(count_buf, data, cl);
    count_buf[cl] = '\0';
    ws_bytes_free(data);
    long n = strtol(count_buf, NULL, 10);
    echo_until_end(conn); /* wait for the server's close */
    ws_conn_free(conn);
    if (n <= 0) {
        fprintf(stderr, "autobahn_client: bad case count \"%s\"\n", count_buf);
        return 1;
    }
    fprintf(stderr, "autobahn_client: %ld cases (agent %s)\n", n, agent);

    long failed_dials = 0;
    for (long i = 1; i <= n; i++) {
        char path[700];
        snprintf(path, sizeof path, "/runCase?case=%ld&agent=%s", i, agent_enc);
        conn = dial(path);
        if (conn == NULL) {
            failed_dials++;
        } else {
            echo_until_end(conn);
            ws_conn_free(conn);
        }
        if (i % 50 == 0 || i == n) fprintf(stderr, "autobahn_client: %ld/%ld cases run\n", i, n);
    }

    char path[700];
    snprintf(path, sizeof path, "/updateReports?agent=%s", agent_enc);
    conn = dial(path);
    if (conn == NULL) return 1;
    echo_until_end(conn); /* the server closes once the reports are written */
    ws_conn_free(conn);
    if (failed_dials > 0) {
        fprintf(stderr, "autobahn_client: %ld cases could not connect\n", failed_dials);
        return 1;
    }
    return 0;
}
