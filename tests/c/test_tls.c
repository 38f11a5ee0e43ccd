/*
 * The TLS and proxy C API: server and client TLS settings, wss:// dial and
 * listen, the peer certificate, certificate replacement, mTLS, the new
 * statuses, proxy setters, and TLS inside the sans-IO session (a wss://
 * client session and a TLS server session talking ciphertext through
 * memory; an untrusted server). Certificates are made with the openssl
 * command line in a temporary directory.
 */
#include "common.h"

static char dir[256];

static void path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static int sh(const char *cmd) {
    char full[2048];
    snprintf(full, sizeof full, "cd %s && %s >/dev/null 2>&1", dir, cmd);
    return system(full);
}

static int make_certs(void) {
    snprintf(dir, sizeof dir, "/tmp/libws-c-tls-XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    if (sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=c test CA' "
           "-keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign") != 0)
        return -1;
    char ext[300];
    path(ext, sizeof ext, "ext.cnf");
    FILE *f = fopen(ext, "w");
    if (f == NULL) return -1;
    fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n", f);
    fclose(f);
    const char *names[] = {"a", "b", "client"};
    for (int i = 0; i < 3; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout %s.key "
                 "-out %s.csr && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
                 "-extfile ext.cnf -out %s.pem",
                 names[i], names[i], names[i], names[i]);
        if (sh(cmd) != 0) return -1;
    }
    return 0;
}

struct served {
    ws_listener *l;
    int n;
};

static void *serve(void *arg) {
    struct served *s = arg;
    for (int i = 0; i < s->n; i++) {
        ws_conn *c = NULL;
        if (ws_listener_accept(s->l, 10000, &c) != WS_OK) return NULL;
        for (;;) {
            ws_msg_type t;
            const uint8_t *d;
            size_t len;
            if (ws_conn_read_message(c, &t, &d, &len) != WS_OK) break;
            if (ws_conn_write_message(c, t, d, len) != WS_OK) break;
        }
        ws_conn_free(c);
    }
    return NULL;
}

static size_t peer_cert_len(ws_conn *c) {
    size_t len = 0;
    ws_status st = ws_conn_tls_peer_certificate(c, 0, NULL, 0, &len);
    return st == WS_ERR_BUFFER_TOO_SMALL ? len : 0;
}

/* ---- TLS inside ws_session ------------------------------------------------ */

struct sess_log {
    int opened, closed, errors, echo;
    ws_status last_error;
    char error[512];
    size_t got_len;
    int got_ok;
};

static const uint8_t *big_message(size_t *len) {
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 % 251);
    *len = sizeof big;
    return big;
}

static void s_open(ws_session *s, const ws_request *req, const ws_response *resp, void *ud) {
    (void)s;
    (void)req;
    (void)resp;
    ((struct sess_log *)ud)->opened++;
}

static void s_message(ws_session *s, ws_msg_type t, const uint8_t *d, size_t n, void *ud) {
    struct sess_log *l = ud;
    if (l->echo) {
        ws_session_send(s, t, d, n);
        return;
    }
    size_t want_len = 0;
    const uint8_t *want = big_message(&want_len);
    l->got_len = n;
    l->got_ok = n == want_len && memcmp(d, want, n) == 0;
}

static void s_close(ws_session *s, uint16_t code, const uint8_t *r, size_t n, void *ud) {
    (void)s;
    (void)code;
    (void)r;
    (void)n;
    ((struct sess_log *)ud)->closed++;
}

static void s_error(ws_session *s, ws_status st, const char *m, void *ud) {
    (void)s;
    struct sess_log *l = ud;
    l->errors++;
    l->last_error = st;
    snprintf(l->error, sizeof l->error, "%s", m);
}

/* Moves one side's pending ciphertext into the other; returns the bytes moved. */
static size_t move_bytes(ws_session *from, ws_session *to) {
    const uint8_t *d = NULL;
    size_t n = 0;
    ws_session_pending(from, &d, &n);
    if (n == 0) return 0;
    uint8_t *copy = malloc(n); /* the pending bytes are valid only until the next call on `from` */
    memcpy(copy, d, n);
    ws_session_sent(from, n);
    ws_session_recv(to, copy, n);
    free(copy);
    return n;
}

static void pump_sessions(ws_session *a, ws_session *b) {
    for (int i = 0; i < 100; i++) {
        size_t moved = move_bytes(a, b);
        moved += move_bytes(b, a);
        if (moved == 0) return;
    }
}

