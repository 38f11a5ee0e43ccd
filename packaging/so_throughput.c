/*
 * so_throughput: echo throughput of whichever libws.so the dynamic linker
 * loads, so two builds of the library (the release profile in target/ and
 * the installed dist profile) can be compared with the same program:
 *
 *   cc -O2 -pthread -Iinclude packaging/so_throughput.c -Ltarget/release -lws -o /tmp/so_throughput
 *   LD_LIBRARY_PATH=target/release  taskset -c 0 /tmp/so_throughput [--seconds S] [--compress]
 *   LD_LIBRARY_PATH=PREFIX/lib      taskset -c 0 /tmp/so_throughput ...
 *       [--tls-cert CERT.pem --tls-key KEY.pem --ca CA.pem]   (wss://localhost)
 *
 * In one process: a loop server (ws_loop_listen, echoing from on_message)
 * on a thread, and a blocking client (ws_dial, ws_conn_write_message /
 * ws_conn_read_message) keeping 1 or 16 messages in flight, for 16 B,
 * 1 KiB and 64 KiB messages. Prints one line per case: messages/s, and
 * the process's CPU time per message (client and server together), which
 * a busy machine disturbs far less than the rate.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws.h"

static void on_message(ws_conn *c, ws_msg_type t, const uint8_t *d, size_t n, void *ud) {
    (void)ud;
    (void)ws_conn_write_message(c, t, d, n);
}

static void *run_loop(void *lp) {
    (void)ws_loop_run((ws_loop *)lp);
    return NULL;
}

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static void die(const char *what, ws_status st) {
    char msg[512];
    ws_last_error(msg, sizeof msg);
    fprintf(stderr, "so_throughput: %s: %s: %s\n", what, ws_status_str(st), msg);
    exit(1);
}

/* Messages per second echoed with `window` in flight for `seconds`; the
 * CPU seconds per message go to *cpu. */
static double measure(ws_conn *c, size_t size, int window, double seconds, double *cpu) {
    uint8_t *buf = malloc(size);
    memset(buf, 'x', size);
    for (int i = 0; i < window; i++) {
        ws_status st = ws_conn_write_message(c, WS_BINARY, buf, size);
        if (st != WS_OK) die("write", st);
    }
    long done = 0;
    double t0 = now_s(), end = t0 + seconds, c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (;;) {
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        ws_status st = ws_conn_read_message(c, &t, &d, &n);
        if (st != WS_OK || n != size) die("read", st);
        done++;
        if (now_s() >= end) break;
        st = ws_conn_write_message(c, WS_BINARY, buf, size);
        if (st != WS_OK) die("write", st);
    }
    double rate = (double)done / (now_s() - t0);
    *cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)done;
    for (int i = 1; i < window; i++) { /* drain what is still in flight */
        ws_msg_type t;
        const uint8_t *d;
        size_t n;
        (void)ws_conn_read_message(c, &t, &d, &n);
    }
    free(buf);
    return rate;
}

int main(int argc, char **argv) {
    double seconds = 2.0;
    int compress = 0;
    const char *cert = NULL, *key = NULL, *ca = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--compress") == 0)
            compress = 1;
        else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--compress] [--tls-cert C --tls-key K --ca CA]\n", argv[0]);
            return 2;
        }
    }
    ws_loop *lp;
    ws_status st = ws_loop_new(&lp);
    if (st != WS_OK) die("ws_loop_new", st);
    ws_upgrader *up = ws_upgrader_new();
    ws_dialer *d = ws_dialer_new();
    ws_compression_options co = ws_compression_options_default();
    if (compress && ((st = ws_upgrader_set_compression(up, &co)) != WS_OK || (st = ws_dialer_set_compression(d, &co)) != WS_OK))
        die("compression", st);
    ws_tls_server_config *tls = NULL;
    if (cert && key && ca) {
        if ((st = ws_tls_server_config_new_files(cert, key, &tls)) != WS_OK) die("server TLS", st);
        if ((st = ws_upgrader_set_tls(up, tls)) != WS_OK) die("ws_upgrader_set_tls", st);
        ws_tls_client_config *tc = ws_tls_client_config_new();
        if ((st = ws_tls_client_config_add_ca_file(tc, ca)) != WS_OK) die("client CA", st);
        if ((st = ws_dialer_set_tls(d, tc)) != WS_OK) die("ws_dialer_set_tls", st);
        ws_tls_client_config_free(tc);
    }
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_message = on_message;
    uint16_t port = 0;
    if ((st = ws_loop_listen(lp, up, "127.0.0.1", 0, &cb, NULL, &port)) != WS_OK) die("ws_loop_listen", st);
    pthread_t th;
    pthread_create(&th, NULL, run_loop, lp);
    char url[128];
    snprintf(url, sizeof url, "%s://localhost:%u/", tls ? "wss" : "ws", (unsigned)port);
    ws_conn *c;
    if ((st = ws_dial(d, url, NULL, 0, &c, NULL)) != WS_OK) die("ws_dial", st);
    static const size_t sizes[] = {16, 1024, 65536};
    static const int windows[] = {1, 16};
    printf("libws %s%s%s\n", ws_version(), tls ? " tls" : "", compress ? " compress" : "");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            double cpu;
            (void)measure(c, sizes[s], windows[w], seconds / 4, &cpu); /* warm-up */
            double r = measure(c, sizes[s], windows[w], seconds, &cpu);
            printf("%6zu B  %2d in flight  %10.0f msg/s  %8.2f us CPU/msg\n", sizes[s], windows[w], r, cpu * 1e6);
            fflush(stdout);
        }
    }
    (void)ws_conn_close_graceful(c, WS_CLOSE_NORMAL, NULL, 0, 2000);
    ws_conn_free(c);
    (void)ws_loop_stop(lp);
    pthread_join(th, NULL);
    ws_loop_free(lp);
    ws_upgrader_free(up);
    ws_dialer_free(d);
    ws_tls_server_config_free(tls);
    return 0;
}
