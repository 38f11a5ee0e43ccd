// ws.hpp built with -fno-exceptions: the try_* forms return ws::result
// (status and message) and never throw; the blocking echo, the event loop
// and a pair of sans-IO sessions work without exceptions.
#include "ws.hpp"

#include "check.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>
#include <thread>

int main() {
    auto l = ws::listener::try_listen("127.0.0.1", 0);
    if (!check::that(l.ok(), "try_listen")) return check::summary();
    std::thread server([&] {
        auto c = l->try_accept(5000);
        if (!c) return;
        for (;;) {
            auto m = c->try_read();
            if (!m || !c->try_write(m->type, m->data)) break;
        }
    });
    auto c = ws::try_dial("ws://127.0.0.1:" + std::to_string(l->port()) + "/");
    check::that(c.ok(), "try_dial");
    if (c) {
        check::that(c->try_send_text("x").ok(), "try_send_text");
        auto m = c->try_read();
        check::that(m.ok() && m->text() == "x", "try_read");
        check::that(c->try_close_graceful(WS_CLOSE_NORMAL, "", 5000).ok(), "try_close_graceful");
    }
    server.join();
    auto bad = ws::try_dial("ws://127.0.0.1:1/");
    check::that(!bad && bad.status() == WS_ERR_CONNECT && !bad.message().empty(), "a failure is a result, not a throw");
    auto st = ws::dialer().try_set_buffer_sizes(std::size_t(1) << 40, 0);
    check::that(st.status() == WS_ERR_INVALID_ARGUMENT, "a refused setting is a result");

    auto ev = ws::event_loop::try_create();
    check::that(ev.ok(), "event_loop::try_create");
    int fired = 0;
    auto id = ev->try_add_timer(0, 0, [&] { ++fired; });
    check::that(id.ok(), "try_add_timer");
    auto t0 = std::chrono::steady_clock::now();
    while (fired == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
        if (!ev->try_poll(100)) break;
    }
    check::that(fired == 1, "the timer lambda ran from try_poll");

    // A client and a server session in memory, with the try_* forms only.
    std::string echoed;
    ws::session_handlers sh;
    sh.on_message = [](ws::session_view s, ws::msg_type t, ws::bytes_view d) { (void)s.try_send(t, d); };
    ws::session_handlers ch;
    ch.on_open = [](ws::session_view s, std::optional<ws::request_view>, ws::response_view) {
        (void)s.try_send_text("sans-io");
    };
    ch.on_message = [&](ws::session_view, ws::msg_type, ws::bytes_view d) { echoed = std::string(d.as_string()); };
    auto ss = ws::session::try_server(nullptr, sh);
    auto cs = ws::session::try_client("ws://example.test/", ch);
    check::that(ss.ok() && cs.ok(), "session::try_server / try_client");
    bool moved_ok = true;
    for (int round = 0; round < 10 && ss && cs; ++round) {
        for (ws::session *from : {&*cs, &*ss}) {
            ws::session &to = from == &*cs ? *ss : *cs;
            auto out = from->try_pending();
            if (!out || out->empty()) continue;
            std::vector<std::uint8_t> bytes = out->to_vector();
            moved_ok &= from->try_sent(bytes.size()).ok() && to.try_recv(bytes).ok();
        }
    }
    check::that(moved_ok && echoed == "sans-io", "sessions echo in memory through try_pending/try_sent/try_recv");
    auto bad_url = ws::session::try_client("ftp://x/", {});
    check::that(!bad_url && bad_url.status() == WS_ERR_BAD_URL, "a bad session URL is a result");
    return check::summary();
}