static void test_tls_sessions(const char *ca, const char *cert, const char *key) {
    ws_session_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = s_open;
    cb.on_message = s_message;
    cb.on_close = s_close;
    cb.on_error = s_error;

    ws_tls_server_config *scfg = NULL;
    check_status(ws_tls_server_config_new_files(cert, key, &scfg), WS_OK, "session: server TLS config");
    ws_upgrader *up = ws_upgrader_new();
    ws_upgrader_set_tls(up, scfg);
    ws_tls_client_config *ccfg = ws_tls_client_config_new();
    ws_tls_client_config_add_ca_file(ccfg, ca);
    ws_dialer *d = ws_dialer_new();
    ws_dialer_set_tls(d, ccfg);

    struct sess_log sl = {0}, cl = {0};
    sl.echo = 1;
    ws_session *server = NULL, *client = NULL;
    check_status(ws_session_server_new(up, &cb, &sl, &server), WS_OK, "TLS server session");
    check_status(ws_session_client_new(d, "wss://localhost/tls", &cb, &cl, &client), WS_OK, "wss:// client session");
    ws_upgrader_free(up); /* both are copied; the TLS config is shared */
    ws_dialer_free(d);
    check(ws_session_is_tls(server) && ws_session_is_tls(client), "ws_session_is_tls");
    const uint8_t *p = NULL;
    size_t n = 0;
    ws_session_pending(client, &p, &n);
    check(n > 5 && p[0] == 0x16, "the client's first bytes are a TLS handshake record (%zu bytes)", n);
    pump_sessions(client, server);
    check(cl.opened == 1 && sl.opened == 1, "both sessions opened over TLS (errors: \"%s\" \"%s\")", cl.error,
          sl.error);
    size_t len = 0;
    check_status(ws_session_tls_peer_certificate(client, 0, NULL, 0, &len), WS_ERR_BUFFER_TOO_SMALL,
                 "the server certificate's size");
    uint8_t *der = malloc(len ? len : 1);
    size_t got = 0;
    check(ws_session_tls_peer_certificate(client, 0, der, len, &got) == WS_OK && got == len && der[0] == 0x30,
          "the server's certificate, DER (%zu bytes)", got);
    free(der);
    check_status(ws_session_tls_peer_certificate(server, 0, NULL, 0, &len), WS_ERR_NOT_FOUND,
                 "no client certificate was sent");

    size_t big_len = 0;
    const uint8_t *big = big_message(&big_len);
    check_status(ws_session_send(client, WS_BINARY, big, big_len), WS_OK, "100 KB queued");
    pump_sessions(client, server);
    check(cl.got_ok, "the 100 KB message came back through TLS (%zu bytes)", cl.got_len);
    check_status(ws_session_close(client, WS_CLOSE_NORMAL, NULL, 0), WS_OK, "client closes");
    pump_sessions(client, server);
    check(ws_session_is_finished(server) && ws_session_is_finished(client),
          "both finished (the server's close_notify ends the client)");
    check(sl.errors == 0 && cl.errors == 0 && cl.closed == 1, "a clean close (%s / %s)", sl.error, cl.error);
    ws_session_free(client);
    ws_session_free(server);

    /* A client that does not trust the server: the reason, and an alert pending. */
    ws_dialer *plain = ws_dialer_new(); /* the system store: no test CA */
    up = ws_upgrader_new();
    ws_upgrader_set_tls(up, scfg);
    struct sess_log sl2 = {0}, cl2 = {0};
    server = client = NULL;
    ws_session_server_new(up, &cb, &sl2, &server);
    ws_status st = ws_session_client_new(plain, "wss://localhost/", &cb, &cl2, &client);
    check(st == WS_OK || st == WS_ERR_TLS_CONFIG, "client session without the CA (%s)", ws_status_str(st));
    if (st == WS_OK) {
        move_bytes(client, server);
        move_bytes(server, client);
        check_status(cl2.last_error, WS_ERR_TLS_CERTIFICATE, "an untrusted server is WS_ERR_TLS_CERTIFICATE");
        check(strstr(cl2.error, "not trusted") != NULL, "the message names the reason: %s", cl2.error);
        check(ws_session_is_finished(client) && ws_session_wants_write(client), "finished, the alert pending");
        check(cl2.opened == 0, "never opened");
    }
    ws_session_free(client);
    ws_session_free(server);
    ws_upgrader_free(up);
    ws_dialer_free(plain);
    ws_tls_client_config_free(ccfg);
    ws_tls_server_config_free(scfg);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (!check(make_certs() == 0, "openssl made the test certificates in %s", dir)) return summary();
    char ca[300], a_pem[300], a_key[300], b_pem[300], b_key[300], cl_pem[300], cl_key[300];
    path(ca, sizeof ca, "ca.pem");
    path(a_pem, sizeof a_pem, "a.pem");
    path(a_key, sizeof a_key, "a.key");
    path(b_pem, sizeof b_pem, "b.pem");
    path(b_key, sizeof b_key, "b.key");
    path(cl_pem, sizeof cl_pem, "client.pem");
    path(cl_key, sizeof cl_key, "client.key");

    /* statuses */
    check(strncmp(ws_status_str(WS_ERR_TLS), "WS_ERR_TLS:", 11) == 0, "WS_ERR_TLS has a name");
    check(strncmp(ws_status_str(WS_ERR_PROXY_REFUSED), "WS_ERR_PROXY_REFUSED", 20) == 0, "WS_ERR_PROXY_REFUSED has a name");

    /* server config errors */
    ws_tls_server_config *srv = NULL;
    check_status(ws_tls_server_config_new_files("/nonexistent.pem", a_key, &srv), WS_ERR_TLS_CONFIG,
                 "a missing certificate file is WS_ERR_TLS_CONFIG");
    check(srv == NULL, "no config on failure");
    check_status(ws_tls_server_config_new_files(a_pem, b_key, &srv), WS_ERR_TLS_CONFIG,
                 "a key that does not match is WS_ERR_TLS_CONFIG");
    check_status(ws_tls_server_config_new_files(a_pem, a_key, &srv), WS_OK, "server config from files");
    check_status(ws_tls_server_config_set_min_version(srv, 11), WS_ERR_INVALID_ARGUMENT, "TLS 1.1 is refused");

    ws_upgrader *up = ws_upgrader_new();
    check_status(ws_upgrader_set_tls(up, srv), WS_OK, "upgrader serves TLS");
    ws_listener *l = NULL;
    check_status(ws_listen(up, "127.0.0.1", 0, &l), WS_OK, "TLS listener");
    ws_upgrader_free(up);
    struct served sv = {l, 3};
    pthread_t th;
    pthread_create(&th, NULL, serve, &sv);
    char url[128];
    snprintf(url, sizeof url, "wss://localhost:%u/", (unsigned)ws_listener_port(l));

    /* client */
    ws_tls_client_config *cli = ws_tls_client_config_new();
    check_status(ws_tls_client_config_add_ca_file(cli, "/nonexistent-ca.pem"), WS_ERR_TLS_CONFIG, "missing CA file");
    check_status(ws_tls_client_config_add_ca_file(cli, ca), WS_OK, "CA file");
    check_status(ws_tls_client_config_set_min_version(cli, WS_TLS_1_3), WS_OK, "TLS 1.3 minimum");
    ws_dialer *d = ws_dialer_new();
    check_status(ws_dialer_set_tls(d, cli), WS_OK, "dialer takes the TLS settings");
    check_status(ws_dialer_set_proxy(d, "gopher://x"), WS_ERR_BAD_URL, "a bad proxy URL");
    check_status(ws_dialer_set_proxy(d, ""), WS_OK, "no proxy");
    check_status(ws_dialer_add_proxy_header(d, "X-A", "1"), WS_OK, "a proxy header");
    check_status(ws_dialer_add_proxy_header(d, "X-A", "a\r\nb"), WS_ERR_INVALID_ARGUMENT, "CR/LF in a proxy header");

    ws_conn *c = NULL;
    ws_response *resp = NULL;
    static uint8_t first[4096];
    size_t first_len = 0;
    check_status(ws_dial(d, url, NULL, 0, &c, &resp), WS_OK, "wss:// dial");
    ws_response_free(resp);
    if (c != NULL) {
        check(ws_conn_is_tls(c), "the connection is TLS");
        size_t len = peer_cert_len(c);
        check(len > 100, "the peer certificate's size is reported (%zu)", len);
        uint8_t *der = malloc(len);
        size_t got = 0;
        check_status(ws_conn_tls_peer_certificate(c, 0, der, len, &got), WS_OK, "the peer certificate is copied");
        check(got == len && der[0] == 0x30, "it is DER");
        if (got <= sizeof first) {
            memcpy(first, der, got);
            first_len = got;
        }
        free(der);
        check_status(ws_conn_tls_peer_certificate(c, 5, NULL, 0, &got), WS_ERR_NOT_FOUND, "past the chain's end");
        check_status(ws_conn_write_message(c, WS_BINARY, (const uint8_t *)"tls", 3), WS_OK, "write over TLS");
        ws_msg_type t;
        const uint8_t *data;
        size_t n;
        check(ws_conn_read_message(c, &t, &data, &n) == WS_OK && n == 3 && memcmp(data, "tls", 3) == 0, "echo over TLS");
        ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 2000);
        ws_conn_free(c);
    }

    /* the certificate is replaced for new handshakes */
    check_status(ws_tls_server_config_replace_certificate_files(srv, b_pem, a_key), WS_ERR_TLS_CONFIG,
                 "a mismatched replacement is refused");
    check_status(ws_tls_server_config_replace_certificate_files(srv, b_pem, b_key), WS_OK, "certificate replaced");
    c = NULL;
    check_status(ws_dial(d, url, NULL, 0, &c, NULL), WS_OK, "dial after the replacement");
    if (c != NULL) {
        static uint8_t now[4096];
        size_t now_len = 0;
        ws_conn_tls_peer_certificate(c, 0, now, sizeof now, &now_len);
        check(now_len > 0 && first_len > 0 && (now_len != first_len || memcmp(now, first, now_len) != 0),
              "new handshakes get the new certificate");
        ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 2000);
        ws_conn_free(c);
    }

    /* the system store does not trust the test CA */
    c = NULL;
    ws_dialer *plain = ws_dialer_new();
    ws_dialer_set_proxy(plain, "");
    ws_status st = ws_dial(plain, url, NULL, 0, &c, NULL);
    check(st == WS_ERR_TLS_CERTIFICATE || st == WS_ERR_TLS_CONFIG,
          "without the CA the dial fails with a TLS status (%s)", ws_status_str(st));
    char msg[512];
    ws_last_error(msg, sizeof msg);
    check(strstr(msg, "TLS") != NULL || strstr(msg, "trust") != NULL, "the message names the reason: %s", msg);
    /* serve() is still waiting for its third client: give it one */
    c = NULL;
    if (ws_dial(d, url, NULL, 0, &c, NULL) == WS_OK) {
        ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 2000);
        ws_conn_free(c);
    }
    pthread_join(th, NULL);
    ws_listener_free(l);

    test_tls_sessions(ca, a_pem, a_key);

    /* mutual TLS: a required client certificate */
    check_status(ws_tls_server_config_set_client_auth(srv, 7, NULL), WS_ERR_INVALID_ARGUMENT, "bad client-auth mode");
    check_status(ws_tls_server_config_set_client_auth(srv, WS_TLS_CLIENT_AUTH_REQUIRED, NULL), WS_ERR_TLS_CONFIG,
                 "required client certificates need a CA");
    check_status(ws_tls_server_config_set_client_auth(srv, WS_TLS_CLIENT_AUTH_REQUIRED, ca), WS_OK,
                 "client certificates required");
    up = ws_upgrader_new();
    ws_upgrader_set_tls(up, srv);
    check_status(ws_listen(up, "127.0.0.1", 0, &l), WS_OK, "mTLS listener");
    ws_upgrader_free(up);
    sv.l = l;
    sv.n = 1;
    pthread_create(&th, NULL, serve, &sv);
    snprintf(url, sizeof url, "wss://localhost:%u/", (unsigned)ws_listener_port(l));
    check_status(ws_tls_client_config_set_certificate_files(cli, cl_pem, cl_key), WS_OK, "client certificate");
    ws_dialer *mtls = ws_dialer_new();
    ws_dialer_set_proxy(mtls, "");
    ws_dialer_set_tls(mtls, cli);
    c = NULL;
    check_status(ws_dial(mtls, url, NULL, 0, &c, NULL), WS_OK, "mTLS dial");
    if (c != NULL) {
        ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 2000);
        ws_conn_free(c);
    }
    pthread_join(th, NULL);
    ws_listener_free(l);

    /* an unreachable proxy */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    bind(s, (struct sockaddr *)&sa, sizeof sa);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s); /* nothing listens there now */
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    check_status(ws_dialer_set_proxy(d, proxy), WS_OK, "proxy URL");
    c = NULL;
    check_status(ws_dial(d, "ws://localhost:1/", NULL, 0, &c, NULL), WS_ERR_PROXY, "an unreachable proxy is WS_ERR_PROXY");

    ws_dialer_free(d);
    ws_dialer_free(plain);
    ws_dialer_free(mtls);
    ws_tls_client_config_free(cli);
    ws_tls_server_config_free(srv);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) printf("# could not remove %s\n", dir);
    return summary();
}
