// The C++ wrapper (include/ws.hpp) end to end: blocking client and server
// with RAII handles, string_view/bytes_view, subprotocols, headers,
// streaming, handlers as lambdas (and an exception thrown from one), read
// deadlines, a threaded client (one thread writes while another reads),
// errors as exceptions and as ws::result, refused handshakes,
// upgrader::upgrade_fd on a socket accepted with POSIX calls, and the
// event loop with lambda callbacks: a loop server and loop client, timers,
// a loop on another thread serving blocking clients, broadcast, an
// exception escaping a callback, and shutdown; a reconnecting loop dial.
// TLS (certificates made with the openssl command): a wss:// echo with a
// client certificate, the peer certificate, certificate replacement and a
// refused certificate; plain HTTP on the WebSocket port through a lambda;
// dialer::dial_fd on a socket connected with POSIX calls.
#include "ws.hpp"

#include "certs.hpp"
#include "check.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;

namespace {

// A blocking echo server on its own thread; records how each connection ended.
struct echo_server {
    ws::listener l;
    std::thread t;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::uint16_t, std::string>> ends;
    std::vector<std::thread> echoes; // joined after the accept thread

    explicit echo_server(const ws::upgrader *up = nullptr) : l(ws::listener::listen("127.0.0.1", 0, up)) {
        t = std::thread([this] { serve(); });
    }
    // Clients are declared after their server, so they are gone (and the
    // echo threads' reads have ended) when this runs.
    ~echo_server() {
        l.shutdown();
        t.join();
        for (auto &e : echoes) e.join();
    }
    void serve() {
        for (;;) {
            auto c = l.try_accept(ws::no_limit);
            if (!c) return; // shut down
            echoes.emplace_back([this, c = std::move(c).value()]() mutable { echo(c); });
        }
    }
    void echo(ws::conn &c) {
        for (;;) {
            auto m = c.try_read();
            if (!m) break;
            if (!c.try_write(m->type, m->data)) break;
        }
        std::lock_guard<std::mutex> g(mu);
        ends.emplace_back(c.close_code(), c.close_reason());
        cv.notify_all();
    }
    std::pair<std::uint16_t, std::string> wait_end(std::size_t n) {
        std::unique_lock<std::mutex> g(mu);
        if (!cv.wait_for(g, 5s, [&] { return ends.size() >= n; })) return {0, "no end seen"};
        return ends[n - 1];
    }
    std::string url(const std::string &path = "/") const {
        return "ws://127.0.0.1:" + std::to_string(l.port()) + path;
    }
};

void test_blocking() {
    ws::upgrader up;
    up.set_subprotocols({"chat"}).add_response_header("X-Server", "libws");
    echo_server s(&up);
    ws::dialer d;
    d.set_subprotocols({"superchat", "chat"}).set_handshake_timeout(5000);
    ws::response resp;
    ws::conn c = d.dial(s.url(), {{"X-Test", "1"}}, &resp);
    check::that(resp && resp.status() == 101, "dial: 101 response kept");
    check::that(resp.header("x-server") == std::optional<std::string_view>("libws"), "response header by name");
    check::that(c.subprotocol() == "chat", "subprotocol negotiated");
    check::that(!c.is_loop() && c.fd() >= 0 && c.remote_addr().find("127.0.0.1:") == 0, "connection state");
    check::that(!c.compression_negotiated() && c.try_set_compression_threshold(64).ok(), "compression settings");

    c.send_text("hello");
    ws::message_view m = c.read();
    check::that(m.type == ws::msg_type::text && m.text() == "hello", "text echo as string_view");
    std::vector<std::uint8_t> bin = {0, 1, 2, 255};
    c.send_binary(bin);
    m = c.read();
    check::that(m.type == ws::msg_type::binary && m.data.to_vector() == bin, "binary echo as bytes_view");
    std::string big(100000, 'x');
    c.send_text(big);
    check::that(c.read_string().second == big, "100 kB message");

    c.next_writer(ws::msg_type::text);
    c.writer_write(std::string_view("ab"));
    c.writer_write(std::string_view("cd"));
    c.writer_close();
    check::that(c.read().text() == "abcd", "streaming writer");
    c.send_text("xyz");
    std::string pieces;
    bool text = c.next_reader() == ws::msg_type::text;
    std::uint8_t buf[2];
    for (std::size_t n; (n = c.reader_read(buf, sizeof buf)) > 0;) pieces.append(reinterpret_cast<char *>(buf), n);
    check::that(text && pieces == "xyz", "streaming reader");

    int pongs = 0;
    std::string pong_payload;
    c.on_pong([&](ws::conn_view, ws::bytes_view p) {
        ++pongs;
        pong_payload = std::string(p.as_string());
    });
    c.ping(std::string_view("hb"));
    c.send_text("after ping");
    check::that(c.read().text() == "after ping" && pongs == 1 && pong_payload == "hb", "pong handler lambda");

    c.set_read_deadline(50);
    auto r = c.try_read();
    check::that(!r && r.status() == WS_ERR_TIMEOUT, "read deadline: WS_ERR_TIMEOUT as a result");
    c.set_read_deadline(ws::no_limit);
    c.send_text("still");
    check::that(c.read().text() == "still", "usable after a timeout");

    c.close_graceful(WS_CLOSE_NORMAL, "bye", 5000);
    auto end = s.wait_end(1);
    check::that(end.first == WS_CLOSE_NORMAL && end.second == "bye", "server saw close 1000 \"bye\"");
}

void test_threaded_client() {
    echo_server s;
    ws::conn c = ws::dial(s.url());
    const int n = 300;
    std::thread writer([&] {
        for (int i = 0; i < n; ++i) c.send_text("m" + std::to_string(i));
    });
    int in_order = 0;
    for (int i = 0; i < n; ++i) {
        if (c.read().text() == "m" + std::to_string(i)) ++in_order;
    }
    writer.join();
    check::that(in_order == n, "threaded client: a writer thread and a reader thread, 300 messages in order");
    c.close_graceful();
    check::that(s.wait_end(1).first == WS_CLOSE_NORMAL, "threaded client closed");
}

void test_errors() {
    auto r = ws::try_dial("ws://127.0.0.1:1/");
    check::that(!r && r.status() == WS_ERR_CONNECT && !r.message().empty(), "try_dial: WS_ERR_CONNECT with a message");
    ws_status st = WS_OK;
    try {
        ws::dial("not a url");
    } catch (const ws::error &e) {
        st = e.status();
    }
    check::that(st == WS_ERR_BAD_URL, "dial throws ws::error carrying WS_ERR_BAD_URL");

    ws::upgrader up;
    up.set_check_origin([](ws::request_view req) { return req.header("X-Allow").has_value(); });
    up.set_error_handler([](std::optional<ws::request_view> req, ws::error_response_view er) {
        if (req && req->target() == "/") er.set_body(std::string_view("go away"));
    });
    echo_server s(&up);
    ws::response resp;
    auto refused = ws::dialer().try_dial(s.url(), {}, &resp);
    check::that(refused.status() == WS_ERR_BAD_HANDSHAKE && resp && resp.status() == 403,
                "check_origin lambda refuses: 403 and WS_ERR_BAD_HANDSHAKE");
    check::that(resp.body().as_string() == "go away", "error handler lambda set the body");
    ws::conn ok = ws::dial(s.url(), {{"X-Allow", "yes"}});
    check::that(ok.get() != nullptr, "check_origin lambda accepts");

    ws::conn moved = std::move(ok);
    check::that(ok.get() == nullptr && moved.get() != nullptr, "conn is move-only and moves its handle");

    moved.on_pong([](ws::conn_view, ws::bytes_view) { throw std::runtime_error("pong handler failed"); });
    moved.ping();
    moved.send_text("x");
    std::string what;
    try {
        moved.read();
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    check::that(what == "pong handler failed", "an exception from a handler is rethrown by the read");
}

// A socket accepted by "our own HTTP server" (plain POSIX calls), its
// request read by us, then handed to upgrader::upgrade_fd.
void test_upgrade_fd() {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    bool ready = lfd >= 0 && bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 && listen(lfd, 4) == 0 &&
                 getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &alen) == 0;
    if (!check::that(ready, "a plain listening socket")) return;
    std::string url = "ws://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/own-server";
    std::thread client([url] {
        auto c = ws::try_dial(url);
        if (!c) return;
        c->send_text("over upgrade_fd");
        auto m = c->try_read();
        check::that(m.ok() && m->text() == "over upgrade_fd", "echo through a connection made by upgrade_fd");
        (void)c->try_close_graceful(WS_CLOSE_NORMAL, "", 5000);
    });
    int fd = accept(lfd, nullptr, nullptr);
    std::string head;
    char buf[512];
    while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
    }
    ws::upgrader up;
    auto c = up.try_upgrade_fd(fd, head, {{"X-Own", "1"}});
    check::that(c.ok(), "upgrade_fd takes the socket and the bytes read");
    if (c) {
        auto m = c->try_read();
        if (m) (void)c->try_write(m->type, m->data);
        while (c->try_read().ok()) {
        }
    }
    client.join();
    close(lfd);
}

