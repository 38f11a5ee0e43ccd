// ws::session (the sans-IO session, include/ws.hpp) end to end: a client
// and a server session in memory (no socket: bytes moved by the test); a
// server session over a TCP socket the test accepted with POSIX calls,
// against a blocking ws::conn client (text, binary, 200 kB, compressed,
// ping, a prepared message, the close handshake); a client session over a
// socket the test connected, against a loop server on another thread
// (subprotocol and the 101 as a response_view, keepalive through
// next_timeout_ms/on_timeout, the close handshake); a TLS server session
// (ciphertext in and out, the client's certificate) against a blocking
// wss:// client; errors as ws::error and as ws::result, a refused
// handshake, and a handler's exception rethrown by recv().
#include "ws.hpp"

#include "certs.hpp"
#include "check.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// Moves every pending byte of `from` into `to` (the in-memory transport).
bool pump(ws::session &from, ws::session &to);

// Pumps both ways until neither side has anything to send (at most 10 rounds).
void exchange(ws::session &a, ws::session &b) {
    for (int i = 0; i < 10; ++i) {
        bool ab = pump(a, b);
        bool ba = pump(b, a);
        if (!ab && !ba) return;
    }
}

bool pump(ws::session &from, ws::session &to) {
    bool moved = false;
    while (from.wants_write()) {
        ws::bytes_view out = from.pending();
        std::vector<std::uint8_t> copy = out.to_vector(); // `out` is valid until the next call on `from`
        from.sent(copy.size());
        to.recv_in_place(copy.data(), copy.size()); // our copy: the session may unmask in it
        moved = true;
    }
    return moved;
}

// Writes what the session has pending to the non-blocking `fd` (as much as
// the socket takes). False on a socket error.
bool flush(ws::session &s, int fd) {
    while (s.wants_write()) {
        ws::bytes_view out = s.pending();
        ssize_t n = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
        s.sent(static_cast<std::size_t>(n));
    }
    return true;
}

// Drives `s` over the non-blocking socket `fd` until `done()` holds or the
// session is finished with nothing pending; true if so within `limit`.
// Waits with poll(2), bounded by the session's next timeout.
bool drive(ws::session &s, int fd, const std::function<bool()> &done, std::chrono::milliseconds limit = 10s) {
    auto end = clock_type::now() + limit;
    bool eof = false;
    std::uint8_t buf[16384];
    for (;;) {
        if (!flush(s, fd)) return false;
        if (done()) return true;
        if (s.is_finished() && !s.wants_write()) return true;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now()).count();
        if (left <= 0) return false;
        std::int64_t next = s.next_timeout_ms();
        int wait = static_cast<int>(next == ws::no_limit ? left : std::min<std::int64_t>(next, left));
        pollfd p{fd, static_cast<short>((eof ? 0 : POLLIN) | (s.wants_write() ? POLLOUT : 0)), 0};
        int r = poll(&p, 1, wait);
        if (r < 0 && errno != EINTR) return false;
        if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && !eof) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                s.recv(ws::bytes_view(buf, static_cast<std::size_t>(n)));
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                eof = true;
                s.recv_eof();
            }
        }
        if (s.try_next_timeout_ms().value() == 0) s.on_timeout();
    }
}

void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

