// An outside C++17 program against an installed libws: ws.hpp's event
// loop serves on its own thread, a blocking ws::conn echoes through it.
#include <ws.hpp>

#include <cstdio>
#include <thread>

int main() {
    ws::event_loop ev = ws::event_loop::create();
    ws::loop_handlers h;
    h.on_message = [](ws::conn_view c, ws::msg_type t, ws::bytes_view d) { c.write(t, d); };
    std::uint16_t port = ev.listen("127.0.0.1", 0, h);
    std::thread loop([&] { ev.run(); });
    bool ok = false;
    {
        ws::conn c = ws::dial("ws://127.0.0.1:" + std::to_string(port) + "/");
        c.send_text("installed c++");
        ok = c.read().text() == "installed c++";
        c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
    }
    ev.stop();
    loop.join();
    std::printf("%s libws %s\n", ok ? "echo ok" : "echo FAILED", std::string(ws::version()).c_str());
    return ok ? 0 : 1;
}