void test_event_loop() {
    ws::event_loop ev = ws::event_loop::create();
    std::atomic<int> server_closed{0};
    ws::loop_handlers sh;
    sh.on_handshake = [](ws::request_view r) { return r.target() == "/private" ? 401 : 0; };
    sh.on_message = [](ws::conn_view c, ws::msg_type t, ws::bytes_view d) {
        if (d.as_string() == "boom") throw std::runtime_error("callback failed");
        c.write(t, d);
    };
    sh.on_close = [&](ws::conn_view, std::uint16_t, std::string_view) { ++server_closed; };
    std::uint16_t port = ev.listen("127.0.0.1", 0, sh);
    std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";

    // A loop client in the same loop.
    std::vector<std::string> got;
    std::uint16_t client_close = 0;
    ws::loop_handlers ch;
    ch.on_open = [&](ws::conn_view c) {
        c.send_text("one");
        c.send_text("two");
    };
    ch.on_message = [&](ws::conn_view c, ws::msg_type, ws::bytes_view d) {
        got.emplace_back(d.as_string());
        if (got.size() == 2) c.close_graceful(WS_CLOSE_NORMAL, "done");
    };
    ch.on_close = [&](ws::conn_view, std::uint16_t code, std::string_view) {
        client_close = code;
        ev.stop();
    };
    ev.dial(url, ch);
    std::uint64_t guard = ev.add_timer(10000, 0, [&] { ev.stop(); });
    ev.run();
    ev.cancel_timer(guard);
    check::that(got == std::vector<std::string>{"one", "two"} && client_close == WS_CLOSE_NORMAL,
                "loop client and loop server with lambda callbacks");

    int ticks = 0;
    std::uint64_t id = ev.add_timer(1, 5, [&] {
        if (++ticks == 3) ev.stop();
    });
    ev.run();
    ev.cancel_timer(id);
    check::that(ticks == 3, "a repeating timer lambda");

    // The loop on its own thread; blocking clients on this one.
    std::thread runner([&] { ev.run(); });
    ws::conn b1 = ws::dial(url);
    ws::conn b2 = ws::dial(url);
    b1.send_text("blocking");
    check::that(b1.read().text() == "blocking", "a blocking client of a loop server on another thread");
    b2.send_text("sync");
    check::that(b2.read().text() == "sync", "second client connected");
    std::size_t queued = ev.broadcast(ws::prepared_message::text("to all"));
    check::that(queued == 2 && b1.read().text() == "to all" && b2.read().text() == "to all", "broadcast");
    ws::response resp;
    auto refused = ws::dialer().try_dial("ws://127.0.0.1:" + std::to_string(port) + "/private", {}, &resp);
    check::that(refused.status() == WS_ERR_BAD_HANDSHAKE && resp.status() == 401, "on_handshake lambda refuses with 401");
    b1.close_graceful(WS_CLOSE_NORMAL, "", 5000);
    b2.close_graceful(WS_CLOSE_GOING_AWAY, "", 5000);
    ev.stop();
    runner.join();

    // An exception escaping a callback stops the loop; run() rethrows it.
    ws::loop_handlers bomb;
    bomb.on_open = [](ws::conn_view c) { c.send_text("boom"); };
    ev.dial(url, bomb);
    guard = ev.add_timer(10000, 0, [&] { ev.stop(); });
    std::string what;
    try {
        ev.run();
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    ev.cancel_timer(guard);
    check::that(what == "callback failed", "an exception from a loop callback is rethrown by run()");

    ev.shutdown(2000);
    ev.run();
    check::that(ev.connection_count() == 0 && server_closed >= 4, "shutdown closes everything");
}

// A loop server that closes every connection after one message, and a
// reconnecting loop client in the same loop.
void test_reconnect() {
    ws::event_loop ev = ws::event_loop::create();
    ws::loop_handlers server;
    server.on_message = [](ws::conn_view c, ws::msg_type, ws::bytes_view) {
        c.send_text("bye");
        (void)ws_conn_close_graceful(c.get(), WS_CLOSE_GOING_AWAY, nullptr, 0, 0);
    };
    std::uint16_t port = ev.listen("127.0.0.1", 0, server);
    int opens = 0, closes = 0, reconnects = 0;
    std::int64_t first_delay = -1;
    ws::loop_handlers client;
    client.on_open = [&](ws::conn_view c) {
        ++opens;
        c.send_text("hi");
    };
    client.on_close = [&](ws::conn_view, std::uint16_t, std::string_view) { ++closes; };
    client.on_reconnect = [&](std::uint32_t attempt, std::int64_t delay_ms, ws_status) {
        ++reconnects;
        if (first_delay < 0 && attempt == 1) first_delay = delay_ms;
    };
    ws_reconnect_options o = ws_reconnect_options_default();
    o.initial_delay_ms = 20;
    o.jitter = 0;
    {
        ws::reconnector r = ev.dial_reconnecting("ws://127.0.0.1:" + std::to_string(port) + "/", client, o);
        for (int i = 0; i < 1000 && opens < 3; ++i) ev.poll(10);
        check::that(opens >= 3 && reconnects >= 2 && first_delay == 20, "dial_reconnecting: back after each close");
        check::that(!r.stopped(), "reconnector running");
    } // destroyed: stopped
    int seen = opens;
    for (int i = 0; i < 30; ++i) ev.poll(10);
    check::that(opens == seen && closes == opens, "a destroyed reconnector dials no more");
    auto bad = ev.try_dial_reconnecting("http://x/", client);
    check::that(!bad && bad.status() == WS_ERR_BAD_URL, "a bad URL fails at once");
}

void test_tls() {
    std::string dir = certs::make();
    if (!check::that(!dir.empty(), "openssl made the test certificates")) return;
    auto bad = ws::tls_server_config::try_from_files(dir + "/a.pem", dir + "/b.key");
    check::that(!bad && bad.status() == WS_ERR_TLS_CONFIG, "a key that does not match: WS_ERR_TLS_CONFIG");
    ws::tls_server_config srv = ws::tls_server_config::from_files(dir + "/a.pem", dir + "/a.key");
    srv.set_client_auth(WS_TLS_CLIENT_AUTH_REQUIRED, dir + "/ca.pem");
    ws::upgrader up;
    up.set_tls(&srv);
    echo_server s(&up);
    std::string url = "wss://localhost:" + std::to_string(s.l.port()) + "/";

    std::vector<std::uint8_t> first_cert;
    {
        ws::tls_client_config tc;
        tc.add_ca_file(dir + "/ca.pem").set_certificate_files(dir + "/client.pem", dir + "/client.key");
        ws::dialer d;
        d.set_tls(&tc);
        ws::conn c = d.dial(url);
        c.send_text("over tls");
        check::that(c.read().text() == "over tls" && c.is_tls(), "wss:// echo with a client certificate");
        first_cert = c.tls_peer_certificate(0);
        check::that(first_cert.size() > 100 && first_cert[0] == 0x30, "the server's certificate, DER");
        check::that(c.tls_peer_certificate(9).empty(), "past the chain: empty");
        c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
    }
    {
        ws::tls_client_config tc;
        tc.add_ca_file(dir + "/ca.pem");
        ws::dialer d;
        d.set_tls(&tc);
        auto c = d.try_dial(url);
        check::that(!c, "no client certificate where one is required: refused");
    }
    {
        ws::tls_client_config untrusting; // the system store does not know our CA
        ws::dialer d;
        d.set_tls(&untrusting);
        auto c = d.try_dial(url);
        check::that(!c && c.status() == WS_ERR_TLS_CERTIFICATE, "an unknown CA: WS_ERR_TLS_CERTIFICATE");
    }
    srv.replace_certificate_files(dir + "/b.pem", dir + "/b.key");
    {
        ws::tls_client_config tc;
        tc.add_ca_file(dir + "/ca.pem").set_certificate_files(dir + "/client.pem", dir + "/client.key");
        ws::dialer d;
        d.set_tls(&tc);
        ws::conn c = d.dial(url);
        auto cert = c.tls_peer_certificate(0);
        check::that(!cert.empty() && cert != first_cert, "a replaced certificate serves the next handshake");
        c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
    }
    certs::remove(dir);
}

// Sends `req` on a fresh TCP connection to 127.0.0.1:port, returns all it got back.
std::string http_exchange(std::uint16_t port, const std::string &req) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
        char buf[1024];
        for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    return got;
}