// A listening TCP socket on 127.0.0.1 with a free port.
int listen_socket(std::uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

// accept(2) with a bound on the wait.
int accept_within(int lfd, int ms) {
    pollfd p{lfd, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return -1;
    return accept(lfd, nullptr, nullptr);
}

// A client and a server session exchanging bytes in memory.
void test_in_memory() {
    std::vector<std::string> server_got;
    std::string target;
    std::uint16_t server_close = 0;
    ws::session_handlers sh;
    sh.on_open = [&](ws::session_view, std::optional<ws::request_view> req, ws::response_view resp) {
        target = req ? std::string(req->target()) : "no request";
        check::that(!resp, "server on_open: no response view");
    };
    sh.on_message = [&](ws::session_view s, ws::msg_type t, ws::bytes_view d) {
        server_got.emplace_back(d.as_string());
        s.send(t, d); // echo straight from the zero-copy view
    };
    sh.on_close = [&](ws::session_view, std::uint16_t code, std::string_view) { server_close = code; };
    ws::session server = ws::session::server(nullptr, sh);

    std::vector<std::string> client_got;
    std::uint16_t open_status = 0, client_close = 0;
    std::string client_reason;
    int pongs = 0;
    ws::session_handlers ch;
    ch.on_open = [&](ws::session_view s, std::optional<ws::request_view> req, ws::response_view resp) {
        open_status = resp ? resp.status() : 0;
        check::that(!req, "client on_open: no request");
        s.send_text("one");
        s.send_binary(std::vector<std::uint8_t>{0, 1, 2});
        s.ping(std::string_view("p"));
    };
    ch.on_message = [&](ws::session_view, ws::msg_type, ws::bytes_view d) { client_got.emplace_back(d.as_string()); };
    ch.on_pong = [&](ws::session_view, ws::bytes_view p) { pongs += p.as_string() == "p"; };
    ch.on_close = [&](ws::session_view, std::uint16_t code, std::string_view reason) {
        client_close = code;
        client_reason = std::string(reason);
    };
    ws::session client = ws::session::client("ws://example.test/mem", ch);

    check::that(client.wants_write() && client.pending().as_string().rfind("GET /mem HTTP/1.1\r\n", 0) == 0,
                "a client session's request is pending at once");
    check::that(!client.is_tls() && client.wants_read(), "plain session state");
    exchange(client, server);
    check::that(open_status == 101 && target == "/mem", "in memory: 101 and the request target");
    check::that(server_got == std::vector<std::string>{"one", std::string("\0\1\2", 3)} && client_got == server_got,
                "in memory: text and binary echoed");
    check::that(pongs == 1, "in memory: the pong came back to on_pong");
    check::that(client.subprotocol().empty() && !client.compression_negotiated() && !client.refused_response(),
                "in memory: no subprotocol, no deflate, nothing refused");

    // A large message from the caller's memory, behind the header the session gives.
    std::string big(70000, 'z');
    ws::session_view::frame_head head = server.send_head(ws::msg_type::binary, big.size());
    check::that(head && head.view().size() == 10 && !server.wants_write(),
                "send_head: a 10-byte header for 70000 bytes, nothing queued");
    std::vector<std::uint8_t> wire(head.bytes, head.bytes + head.len);
    wire.insert(wire.end(), big.begin(), big.end());
    client.recv_in_place(wire.data(), wire.size());
    check::that(client_got.size() == 3 && client_got.back() == big, "send_head: the client got the message");
    check::that(!client.send_head(ws::msg_type::binary, big.size()), "send_head: a client masks, so no header");

    server.close(WS_CLOSE_GOING_AWAY, "maintenance");
    exchange(server, client);
    check::that(client_close == WS_CLOSE_GOING_AWAY && client_reason == "maintenance" && server_close == 1001,
                "in memory: the close handshake, both sides saw 1001");
    check::that(server.is_finished() && !server.wants_read(), "a server session is finished after both close frames");
    auto late = client.try_send_text("late");
    check::that(!late && late.status() == WS_ERR_CLOSE_SENT, "send after the close: WS_ERR_CLOSE_SENT as a result");
    client.recv_eof();
    check::that(client.is_finished(), "the client is finished once the transport ended");

    ws::session moved = std::move(client);
    check::that(client.get() == nullptr && moved.get() != nullptr, "session is move-only and moves its handle");
}

// A server session on a socket we accepted, a blocking client on a thread.
void test_server_over_socket() {
    std::uint16_t port = 0;
    int lfd = listen_socket(&port);
    if (!check::that(lfd >= 0, "a plain listening socket")) return;
    std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/echo";
    bool client_ok = false;
    std::thread client([&] {
        try {
            ws::dialer d;
            d.set_compression(ws::compression_defaults());
            ws::conn c = d.dial(url, {{"X-Test", "session"}});
            bool ok = c.compression_negotiated();
            ok &= c.read().text() == "prepared hello"; // sent by the server's on_open
            c.send_text("hello");
            ok &= c.read().text() == "hello";
            std::vector<std::uint8_t> bin = {0, 255, 7};
            c.send_binary(bin);
            ok &= c.read().data.to_vector() == bin;
            std::string big(200000, 'z');
            c.send_text(big);
            ok &= c.read_string().second == big;
            int pongs = 0;
            c.on_pong([&](ws::conn_view, ws::bytes_view p) { pongs += p.as_string() == "hb"; });
            c.ping(std::string_view("hb"));
            c.send_text("after ping");
            ok &= c.read().text() == "after ping" && pongs == 1;
            c.close_graceful(WS_CLOSE_NORMAL, "bye", 5000);
            client_ok = ok;
        } catch (const std::exception &e) {
            check::that(false, std::string("blocking client: ") + e.what());
        }
    });
    int fd = accept_within(lfd, 5000);
    close(lfd);
    if (!check::that(fd >= 0, "accepted the client")) {
        client.join();
        return;
    }
    nonblocking(fd);
    ws::prepared_message pm = ws::prepared_message::text("prepared hello");
    std::string x_test, close_reason;
    std::uint16_t close_code = 0;
    int pings = 0;
    std::size_t messages = 0;
    ws::upgrader up;
    up.set_compression(ws::compression_defaults());
    ws::session_handlers h;
    h.on_open = [&](ws::session_view s, std::optional<ws::request_view> req, ws::response_view) {
        if (req) x_test = std::string(req->header("X-Test").value_or(""));
        s.send_prepared(pm);
    };
    h.on_message = [&](ws::session_view s, ws::msg_type t, ws::bytes_view d) {
        ++messages;
        s.send(t, d);
    };
    h.on_ping = [&](ws::session_view, ws::bytes_view) { ++pings; };
    h.on_close = [&](ws::session_view, std::uint16_t code, std::string_view reason) {
        close_code = code;
        close_reason = std::string(reason);
    };
    ws::session s = ws::session::server(&up, h);
    bool finished = drive(s, fd, [] { return false; });
    close(fd);
    client.join();
    check::that(finished && s.is_finished(), "server session over a socket: finished after the close handshake");
    check::that(x_test == "session", "on_open: the request's header");
    check::that(client_ok, "the blocking client got the prepared message and every echo (compressed)");
    check::that(messages == 4 && pings == 1, "the server session saw 4 messages and the ping");
    check::that(close_code == WS_CLOSE_NORMAL && close_reason == "bye", "the server session saw close 1000 \"bye\"");
}

// A client session on a socket we connected, against a loop server.
void test_client_against_loop() {
    ws::event_loop ev = ws::event_loop::create();
    ws::upgrader up;
    up.set_subprotocols({"chat"});
    ws::loop_handlers lh;
    lh.on_message = [](ws::conn_view c, ws::msg_type t, ws::bytes_view d) { c.write(t, d); };
    std::uint16_t port = ev.listen("127.0.0.1", 0, lh, &up);
    std::thread runner([&] { ev.run(); });

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(port);
    bool connected = fd >= 0 && connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    if (check::that(connected, "connected to the loop server")) {
        nonblocking(fd);
        std::uint16_t status = 0;
        std::string protocol;
        std::vector<std::string> got;
        int pongs = 0;
        std::uint16_t close_code = 0;
        ws::session_handlers h;
        h.on_open = [&](ws::session_view s, std::optional<ws::request_view>, ws::response_view resp) {
            status = resp.status();
            protocol = std::string(resp.header("Sec-WebSocket-Protocol").value_or(""));
            s.send_text("first");
            s.send_binary(std::string_view("second"));
        };
        h.on_message = [&](ws::session_view, ws::msg_type, ws::bytes_view d) { got.emplace_back(d.as_string()); };
        h.on_pong = [&](ws::session_view, ws::bytes_view) { ++pongs; };
        h.on_close = [&](ws::session_view, std::uint16_t code, std::string_view) { close_code = code; };
        ws::dialer d;
        d.set_subprotocols({"chat"});
        ws::session s = ws::session::client("ws://127.0.0.1:" + std::to_string(port) + "/", h, &d);
        bool echoed = drive(s, fd, [&] { return got.size() == 2; });
        check::that(echoed && status == 101 && protocol == "chat", "client session: 101 with the subprotocol");
        check::that(got == std::vector<std::string>{"first", "second"}, "client session: both messages echoed");

        s.set_timeouts(30, 2000);
        std::int64_t next = s.next_timeout_ms();
        check::that(next >= 0 && next <= 30, "next_timeout_ms: the keepalive ping is due within 30 ms");
        bool ponged = drive(s, fd, [&] { return pongs > 0; });
        check::that(ponged, "on_timeout sent the keepalive ping, the loop server's pong reached on_pong");

        s.close(WS_CLOSE_NORMAL, "done");
        bool finished = drive(s, fd, [] { return false; });
        check::that(finished && close_code == WS_CLOSE_NORMAL, "client session: close handshake with the loop server");
        close(fd);
    } else if (fd >= 0) {
        close(fd);
    }
    ev.stop();
    runner.join();
}

// A TLS server session (the test moves ciphertext) against a blocking wss:// client.
void test_tls_server_session() {
    std::string dir = certs::make();
    if (!check::that(!dir.empty(), "openssl made the test certificates")) return;
    ws::tls_server_config srv = ws::tls_server_config::from_files(dir + "/a.pem", dir + "/a.key");
    srv.set_client_auth(WS_TLS_CLIENT_AUTH_REQUIRED, dir + "/ca.pem");
    ws::upgrader up;
    up.set_tls(&srv);
    std::uint16_t port = 0;
    int lfd = listen_socket(&port);
    if (!check::that(lfd >= 0, "a plain listening socket")) return;
    bool client_ok = false;
    std::thread client([&] {
        try {
            ws::tls_client_config tc;
            tc.add_ca_file(dir + "/ca.pem").set_certificate_files(dir + "/client.pem", dir + "/client.key");
            ws::dialer d;
            d.set_tls(&tc);
            ws::conn c = d.dial("wss://localhost:" + std::to_string(port) + "/");
            c.send_text("secret");
            client_ok = c.read().text() == "secret" && c.is_tls();
            c.close_graceful(WS_CLOSE_NORMAL, "", 5000);
        } catch (const std::exception &e) {
            check::that(false, std::string("wss client: ") + e.what());
        }
    });
    int fd = accept_within(lfd, 5000);
    close(lfd);
    if (check::that(fd >= 0, "accepted the wss client")) {
        nonblocking(fd);
        std::size_t cert_len = 0;
        bool tls_in_open = false;
        ws::session_handlers h;
        h.on_open = [&](ws::session_view s, std::optional<ws::request_view>, ws::response_view) {
            tls_in_open = s.is_tls();
            cert_len = s.tls_peer_certificate(0).size();
        };
        h.on_message = [](ws::session_view s, ws::msg_type t, ws::bytes_view d) { s.send(t, d); };
        ws::session s = ws::session::server(&up, h);
        check::that(s.is_tls() && s.tls_peer_certificate(0).empty(), "a TLS server session; no certificate yet");
        bool finished = drive(s, fd, [] { return false; });
        check::that(finished && tls_in_open && cert_len > 100, "TLS session: the client's certificate in on_open");
        close(fd);
    }
    client.join();
    check::that(client_ok, "wss:// echo through a TLS server session");
    certs::remove(dir);
}

// A well-formed upgrade request for a server session fed by hand.
const std::string upgrade_request = "GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

void test_errors() {
    auto bad = ws::session::try_client("http://example.test/", {});
    check::that(!bad && bad.status() == WS_ERR_BAD_URL && !bad.message().empty(),
                "try_client: WS_ERR_BAD_URL with a message");
    ws_status st = WS_OK;
    try {
        (void)ws::session::client("not a url", {});
    } catch (const ws::error &e) {
        st = e.status();
    }
    check::that(st == WS_ERR_BAD_URL, "client() throws ws::error carrying WS_ERR_BAD_URL");

    ws::session c = ws::session::client("ws://example.test/", {});
    auto early = c.try_send_text("too early");
    check::that(!early && early.status() == WS_ERR_INVALID_ARGUMENT, "send before the open: WS_ERR_INVALID_ARGUMENT");
    std::size_t n = c.pending().size();
    auto over = c.try_sent(n + 1);
    check::that(!over && over.status() == WS_ERR_INVALID_ARGUMENT, "sent() past the pending bytes is refused");
    check::that(c.pending().size() == n, "a refused sent() consumed nothing");

    // A refused handshake: on_error, the HTTP answer pending, finished.
    ws_status err = WS_OK;
    ws::session_handlers h;
    h.on_error = [&](ws::session_view, ws_status s, std::string_view) { err = s; };
    ws::session refused = ws::session::server(nullptr, h);
    refused.recv(std::string_view("GET / HTTP/1.0\r\n\r\n"));
    check::that(err != WS_OK && refused.pending().as_string().rfind("HTTP/1.1 400", 0) == 0,
                "an HTTP/1.0 request: on_error and a pending 400");
    check::that(refused.is_finished() && !refused.wants_read(), "a refused session is finished");

    // A handler's exception is rethrown by the call that ran it; the session goes on.
    ws::session_handlers th;
    th.on_open = [](ws::session_view, std::optional<ws::request_view>, ws::response_view) {
        throw std::runtime_error("open handler failed");
    };
    ws::session s = ws::session::server(nullptr, th);
    std::string what;
    try {
        s.recv(upgrade_request);
    } catch (const std::runtime_error &e) {
        what = e.what();
    }
    check::that(what == "open handler failed", "an exception from a handler is rethrown by recv()");
    check::that(s.pending().as_string().rfind("HTTP/1.1 101", 0) == 0 && s.try_send_text("still open").ok(),
                "the session is open after the handler's exception");
    auto busy_status = WS_OK;
    ws::session_handlers bh;
    bh.on_open = [&](ws::session_view v, std::optional<ws::request_view>, ws::response_view) {
        busy_status = ws_session_recv(v.get(), nullptr, 0);
    };
    ws::session b = ws::session::server(nullptr, bh);
    b.recv(upgrade_request);
    check::that(busy_status == WS_ERR_BUSY, "recv from inside a handler: WS_ERR_BUSY");
}

} // namespace

int main() {
    try {
        test_in_memory();
        test_server_over_socket();
        test_client_against_loop();
        test_tls_server_session();
        test_errors();
    } catch (const std::exception &e) {
        check::that(false, std::string("unexpected exception: ") + e.what());
    }
    return check::summary();
}
