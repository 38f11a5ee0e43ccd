/* The memory budget's C API (process-wide and per upgrader) and the read
 * and write timeouts of blocking connections. */
#include "common.h"

static volatile int read_status = -1;
static volatile double read_took = -1;

/* Reads once from a silent client: the upgrader's read timeout ends it. */
static void silent_handler(ws_conn *conn, void *ud) {
    (void)ud;
    ws_msg_type t;
    const uint8_t *data;
    size_t n;
    double t0 = now_ms();
    ws_status st = ws_conn_read_message(conn, &t, &data, &n);
    read_took = now_ms() - t0;
    __atomic_store_n(&read_status, st, __ATOMIC_SEQ_CST);
    ws_conn_free(conn);
}

int main(void) {
    watchdog(60);
    uint64_t def = ws_memory_budget();
    check(def > 0 && def <= (1ull << 30), "a default process budget of at most 1 GiB (%llu)", (unsigned long long)def);
    check(ws_memory_budget_used() == 0, "nothing held before any connection");
    check_status(ws_set_memory_budget(123456789), WS_OK, "set the process budget");
    check(ws_memory_budget() == 123456789, "the process budget is what was set");
    check_status(ws_set_memory_budget(0), WS_OK, "no process budget");
    check(ws_memory_budget() == 0, "0 = none");
    check_status(ws_set_memory_budget(def), WS_OK, "the default again");

    ws_upgrader *up = ws_upgrader_new();
    check(ws_upgrader_memory_budget_used(up) == ws_memory_budget_used(), "without its own: the process budget's count");
    check_status(ws_upgrader_set_memory_budget(up, 64u << 20), WS_OK, "an upgrader's own budget");
    check(ws_upgrader_memory_budget_used(up) == 0, "its own budget holds nothing yet");
    check_status(ws_upgrader_set_budget_wait(up, 500), WS_OK, "budget wait 500 ms");
    check_status(ws_upgrader_set_budget_wait(up, -1), WS_OK, "budget wait without limit");
    check_status(ws_upgrader_set_memory_budget(NULL, 1), WS_ERR_INVALID_ARGUMENT, "NULL upgrader refused");
    check(ws_upgrader_memory_budget_used(NULL) == 0, "NULL upgrader: 0");
    check_status(ws_upgrader_set_timeouts(up, 200, -1), WS_OK, "read timeout 200 ms, no write timeout");
    check_status(ws_upgrader_set_timeouts(NULL, 1, 1), WS_ERR_INVALID_ARGUMENT, "NULL upgrader refused");

    struct server s;
    if (!check(server_start(&s, up, silent_handler, NULL) == 0, "server starts")) return summary();
    ws_conn *c = dial_or_null(NULL, s.url);
    if (!check(c != NULL, "dial")) return summary();
    for (int i = 0; i < 300 && __atomic_load_n(&read_status, __ATOMIC_SEQ_CST) == -1; i++) sleep_ms(10);
    check_status((ws_status)read_status, WS_ERR_TIMEOUT, "a silent client times the server's read out");
    check(read_took >= 190 && read_took < 2000, "after the read timeout (%.1f ms)", read_took);

    /* Client-side setters, on the dialed (blocking) connection. */
    check_status(ws_conn_set_read_timeout(c, 100), WS_OK, "client read timeout 100 ms");
    ws_msg_type t;
    const uint8_t *data;
    size_t n;
    double t0 = now_ms();
    ws_status st = ws_conn_read_message(c, &t, &data, &n);
    double dt = now_ms() - t0;
    check(st == WS_ERR_TIMEOUT || st == WS_ERR_CLOSED, "the client's read ends (%s)", ws_status_str(st));
    check(dt < 2000, "within the read timeout or at the server's close (%.1f ms)", dt);
    check_status(ws_conn_set_write_timeout(c, -1), WS_OK, "no write timeout");
    check_status(ws_conn_set_read_timeout(NULL, 1), WS_ERR_INVALID_ARGUMENT, "NULL conn refused");
    ws_dialer *d = ws_dialer_new();
    check_status(ws_dialer_set_timeouts(d, 1000, 1000), WS_OK, "dialer timeouts");
    ws_dialer_free(d);
    ws_conn_free(c);
    server_stop(&s);
    ws_upgrader_free(up);
    return summary();
}
