/*
 * echo_client_session: the client side of the sans-IO session API. This
 * program connects the socket and runs the poll(2) loop; libws turns
 * bytes into events and events into bytes, handshake included.
 *
 *   echo_client_session ws[s]://HOST:PORT/PATH [--count N] [--compress] [--ca CA.pem]
 *
 * For wss:// the session runs TLS itself (this program moves ciphertext);
 * --ca trusts that CA instead of the system store.
 *
 * Sends N text messages (default 100), checks that each comes back
 * unchanged, closes with 1000, and prints "echoed=N close=CODE". Exits 0
 * when every message came back and the close handshake completed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws.h"

struct state {
    int count;
    int sent;
    int echoed;
    int bad;
    int close_code;
    int failed;
};

static void send_next(ws_session *s, struct state *st) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "message %d", st->sent);
    if (ws_session_send(s, WS_TEXT, (const uint8_t *)msg, (size_t)n) == WS_OK) st->sent++;
}

static void on_open(ws_session *s, const ws_request *req, const ws_response *resp, void *user_data) {
    (void)req;
    struct state *st = user_data;
    fprintf(stderr, "echo_client_session: open (status %u)\n", (unsigned)ws_response_status(resp));
    send_next(s, st);
}

static void on_message(ws_session *s, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    struct state *st = user_data;
    char want[64];
    int n = snprintf(want, sizeof want, "message %d", st->echoed);
    if (type != WS_TEXT || (size_t)n != len || memcmp(want, data, len) != 0) st->bad++;
    st->echoed++;
    if (st->sent < st->count) {
        send_next(s, st);
    } else {
        ws_session_close(s, 1000, (const uint8_t *)"done", 4);
    }
}

static void on_close(ws_session *s, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)s;
    (void)reason;
    (void)len;
    ((struct state *)user_data)->close_code = code;
}

static void on_error(ws_session *s, ws_status status, const char *message, void *user_data) {
    (void)s;
    ((struct state *)user_data)->failed = 1;
    fprintf(stderr, "echo_client_session: %s: %s\n", ws_status_str(status), message);
}

/* Splits ws[s]://HOST:PORT/... into host and port (no IPv6 literals here). */
static int parse_url(const char *url, char *host, size_t cap, char *port, size_t pcap) {
    int secure = strncmp(url, "wss://", 6) == 0;
    const char *p = strncmp(url, "ws://", 5) == 0 ? url + 5 : secure ? url + 6 : NULL;
    if (!p) return -1;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= cap) return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    p += n;
    if (*p == ':') {
        p++;
        size_t m = strcspn(p, "/");
        if (m == 0 || m >= pcap) return -1;
        memcpy(port, p, m);
        port[m] = '\0';
    } else {
        snprintf(port, pcap, secure ? "443" : "80");
    }
    return 0;
}

int main(int argc, char **argv) {
    struct state st = {100, 0, 0, 0, 0, 0};
    int compress = 0;
    const char *url = NULL, *ca = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            st.count = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--compress") == 0) {
            compress = 1;
        } else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
            ca = argv[++i];
        } else if (url == NULL && strncmp(argv[i], "--", 2) != 0) {
            url = argv[i];
        } else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (url == NULL) {
        fprintf(stderr, "usage: %s ws[s]://HOST:PORT/PATH [--count N] [--compress] [--ca CA.pem]\n", argv[0]);
        return 2;
    }
    char host[256], port[16];
    if (parse_url(url, host, sizeof host, port, sizeof port) != 0) {
        fprintf(stderr, "echo_client_session: bad URL %s\n", url);
        return 2;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "echo_client_session: cannot resolve %s\n", host);
        return 1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "echo_client_session: connect: %s\n", strerror(errno));
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);

    ws_dialer *d = ws_dialer_new();
    if (compress) {
        ws_compression_options opts = ws_compression_options_default();
        ws_dialer_set_compression(d, &opts);
    }
    if (ca != NULL) {
        ws_tls_client_config *tls = ws_tls_client_config_new();
        ws_status tst = ws_tls_client_config_add_ca_file(tls, ca);
        if (tst == WS_OK) tst = ws_dialer_set_tls(d, tls); /* copied */
        ws_tls_client_config_free(tls);
        if (tst != WS_OK) {
            char msg[256];
            ws_last_error(msg, sizeof msg);
            fprintf(stderr, "echo_client_session: --ca %s: %s: %s\n", ca, ws_status_str(tst), msg);
            close(fd);
            return 1;
        }
    }
    ws_session_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = on_open;
    cb.on_message = on_message;
    cb.on_close = on_close;
    cb.on_error = on_error;
    ws_session *s = NULL;
    ws_status rc = ws_session_client_new(d, url, &cb, &st, &s);
    ws_dialer_free(d);
    if (rc != WS_OK) {
        fprintf(stderr, "echo_client_session: %s\n", ws_status_str(rc));
        close(fd);
        return 1;
    }
    static uint8_t buf[64 * 1024];
    for (;;) {
        const uint8_t *data = NULL;
        size_t len = 0;
        ws_session_pending(s, &data, &len);
        if (len > 0) {
            ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
            if (n < 0 && errno != EINTR) break;
            if (n > 0) ws_session_sent(s, (size_t)n);
            continue;
        }
        if (ws_session_is_finished(s)) break;
        int64_t ms = -1;
        ws_session_next_timeout_ms(s, &ms);
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, ms < 0 ? 10000 : (int)(ms > 10000 ? 10000 : ms));
        if (r < 0 && errno != EINTR) break;
        if (r == 0) {
            ws_session_on_timeout(s);
            if (ms < 0) break; /* nothing for 10 s with no timer: give up */
            continue;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                ws_session_recv_eof(s);
            } else {
                ws_session_recv(s, buf, (size_t)n);
            }
        }
    }
    close(fd);
    ws_session_free(s);
    printf("echoed=%d close=%d\n", st.echoed, st.close_code);
    return (!st.failed && st.bad == 0 && st.echoed == st.count && st.close_code == 1000) ? 0 : 1;
}