void test_http_handler() {
    ws::upgrader up;
    up.set_http_handler([](ws::request_view req, ws::bytes_view body, ws::http_response_view resp) {
        if (req.target() == "/boom") throw std::runtime_error("handler failed");
        resp.add_header("Content-Type", "text/plain");
        resp.set_body(std::string("path=") + std::string(req.target()) + " body=" + std::string(body.as_string()));
    });
    echo_server s(&up);
    std::string got = http_exchange(s.l.port(), "POST /page HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    check::that(got.find("HTTP/1.1 200") == 0 && got.find("path=/page body=hi") != std::string::npos,
                "plain HTTP on the WebSocket port: a lambda answers");
    got = http_exchange(s.l.port(), "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    check::that(got.find("HTTP/1.1 500") == 0, "a handler that throws answers 500");
    ws::conn c = ws::dial(s.url());
    c.send_text("ws still");
    check::that(c.read().text() == "ws still", "WebSocket upgrades on the same port");
    c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
}

void test_dial_fd() {
    echo_server s;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(s.l.port());
    if (!check::that(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0, "our own connect")) return;
    ws::dialer d;
    ws::conn c = d.dial_fd(fd, "ws://127.0.0.1/own-socket");
    c.send_text("over dial_fd");
    check::that(c.read().text() == "over dial_fd" && c.fd() == fd, "dial_fd: the handshake over our socket");
    c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
    auto bad = d.try_dial_fd(-1, "ws://127.0.0.1/");
    check::that(!bad && bad.status() == WS_ERR_INVALID_ARGUMENT, "dial_fd(-1): WS_ERR_INVALID_ARGUMENT");
}

} // namespace


