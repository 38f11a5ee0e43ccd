/*
 * echo_client: connects to URL and echoes every message it receives back
 * unchanged until the server closes the connection.
 *
 *   echo_client ws://127.0.0.1:9001/
 *
 * Exits 0 after a clean close (close code 1000), 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ws.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s URL\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char msg[512];
    ws_conn *conn = NULL;
    ws_response *resp = NULL;
    ws_status st = ws_dial(NULL, argv[1], NULL, 0, &conn, &resp);
    if (st != WS_OK) {
        ws_last_error(msg, sizeof msg);
        if (resp != NULL)
            fprintf(stderr, "echo_client: dial %s: %s (HTTP %u): %s\n", argv[1], ws_status_str(st),
                    (unsigned)ws_response_status(resp), msg);
        else
            fprintf(stderr, "echo_client: dial %s: %s: %s\n", argv[1], ws_status_str(st), msg);
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
    if (st == WS_ERR_CLOSED && ws_conn_close_code(conn) == NORMAL) {
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
