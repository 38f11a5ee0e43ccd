/*
 * game_loop_client: a client driven the way a game engine drives libws —
 * one call to ws_loop_poll(loop, 0) per 16 ms frame, never blocking, no
 * thread besides the caller's.
 *
 *   game_loop_client URL [--frames N] [--compress]     (default 120 frames)
 *
 * Every frame it sends "frame <n>" and takes whatever echoes arrived.
 * After N frames it closes (1000) and keeps polling until the close
 * callback. Exit status 0 when every message came back in order and the
 * connection closed with 1000; it prints frames, messages and the longest
 * ws_loop_poll call (what a frame pays for networking).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws.h"

#define FRAME_NS 16666667L

struct game {
    ws_conn *conn;
    int open, closed, failed;
    uint16_t close_code;
    long sent, received, out_of_order;
};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_open(ws_conn *conn, void *user_data) {
    struct game *g = user_data;
    g->conn = conn;
    g->open = 1;
}

static void on_message(ws_conn *conn, ws_msg_type type, const uint8_t *data, size_t len, void *user_data) {
    (void)conn;
    struct game *g = user_data;
    char expect[32];
    int n = snprintf(expect, sizeof expect, "frame %ld", g->received);
    if (type != WS_TEXT || (size_t)n != len || memcmp(expect, data, len) != 0) g->out_of_order++;
    g->received++;
}

static void on_close(ws_conn *conn, uint16_t code, const uint8_t *reason, size_t len, void *user_data) {
    (void)conn;
    (void)reason;
    (void)len;
    struct game *g = user_data;
    g->closed = 1;
    g->close_code = code;
    g->conn = NULL;
}

static void on_error(ws_conn *conn, ws_status status, const char *message, void *user_data) {
    (void)conn;
    (void)user_data;
    fprintf(stderr, "game_loop_client: %s: %s\n", ws_status_str(status), message);
}

static void on_dial_error(ws_status status, const char *message, const ws_response *resp, void *user_data) {
    struct game *g = user_data;
    fprintf(stderr, "game_loop_client: dial failed: %s: %s (HTTP %d)\n", ws_status_str(status), message,
            resp ? (int)ws_response_status(resp) : 0);
    g->failed = 1;
}

int main(int argc, char **argv) {
    const char *url = NULL;
    long frames = 120;
    int compress = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) {
            frames = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--compress") == 0) {
            compress = 1;
        } else if (!url && argv[i][0] != '-') {
            url = argv[i];
        } else {
            url = NULL;
            break;
        }
    }
    if (!url || frames <= 0) {
        fprintf(stderr, "usage: %s URL [--frames N] [--compress]\n", argv[0]);
        return 2;
    }
    ws_loop *loop = NULL;
    if (ws_loop_new(&loop) != WS_OK) return 1;
    ws_dialer *d = ws_dialer_new();
    ws_dialer_set_handshake_timeout(d, 5000);
    if (compress) {
        ws_compression_options opts = ws_compression_options_default();
        ws_dialer_set_compression(d, &opts);
    }
    struct game g;
    memset(&g, 0, sizeof g);
    ws_loop_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_open = on_open;
    cb.on_message = on_message;
    cb.on_close = on_close;
    cb.on_error = on_error;
    cb.on_dial_error = on_dial_error;
    ws_status st = ws_loop_dial(loop, d, url, NULL, 0, &cb, &g);
    ws_dialer_free(d);
    if (st != WS_OK) {
        char msg[256];
        ws_last_error(msg, sizeof msg);
        fprintf(stderr, "game_loop_client: %s: %s\n", ws_status_str(st), msg);
        ws_loop_free(loop);
        return 1;
    }
    long frame = 0;
    long long worst_poll = 0;
    long long next = now_ns();
    /* 10 s at most after the last frame for the echoes and the close. */
    long long give_up = next + (long long)frames * FRAME_NS + 10000000000LL;
    while (!g.closed && !g.failed && now_ns() < give_up) {
        long long t0 = now_ns();
        st = ws_loop_poll(loop, 0); /* never blocks */
        long long spent = now_ns() - t0;
        if (spent > worst_poll) worst_poll = spent;
        if (st != WS_OK) break;
        if (g.open && frame < frames) {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "frame %ld", frame);
            if (ws_conn_write_message(g.conn, WS_TEXT, (const uint8_t *)msg, (size_t)n) == WS_OK) g.sent++;
            frame++;
        }
        /* The close goes once the last echo is back. */
        if (g.open && g.conn && frame == frames && g.received == g.sent) {
            static const char bye[] = "game over";
            ws_conn_close_graceful(g.conn, 1000, (const uint8_t *)bye, sizeof bye - 1, 0);
            frame++; /* once */
        }
        /* The rest of the frame: the game would render here. */
        next += FRAME_NS;
        long long wait = next - now_ns();
        if (wait > 0) {
            struct timespec ts = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
    ws_loop_free(loop);
    printf("frames=%ld sent=%ld received=%ld out_of_order=%ld close=%u worst_poll_us=%lld\n", frames, g.sent,
           g.received, g.out_of_order, (unsigned)g.close_code, worst_poll / 1000);
    int ok = !g.failed && g.closed && g.close_code == 1000 && g.sent == frames && g.received == g.sent &&
             g.out_of_order == 0;
    return ok ? 0 : 1;
}