// The memory budget's wrappers, and the read timeout an upgrader gives
// the blocking connections it accepts.
void test_budget_and_timeouts() {
    std::uint64_t before = ws::memory_budget();
    check::that(before > 0, "a process-wide memory budget is on by default");
    ws::set_memory_budget(64u << 20);
    check::that(ws::memory_budget() == (64u << 20), "set_memory_budget changes it");
    ws::set_memory_budget(before);
    check::that(ws::memory_budget() == before, "and back");

    ws::upgrader up;
    up.set_timeouts(200, 1000).set_memory_budget(8u << 20).set_budget_wait(1000);
    check::that(up.memory_budget_used() == 0, "an upgrader's own budget starts empty");
    ws::listener l = ws::listener::listen("127.0.0.1", 0, &up);
    std::string url = "ws://127.0.0.1:" + std::to_string(l.port()) + "/";
    ws::conn client;
    std::thread t([&] { client = ws::dial(url); });
    ws::conn server = l.accept(5000);
    t.join();
    auto t0 = std::chrono::steady_clock::now();
    auto silent = server.try_read();
    auto waited = std::chrono::steady_clock::now() - t0;
    check::that(!silent && silent.status() == WS_ERR_TIMEOUT, "a silent client times the server's read out");
    check::that(waited >= std::chrono::milliseconds(150) && waited < std::chrono::seconds(5),
                "at the upgrader's 200 ms read timeout");
    client.set_read_timeout(ws::no_limit);
    client.send_text("still here");
    auto m = server.read();
    check::that(m.text() == "still here", "the connection stays usable after the timeout");
}

int main() {
    check::that(ws::version() == WS_VERSION_STRING, "ws::version() matches WS_VERSION_STRING");
    check::that(ws::has_tls(), "ws::has_tls(): the tests' library is the default build, with TLS");
    try {
        test_blocking();
        test_threaded_client();
        test_errors();
        test_upgrade_fd();
        test_event_loop();
        test_reconnect();
        test_tls();
        test_http_handler();
        test_dial_fd();
        test_budget_and_timeouts();
    } catch (const std::exception &e) {
        check::that(false, std::string("unexpected exception: ") + e.what());
    }
    return check::summary();
}
