// The C header must compile as C++ (g++ -std=c++11 -Wall -Werror).
#include "ws.h"

#include <cstdio>
#include <cstring>

int main() {
    const char *v = ws_version();
    ws_upgrader *up = ws_upgrader_new();
    const char *protos[] = {"chat"};
    ws_status st = ws_upgrader_set_subprotocols(up, protos, 1);
    ws_upgrader_free(up);
    uint8_t out[WS_MAX_CONTROL_PAYLOAD];
    size_t len = 0;
    ws_status fst = ws_format_close_message(WS_CLOSE_NORMAL, reinterpret_cast<const uint8_t *>("bye"), 3, out, sizeof out, &len);
    ws_control_handler h = ws_conn_default_ping_handler;
    bool ok = v != nullptr && std::strlen(v) > 0 && st == WS_OK && fst == WS_OK && len == 5 && h != nullptr &&
              std::strlen(ws_status_str(WS_ERR_TIMEOUT)) > 0;
    std::printf("%s 1 - header compiles and links as C++\n", ok ? "ok" : "not ok");
    std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
