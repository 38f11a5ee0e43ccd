/*
 * libws for C++17: a header-only wrapper over the C ABI in ws.h.
 *
 * - Every handle is a move-only RAII type: ws::conn, ws::dialer,
 *   ws::upgrader, ws::listener, ws::event_loop, ws::session (sans-IO),
 *   ws::response, ws::prepared_message, ws::buffer_pool, ws::reconnector,
 *   ws::tls_client_config, ws::tls_server_config. Lent objects (a
 *   connection in a loop callback, a session in its handlers, a handshake
 *   request or response, an error response) are views: ws::conn_view,
 *   ws::session_view, ws::request_view, ws::response_view,
 *   ws::error_response_view, ws::http_response_view.
 * - Text goes in and out as std::string_view, binary as ws::bytes_view.
 *   Views returned by reads follow the C zero-copy rules (README,
 *   "Conventions"): valid until the next read on the connection.
 * - Errors: each fallible operation comes twice. `x(...)` throws ws::error
 *   (status() and what()); `try_x(...)` returns ws::result<T> and never
 *   throws, for code built with -fno-exceptions (there `x(...)` aborts on
 *   an error instead of throwing).
 * - Loop and handler callbacks are any callables (lambdas). An exception
 *   escaping one is caught at the C boundary: a loop stops and run()/poll()
 *   rethrow it; a ping/pong/close handler's makes the read rethrow it.
 * - Timeouts are std::int64_t milliseconds: negative = no limit
 *   (ws::no_limit), 0 = do not wait.
 */
#ifndef WS_HPP_INCLUDED
#define WS_HPP_INCLUDED

#include "ws.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define WS_HPP_EXCEPTIONS 1
#define WS_HPP_TRY try
#define WS_HPP_CATCH_ALL(on_exception) catch (...) { on_exception; }
#else
#define WS_HPP_EXCEPTIONS 0
#define WS_HPP_TRY if (true)
#define WS_HPP_CATCH_ALL(on_exception) else {}
#endif

namespace ws {

/** A timeout meaning "no limit". */
inline constexpr std::int64_t no_limit = -1;

/** Message types (RFC 6455 opcodes). */
enum class msg_type : ws_msg_type {
    text = WS_TEXT,
    binary = WS_BINARY,
    close = WS_CLOSE,
    ping = WS_PING,
    pong = WS_PONG,
};

/** A read-only view of bytes (std::span is C++20). */
class bytes_view {
public:
    constexpr bytes_view() noexcept = default;
    constexpr bytes_view(const std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
    bytes_view(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    bytes_view(std::string_view s) noexcept : bytes_view(s.data(), s.size()) {}
    bytes_view(const std::string &s) noexcept : bytes_view(s.data(), s.size()) {}
    bytes_view(const std::vector<std::uint8_t> &v) noexcept : data_(v.data()), size_(v.size()) {}
    bytes_view(const char *s) = delete; /* say std::string_view to mean text */

    constexpr const std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t *begin() const noexcept { return data_; }
    constexpr const std::uint8_t *end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /** The same bytes as characters (for text messages). */
    std::string_view as_string() const noexcept {
        return std::string_view(reinterpret_cast<const char *>(data_), size_);
    }
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(begin(), end()); }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

/** A libws failure: the ws_status and the library's message. */
class error : public std::runtime_error {
public:
    error(ws_status status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(ws_status_str(status)) : message), status_(status) {}
    ws_status status() const noexcept { return status_; }

private:
    ws_status status_;
};

namespace detail {

/** Why the calling thread's last libws call failed. */
inline std::string last_error() {
    std::size_t n = ws_last_error(nullptr, 0);
    std::string s(n + 1, '\0');
    ws_last_error(&s[0], s.size());
    s.resize(n);
    return s;
}

[[noreturn]] inline void fail(ws_status status, const std::string &message) {
#if WS_HPP_EXCEPTIONS
    throw error(status, message);
#else
    std::fprintf(stderr, "libws: %s (%s)\n", message.c_str(), ws_status_str(status));
    std::abort();
#endif
}

[[noreturn]] inline void rethrow(const std::exception_ptr &e) {
#if WS_HPP_EXCEPTIONS
    std::rethrow_exception(e);
#else
    (void)e;
    std::abort();
#endif
}

} /* namespace detail */

/** A value or a failure (status and message); never throws until value(). */
template <class T>
class [[nodiscard]] result {
public:
    result(T value) : value_(std::move(value)), status_(WS_OK) {}
    result(ws_status status, std::string message) : status_(status), message_(std::move(message)) {}
    /** A failure with the calling thread's ws_last_error() message. */
    static result failure(ws_status status) { return result(status, detail::last_error()); }

    bool ok() const noexcept { return status_ == WS_OK; }
    explicit operator bool() const noexcept { return ok(); }
    ws_status status() const noexcept { return status_; }
    const std::string &message() const noexcept { return message_; }

    /** The value; throws ws::error (aborts without exceptions) on a failure. */
    T &value() & {
        check();
        return *value_;
    }
    T &&value() && {
        check();
        return std::move(*value_);
    }
    T *operator->() { return &value(); }
    T &operator*() & { return value(); }

private:
    void check() const {
        if (!ok()) detail::fail(status_, message_);
    }
    std::optional<T> value_;
    ws_status status_;
    std::string message_;
};

template <>
class [[nodiscard]] result<void> {
public:
    result() noexcept : status_(WS_OK) {}
    result(ws_status status, std::string message) : status_(status), message_(std::move(message)) {}
    static result failure(ws_status status) { return result(status, detail::last_error()); }
    /** WS_OK -> success; anything else -> a failure with ws_last_error(). */
    static result from(ws_status status) { return status == WS_OK ? result() : failure(status); }

    bool ok() const noexcept { return status_ == WS_OK; }
    explicit operator bool() const noexcept { return ok(); }
    ws_status status() const noexcept { return status_; }
    const std::string &message() const noexcept { return message_; }
    void value() const {
        if (!ok()) detail::fail(status_, message_);
    }

private:
    ws_status status_;
    std::string message_;
};

namespace detail {

/** Copies a string a C call writes into (buf, cap, len_out). */
template <class F>
inline result<std::string> copy_string(F &&call) {
    char small[128];
    std::size_t len = 0;
    ws_status st = call(small, sizeof small, &len);
    if (st == WS_OK) return std::string(small, len);
    if (st != WS_ERR_BUFFER_TOO_SMALL) return result<std::string>::failure(st);
    std::string s(len + 1, '\0');
    st = call(&s[0], s.size(), &len);
    if (st != WS_OK) return result<std::string>::failure(st);
    s.resize(len);
    return s;
}

inline std::vector<const char *> c_strings(const std::vector<std::string> &v) {
    std::vector<const char *> out;
    out.reserve(v.size());
    for (const std::string &s : v) out.push_back(s.c_str());
    return out;
}

/** Name/value pairs kept alive as NUL-terminated strings for one C call. */
class header_list {
public:
    explicit header_list(const std::vector<std::pair<std::string, std::string>> &h) : owned_(h) {
        for (const auto &p : owned_) c_.push_back(ws_header{p.first.c_str(), p.second.c_str()});
    }
    const ws_header *data() const noexcept { return c_.empty() ? nullptr : c_.data(); }
    std::size_t size() const noexcept { return c_.size(); }

private:
    std::vector<std::pair<std::string, std::string>> owned_;
    std::vector<ws_header> c_;
};

} /* namespace detail */

/** HTTP headers for a dial: (name, value) pairs. */
using headers = std::vector<std::pair<std::string, std::string>>;

/** A received message: type and payload (a view, see read()). */
struct message_view {
    msg_type type;
    bytes_view data;
    std::string_view text() const noexcept { return data.as_string(); }
};

/** permessage-deflate settings; the defaults of ws_compression_options_default(). */
inline ws_compression_options compression_defaults() noexcept { return ws_compression_options_default(); }

/** The process-wide memory budget for input not yet handed to the
 * application (bytes; 0 = none). See ws_set_memory_budget. */
inline result<void> try_set_memory_budget(std::uint64_t bytes) { return result<void>::from(ws_set_memory_budget(bytes)); }
inline void set_memory_budget(std::uint64_t bytes) { try_set_memory_budget(bytes).value(); }
inline std::uint64_t memory_budget() noexcept { return ws_memory_budget(); }
inline std::uint64_t memory_budget_used() noexcept { return ws_memory_budget_used(); }

/** A write buffer pool (gorilla's WriteBufferPool). */
class buffer_pool {
public:
    explicit buffer_pool(std::size_t buffer_size) : p_(ws_buffer_pool_new(buffer_size)) {
        if (!p_) detail::fail(WS_ERR_INVALID_ARGUMENT, detail::last_error());
    }
    buffer_pool(buffer_pool &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    buffer_pool &operator=(buffer_pool &&o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    buffer_pool(const buffer_pool &) = delete;
    buffer_pool &operator=(const buffer_pool &) = delete;
    ~buffer_pool() { ws_buffer_pool_free(p_); }
    ws_buffer_pool *get() const noexcept { return p_; }

private:
    ws_buffer_pool *p_;
};

/** A message encoded once and sent to many connections. */
class prepared_message {
public:
    static result<prepared_message> try_create(msg_type type, bytes_view data) {
        ws_prepared_message *pm = nullptr;
        ws_status st = ws_prepared_message_new(static_cast<ws_msg_type>(type), data.data(), data.size(), &pm);
        if (st != WS_OK) return result<prepared_message>::failure(st);
        return prepared_message(pm);
    }
    static prepared_message create(msg_type type, bytes_view data) { return try_create(type, data).value(); }
    static prepared_message text(std::string_view s) { return create(msg_type::text, s); }

    prepared_message(prepared_message &&o) noexcept : pm_(std::exchange(o.pm_, nullptr)) {}
    prepared_message &operator=(prepared_message &&o) noexcept {
        std::swap(pm_, o.pm_);
        return *this;
    }
    prepared_message(const prepared_message &) = delete;
    prepared_message &operator=(const prepared_message &) = delete;
    ~prepared_message() { ws_prepared_message_free(pm_); }
    const ws_prepared_message *get() const noexcept { return pm_; }

private:
    explicit prepared_message(ws_prepared_message *pm) noexcept : pm_(pm) {}
    ws_prepared_message *pm_;
};

/** One header of a request or response (views). */
struct header_view {
    std::string_view name;
    std::string_view value;
};

/**
 * A server's handshake answer the caller does not own: what a session's
 * on_open lends for the call, and the accessors of ws::response. Views
 * into it live as long as the answer does.
 */
class response_view {
public:
    explicit response_view(const ws_response *r = nullptr) noexcept : r_(r) {}
    explicit operator bool() const noexcept { return r_ != nullptr; }
    const ws_response *get() const noexcept { return r_; }
    std::uint16_t status() const noexcept { return ws_response_status(r_); }
    /** The first value of header `name` (case-insensitive), if present. */
    std::optional<std::string_view> header(const std::string &name) const {
        const std::uint8_t *v = nullptr;
        std::size_t n = 0;
        if (ws_response_header(r_, name.c_str(), &v, &n) != WS_OK) return std::nullopt;
        return std::string_view(reinterpret_cast<const char *>(v), n);
    }
    std::size_t header_count() const noexcept { return ws_response_header_count(r_); }
    std::optional<header_view> header_at(std::size_t i) const {
        const char *name = nullptr;
        const std::uint8_t *value = nullptr;
        std::size_t nl = 0, vl = 0;
        if (ws_response_header_at(r_, i, &name, &nl, &value, &vl) != WS_OK) return std::nullopt;
        return header_view{std::string_view(name, nl), std::string_view(reinterpret_cast<const char *>(value), vl)};
    }
    bytes_view body() const {
        const std::uint8_t *b = nullptr;
        std::size_t n = 0;
        if (ws_response_body(r_, &b, &n) != WS_OK) return bytes_view();
        return bytes_view(b, n);
    }

protected:
    const ws_response *r_;
};

/** The server's answer to a dial. Owned; views into it live as long as it. */
class response : public response_view {
public:
    explicit response(ws_response *r = nullptr) noexcept : response_view(r) {}
    response(response &&o) noexcept : response_view(std::exchange(o.r_, nullptr)) {}
    response &operator=(response &&o) noexcept {
        std::swap(r_, o.r_);
        return *this;
    }
    response(const response &) = delete;
    response &operator=(const response &) = delete;
    /* r_ came from a non-const ws_response* (the constructor), so casting it back is sound. */
    ~response() { ws_response_free(const_cast<ws_response *>(r_)); }
};

/** A client's handshake request, lent to a server callback for the call. */
class request_view {
public:
    explicit request_view(const ws_request *r) noexcept : r_(r) {}
    const ws_request *get() const noexcept { return r_; }
    std::string_view method() const { return str(ws_request_method); }
    std::string_view target() const { return str(ws_request_target); }
    std::optional<std::string_view> header(const std::string &name) const {
        const std::uint8_t *v = nullptr;
        std::size_t n = 0;
        if (ws_request_header(r_, name.c_str(), &v, &n) != WS_OK) return std::nullopt;
        return std::string_view(reinterpret_cast<const char *>(v), n);
    }
    std::size_t header_count() const noexcept { return ws_request_header_count(r_); }
    std::optional<header_view> header_at(std::size_t i) const {
        const char *name = nullptr;
        const std::uint8_t *value = nullptr;
        std::size_t nl = 0, vl = 0;
        if (ws_request_header_at(r_, i, &name, &nl, &value, &vl) != WS_OK) return std::nullopt;
        return header_view{std::string_view(name, nl), std::string_view(reinterpret_cast<const char *>(value), vl)};
    }
    /** Subprotocol number `i` the client asked for, in its order. */
    std::optional<std::string_view> subprotocol(std::size_t i) const {
        const char *p = nullptr;
        std::size_t n = 0;
        if (ws_request_subprotocol(r_, i, &p, &n) != WS_OK) return std::nullopt;
        return std::string_view(p, n);
    }
    std::string remote_addr() const {
        auto r = detail::copy_string([&](char *b, std::size_t c, std::size_t *l) { return ws_request_remote_addr(r_, b, c, l); });
        return r.ok() ? std::move(r).value() : std::string();
    }

private:
    template <class F>
    std::string_view str(F f) const {
        const char *p = nullptr;
        std::size_t n = 0;
        if (f(r_, &p, &n) != WS_OK) return std::string_view();
        return std::string_view(p, n);
    }
    const ws_request *r_;
};

/** An HTTP error response a server is about to send, lent to its error handler. */
class error_response_view {
public:
    explicit error_response_view(ws_error_response *r) noexcept : r_(r) {}
    std::uint16_t status() const noexcept { return ws_error_response_status(r_); }
    result<void> try_set_status(std::uint16_t s) { return result<void>::from(ws_error_response_set_status(r_, s)); }
    result<void> try_add_header(const std::string &name, const std::string &value) {
        return result<void>::from(ws_error_response_add_header(r_, name.c_str(), value.c_str()));
    }
    result<void> try_set_body(bytes_view body) {
        return result<void>::from(ws_error_response_set_body(r_, body.data(), body.size()));
    }
    void set_status(std::uint16_t s) { try_set_status(s).value(); }
    void add_header(const std::string &name, const std::string &value) { try_add_header(name, value).value(); }
    void set_body(bytes_view body) { try_set_body(body).value(); }

private:
    ws_error_response *r_;
};

/** The answer to a plain HTTP request, lent to the upgrader's HTTP handler. */
class http_response_view {
public:
    explicit http_response_view(ws_http_response *r) noexcept : r_(r) {}
    std::uint16_t status() const noexcept { return ws_http_response_status(r_); }
    result<void> try_set_status(std::uint16_t s) { return result<void>::from(ws_http_response_set_status(r_, s)); }
    result<void> try_add_header(const std::string &name, const std::string &value) {
        return result<void>::from(ws_http_response_add_header(r_, name.c_str(), value.c_str()));
    }
    result<void> try_set_body(bytes_view body) {
        return result<void>::from(ws_http_response_set_body(r_, body.data(), body.size()));
    }
    void set_status(std::uint16_t s) { try_set_status(s).value(); }
    void add_header(const std::string &name, const std::string &value) { try_add_header(name, value).value(); }
    void set_body(bytes_view body) { try_set_body(body).value(); }

private:
    ws_http_response *r_;
};

/**
 * A connection the caller does not own: what loop callbacks receive, and
 * the operations every connection has. Copyable; valid while the
 * connection's handle is (see README, "Conventions").
 */
class conn_view {
public:
    explicit conn_view(ws_conn *c = nullptr) noexcept : c_(c) {}
    ws_conn *get() const noexcept { return c_; }
    explicit operator bool() const noexcept { return c_ != nullptr; }
    friend bool operator==(conn_view a, conn_view b) noexcept { return a.c_ == b.c_; }
    friend bool operator!=(conn_view a, conn_view b) noexcept { return a.c_ != b.c_; }

    /* ---- sending (any thread) ---- */
    result<void> try_write(msg_type type, bytes_view data) const {
        return result<void>::from(ws_conn_write_message(c_, static_cast<ws_msg_type>(type), data.data(), data.size()));
    }
    result<void> try_send_text(std::string_view s) const { return try_write(msg_type::text, s); }
    result<void> try_send_binary(bytes_view b) const { return try_write(msg_type::binary, b); }
    result<void> try_write_prepared(const prepared_message &pm) const {
        return result<void>::from(ws_conn_write_prepared(c_, pm.get()));
    }
    result<void> try_ping(bytes_view payload = {}, std::int64_t timeout_ms = no_limit) const {
        return result<void>::from(ws_conn_write_control(c_, WS_PING, payload.data(), payload.size(), timeout_ms));
    }
    result<void> try_pong(bytes_view payload = {}, std::int64_t timeout_ms = no_limit) const {
        return result<void>::from(ws_conn_write_control(c_, WS_PONG, payload.data(), payload.size(), timeout_ms));
    }
    result<void> try_flush() const { return result<void>::from(ws_conn_flush(c_)); }
    void write(msg_type type, bytes_view data) const { try_write(type, data).value(); }
    void send_text(std::string_view s) const { try_send_text(s).value(); }
    void send_binary(bytes_view b) const { try_send_binary(b).value(); }
    void write_prepared(const prepared_message &pm) const { try_write_prepared(pm).value(); }
    void ping(bytes_view payload = {}, std::int64_t timeout_ms = no_limit) const { try_ping(payload, timeout_ms).value(); }
    void pong(bytes_view payload = {}, std::int64_t timeout_ms = no_limit) const { try_pong(payload, timeout_ms).value(); }
    void flush() const { try_flush().value(); }

    /* ---- streaming writer ---- */
    result<void> try_next_writer(msg_type type) const {
        return result<void>::from(ws_conn_next_writer(c_, static_cast<ws_msg_type>(type)));
    }
    result<void> try_writer_write(bytes_view data) const {
        return result<void>::from(ws_conn_writer_write(c_, data.data(), data.size()));
    }
    result<void> try_writer_close() const { return result<void>::from(ws_conn_writer_close(c_)); }
    void next_writer(msg_type type) const { try_next_writer(type).value(); }
    void writer_write(bytes_view data) const { try_writer_write(data).value(); }
    void writer_close() const { try_writer_close().value(); }

    /* ---- closing ---- */
    /**
     * The close handshake (blocking connections wait up to `timeout_ms`
     * for the peer's close, reading meanwhile: this invalidates views from
     * read()). On a loop connection it queues the close and returns.
     */
    result<void> try_close_graceful(std::uint16_t code = WS_CLOSE_NORMAL, std::string_view reason = {},
                                    std::int64_t timeout_ms = no_limit) const {
        return result<void>::from(ws_conn_close_graceful(
            c_, code, reinterpret_cast<const std::uint8_t *>(reason.data()), reason.size(), timeout_ms));
    }
    void close_graceful(std::uint16_t code = WS_CLOSE_NORMAL, std::string_view reason = {},
                        std::int64_t timeout_ms = no_limit) const {
        try_close_graceful(code, reason, timeout_ms).value();
    }
    /** Closes the socket at once (wakes blocked calls on other threads). */
    void close() const noexcept { (void)ws_conn_close(c_); }

    /* ---- state (any thread) ---- */
    /** The close code that ended the connection, 0 while it has not ended. */
    std::uint16_t close_code() const noexcept { return ws_conn_close_code(c_); }
    std::string close_reason() const {
        auto r = detail::copy_string([&](char *b, std::size_t c, std::size_t *l) { return ws_conn_close_reason(c_, b, c, l); });
        return r.ok() ? std::move(r).value() : std::string();
    }
    std::string_view subprotocol() const noexcept {
        const char *s = ws_conn_subprotocol(c_);
        return s ? std::string_view(s) : std::string_view();
    }
    std::string local_addr() const {
        auto r = detail::copy_string([&](char *b, std::size_t c, std::size_t *l) { return ws_conn_local_addr(c_, b, c, l); });
        return r.ok() ? std::move(r).value() : std::string();
    }
    std::string remote_addr() const {
        auto r = detail::copy_string([&](char *b, std::size_t c, std::size_t *l) { return ws_conn_remote_addr(c_, b, c, l); });
        return r.ok() ? std::move(r).value() : std::string();
    }
    int fd() const noexcept { return ws_conn_fd(c_); }
    bool is_loop() const noexcept { return ws_conn_is_loop(c_); }
    bool compression_negotiated() const noexcept { return ws_conn_compression_negotiated(c_); }
    /** Whether the connection runs over TLS (wss://). */
    bool is_tls() const noexcept { return ws_conn_is_tls(c_); }
    /**
     * Certificate `index` (0 = the peer's own, then its chain), DER; empty
     * when there is none (no TLS, no client certificate, past the chain).
     */
    std::vector<std::uint8_t> tls_peer_certificate(std::size_t index = 0) const {
        std::size_t n = 0;
        ws_status st = ws_conn_tls_peer_certificate(c_, index, nullptr, 0, &n);
        if (st != WS_OK && st != WS_ERR_BUFFER_TOO_SMALL) return {};
        std::vector<std::uint8_t> der(n);
        if (ws_conn_tls_peer_certificate(c_, index, der.data(), der.size(), &n) != WS_OK) return {};
        der.resize(n);
        return der;
    }
    std::size_t buffered_amount() const noexcept { return ws_conn_buffered_amount(c_); }
    /** The message of the last error a call on this connection returned. */
    std::string last_error() const {
        std::size_t n = ws_conn_last_error(c_, nullptr, 0);
        std::string s(n + 1, '\0');
        ws_conn_last_error(c_, &s[0], s.size());
        s.resize(n);
        return s;
    }

    /* ---- settings ---- */
    result<void> try_set_read_deadline(std::int64_t timeout_ms) const {
        return result<void>::from(ws_conn_set_read_deadline(c_, timeout_ms));
    }
    result<void> try_set_write_deadline(std::int64_t timeout_ms) const {
        return result<void>::from(ws_conn_set_write_deadline(c_, timeout_ms));
    }
    result<void> try_set_read_limit(std::uint64_t limit) const {
        return result<void>::from(ws_conn_set_read_limit(c_, limit));
    }
    /** The longest single wait for the socket (ms; ws::no_limit = none): an idle / stall timeout. */
    result<void> try_set_read_timeout(std::int64_t timeout_ms) const {
        return result<void>::from(ws_conn_set_read_timeout(c_, timeout_ms));
    }
    result<void> try_set_write_timeout(std::int64_t timeout_ms) const {
        return result<void>::from(ws_conn_set_write_timeout(c_, timeout_ms));
    }
    void set_read_timeout(std::int64_t timeout_ms) const { try_set_read_timeout(timeout_ms).value(); }
    void set_write_timeout(std::int64_t timeout_ms) const { try_set_write_timeout(timeout_ms).value(); }
    result<void> try_pause_reading(bool paused) const { return result<void>::from(ws_conn_pause_reading(c_, paused)); }
    result<void> try_enable_write_compression(bool on) const {
        return result<void>::from(ws_conn_enable_write_compression(c_, on));
    }
    result<void> try_set_compression_level(int level) const {
        return result<void>::from(ws_conn_set_compression_level(c_, level));
    }
    result<void> try_set_compression_threshold(std::size_t bytes) const {
        return result<void>::from(ws_conn_set_compression_threshold(c_, bytes));
    }
    void set_compression_threshold(std::size_t bytes) const { try_set_compression_threshold(bytes).value(); }
    void set_read_deadline(std::int64_t timeout_ms) const { try_set_read_deadline(timeout_ms).value(); }
    void set_write_deadline(std::int64_t timeout_ms) const { try_set_write_deadline(timeout_ms).value(); }
    void set_read_limit(std::uint64_t limit) const { try_set_read_limit(limit).value(); }
    void pause_reading(bool paused) const { try_pause_reading(paused).value(); }
    void enable_write_compression(bool on) const { try_enable_write_compression(on).value(); }
    void set_compression_level(int level) const { try_set_compression_level(level).value(); }

protected:
    ws_conn *c_;
};

class conn;

namespace detail {

/** Ping/pong/close handlers of an owned connection (stable address). */
struct conn_handlers {
    std::function<void(conn_view, bytes_view)> on_ping;
    std::function<void(conn_view, bytes_view)> on_pong;
    std::function<void(conn_view, std::uint16_t, std::string_view)> on_close;
    std::exception_ptr pending;

    static ws_status ping(ws_conn *c, const std::uint8_t *d, std::size_t n, void *ud) {
        return call(ud, [&](conn_handlers &h) { h.on_ping(conn_view(c), bytes_view(d, n)); });
    }
    static ws_status pong(ws_conn *c, const std::uint8_t *d, std::size_t n, void *ud) {
        return call(ud, [&](conn_handlers &h) { h.on_pong(conn_view(c), bytes_view(d, n)); });
    }
    static ws_status close(ws_conn *c, std::uint16_t code, const std::uint8_t *r, std::size_t n, void *ud) {
        return call(ud, [&](conn_handlers &h) {
            h.on_close(conn_view(c), code, std::string_view(reinterpret_cast<const char *>(r), n));
        });
    }
    template <class F>
    static ws_status call(void *ud, F &&f) {
        conn_handlers &h = *static_cast<conn_handlers *>(ud);
        WS_HPP_TRY {
            f(h);
            return WS_OK;
        }
        WS_HPP_CATCH_ALL(h.pending = std::current_exception(); return WS_ERR_HANDLER)
        return WS_ERR_HANDLER;
    }
};

} /* namespace detail */

/**
 * An owned connection: a blocking one from ws::dial / listener::accept,
 * or a loop connection kept past its close callback with
 * conn_view::retain(). The destructor frees the handle (ws_conn_free).
 * Reads are for blocking connections; one thread reads at a time, any
 * thread may send.
 */
class conn : public conn_view {
public:
    conn() noexcept = default;
    /** Takes ownership of a handle from the C API. */
    explicit conn(ws_conn *c) noexcept : conn_view(c) {}
    conn(conn &&o) noexcept : conn_view(std::exchange(o.c_, nullptr)), handlers_(std::move(o.handlers_)) {}
    conn &operator=(conn &&o) noexcept {
        std::swap(c_, o.c_);
        std::swap(handlers_, o.handlers_);
        return *this;
    }
    conn(const conn &) = delete;
    conn &operator=(const conn &) = delete;
    ~conn() { ws_conn_free(c_); }
    /** Gives up ownership without freeing. */
    ws_conn *release() noexcept { return std::exchange(c_, nullptr); }

    /**
     * The next whole message. The payload is a view owned by the
     * connection, valid until the next read call (read, read_copy,
     * next_reader, reader_read, close_graceful) or the connection's end.
     */
    result<message_view> try_read() {
        ws_msg_type t = 0;
        const std::uint8_t *d = nullptr;
        std::size_t n = 0;
        ws_status st = ws_conn_read_message(c_, &t, &d, &n);
        if (st != WS_OK) return read_failure<message_view>(st);
        return message_view{static_cast<msg_type>(t), bytes_view(d, n)};
    }
    message_view read() { return try_read().value(); }
    /** The next whole message as an owned std::string (text or binary bytes). */
    result<std::pair<msg_type, std::string>> try_read_string() {
        auto m = try_read();
        if (!m) return {m.status(), m.message()};
        return std::make_pair(m->type, std::string(m->text()));
    }
    std::pair<msg_type, std::string> read_string() { return try_read_string().value(); }

    /** Starts reading the next message in pieces; returns its type. */
    result<msg_type> try_next_reader() {
        ws_msg_type t = 0;
        ws_status st = ws_conn_next_reader(c_, &t);
        if (st != WS_OK) return read_failure<msg_type>(st);
        return static_cast<msg_type>(t);
    }
    /** Reads up to `cap` bytes of the current message into `buf`; 0 = its end. */
    result<std::size_t> try_reader_read(std::uint8_t *buf, std::size_t cap) {
        std::size_t n = 0;
        ws_status st = ws_conn_reader_read(c_, buf, cap, &n);
        if (st != WS_OK) return read_failure<std::size_t>(st);
        return n;
    }
    msg_type next_reader() { return try_next_reader().value(); }
    std::size_t reader_read(std::uint8_t *buf, std::size_t cap) { return try_reader_read(buf, cap).value(); }

    /**
     * Handlers for received pings, pongs and close frames, run on the
     * reading thread (an empty function restores the default). A custom
     * ping handler replaces the automatic pong; a close handler replaces
     * the automatic close reply (call default_close_reply to keep it). An
     * exception from a handler is rethrown by the read that ran it.
     * Set them before sharing the connection with other threads.
     */
    result<void> try_on_ping(std::function<void(conn_view, bytes_view)> f) {
        auto &h = handlers();
        h.on_ping = std::move(f);
        return result<void>::from(ws_conn_set_ping_handler(c_, h.on_ping ? &detail::conn_handlers::ping : nullptr, &h));
    }
    result<void> try_on_pong(std::function<void(conn_view, bytes_view)> f) {
        auto &h = handlers();
        h.on_pong = std::move(f);
        return result<void>::from(ws_conn_set_pong_handler(c_, h.on_pong ? &detail::conn_handlers::pong : nullptr, &h));
    }
    result<void> try_on_close(std::function<void(conn_view, std::uint16_t, std::string_view)> f) {
        auto &h = handlers();
        h.on_close = std::move(f);
        return result<void>::from(
            ws_conn_set_close_handler(c_, h.on_close ? &detail::conn_handlers::close : nullptr, &h));
    }
    void on_ping(std::function<void(conn_view, bytes_view)> f) { try_on_ping(std::move(f)).value(); }
    void on_pong(std::function<void(conn_view, bytes_view)> f) { try_on_pong(std::move(f)).value(); }
    void on_close(std::function<void(conn_view, std::uint16_t, std::string_view)> f) {
        try_on_close(std::move(f)).value();
    }
    /** What the default close handler does: answer with the same code. */
    static void default_close_reply(conn_view c, std::uint16_t code, std::string_view reason) {
        (void)ws_conn_default_close_handler(c.get(), code, reinterpret_cast<const std::uint8_t *>(reason.data()),
                                            reason.size(), nullptr);
    }

private:
    detail::conn_handlers &handlers() {
        if (!handlers_) handlers_ = std::make_unique<detail::conn_handlers>();
        return *handlers_;
    }
    template <class T>
    result<T> read_failure(ws_status st) {
        if (st == WS_ERR_HANDLER && handlers_ && handlers_->pending) {
            std::exception_ptr e = std::exchange(handlers_->pending, nullptr);
            detail::rethrow(e);
        }
        return result<T>::failure(st);
    }
    std::unique_ptr<detail::conn_handlers> handlers_;
};

/** Keeps a loop connection's handle valid past its close callback. */
inline result<conn> try_retain(conn_view c) {
    ws_status st = ws_conn_retain(c.get());
    if (st != WS_OK) return result<conn>::failure(st);
    return conn(c.get());
}
inline conn retain(conn_view c) { return try_retain(c).value(); }

/**
 * Client TLS settings (trust, client certificate, lowest version). A
 * dialer copies them (`dialer::set_tls`), so they may be changed or
 * destroyed afterwards. Not thread-safe while being changed.
 */
class tls_client_config {
public:
    tls_client_config() : c_(ws_tls_client_config_new()) {}
    tls_client_config(tls_client_config &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    tls_client_config &operator=(tls_client_config &&o) noexcept {
        std::swap(c_, o.c_);
        return *this;
    }
    tls_client_config(const tls_client_config &) = delete;
    tls_client_config &operator=(const tls_client_config &) = delete;
    ~tls_client_config() { ws_tls_client_config_free(c_); }
    const ws_tls_client_config *get() const noexcept { return c_; }

    /** Trusts the CAs in a PEM file (the system store then only with use_system_roots(true)). */
    result<void> try_add_ca_file(const std::string &path) {
        return result<void>::from(ws_tls_client_config_add_ca_file(c_, path.c_str()));
    }
    result<void> try_add_ca_pem(bytes_view pem) {
        return result<void>::from(ws_tls_client_config_add_ca_pem(c_, pem.data(), pem.size()));
    }
    result<void> try_use_system_roots(bool on) {
        return result<void>::from(ws_tls_client_config_use_system_roots(c_, on));
    }
    /** A client certificate chain and key (PEM files) for servers that ask. */
    result<void> try_set_certificate_files(const std::string &cert_path, const std::string &key_path) {
        return result<void>::from(ws_tls_client_config_set_certificate_files(c_, cert_path.c_str(), key_path.c_str()));
    }
    result<void> try_set_certificate_pem(bytes_view cert_pem, bytes_view key_pem) {
        return result<void>::from(ws_tls_client_config_set_certificate_pem(c_, cert_pem.data(), cert_pem.size(),
                                                                           key_pem.data(), key_pem.size()));
    }
    /** WS_TLS_1_2 (default) or WS_TLS_1_3. */
    result<void> try_set_min_version(std::int32_t version) {
        return result<void>::from(ws_tls_client_config_set_min_version(c_, version));
    }
    /** FOR TEST SETUPS ONLY (see ws_tls_client_config_insecure_skip_hostname_verification). */
    result<void> try_insecure_skip_hostname_verification(bool skip) {
        return result<void>::from(ws_tls_client_config_insecure_skip_hostname_verification(c_, skip));
    }
    tls_client_config &add_ca_file(const std::string &p) { return done(try_add_ca_file(p)); }
    tls_client_config &add_ca_pem(bytes_view pem) { return done(try_add_ca_pem(pem)); }
    tls_client_config &use_system_roots(bool on) { return done(try_use_system_roots(on)); }
    tls_client_config &set_certificate_files(const std::string &c, const std::string &k) {
        return done(try_set_certificate_files(c, k));
    }
    tls_client_config &set_certificate_pem(bytes_view c, bytes_view k) { return done(try_set_certificate_pem(c, k)); }
    tls_client_config &set_min_version(std::int32_t v) { return done(try_set_min_version(v)); }
    tls_client_config &insecure_skip_hostname_verification(bool skip) {
        return done(try_insecure_skip_hostname_verification(skip));
    }

private:
    tls_client_config &done(result<void> r) {
        r.value();
        return *this;
    }
    ws_tls_client_config *c_;
};

/**
 * Server TLS settings: a certificate chain and key, client authentication,
 * lowest version. Upgraders share them (`upgrader::set_tls`): replacing
 * the certificate (any thread) reaches every upgrader and listener using
 * them, for new handshakes.
 */
class tls_server_config {
public:
    static result<tls_server_config> try_from_files(const std::string &cert_path, const std::string &key_path) {
        ws_tls_server_config *c = nullptr;
        ws_status st = ws_tls_server_config_new_files(cert_path.c_str(), key_path.c_str(), &c);
        if (st != WS_OK) return result<tls_server_config>::failure(st);
        return tls_server_config(c);
    }
    static result<tls_server_config> try_from_pem(bytes_view cert_pem, bytes_view key_pem) {
        ws_tls_server_config *c = nullptr;
        ws_status st = ws_tls_server_config_new_pem(cert_pem.data(), cert_pem.size(), key_pem.data(), key_pem.size(), &c);
        if (st != WS_OK) return result<tls_server_config>::failure(st);
        return tls_server_config(c);
    }
    static tls_server_config from_files(const std::string &c, const std::string &k) {
        return try_from_files(c, k).value();
    }
    static tls_server_config from_pem(bytes_view c, bytes_view k) { return try_from_pem(c, k).value(); }

    tls_server_config(tls_server_config &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    tls_server_config &operator=(tls_server_config &&o) noexcept {
        std::swap(c_, o.c_);
        return *this;
    }
    tls_server_config(const tls_server_config &) = delete;
    tls_server_config &operator=(const tls_server_config &) = delete;
    ~tls_server_config() { ws_tls_server_config_free(c_); }
    const ws_tls_server_config *get() const noexcept { return c_; }

    /** New handshakes use this certificate; on failure the old one stays. Any thread. */
    result<void> try_replace_certificate_files(const std::string &cert_path, const std::string &key_path) const {
        return result<void>::from(ws_tls_server_config_replace_certificate_files(c_, cert_path.c_str(), key_path.c_str()));
    }
    result<void> try_replace_certificate_pem(bytes_view cert_pem, bytes_view key_pem) const {
        return result<void>::from(ws_tls_server_config_replace_certificate_pem(c_, cert_pem.data(), cert_pem.size(),
                                                                               key_pem.data(), key_pem.size()));
    }
    /** WS_TLS_CLIENT_AUTH_* with the CAs of a PEM file (empty path only with WS_TLS_CLIENT_AUTH_NONE). */
    result<void> try_set_client_auth(std::int32_t mode, const std::string &ca_path = {}) {
        return result<void>::from(
            ws_tls_server_config_set_client_auth(c_, mode, ca_path.empty() ? nullptr : ca_path.c_str()));
    }
    result<void> try_set_min_version(std::int32_t version) {
        return result<void>::from(ws_tls_server_config_set_min_version(c_, version));
    }
    void replace_certificate_files(const std::string &c, const std::string &k) const {
        try_replace_certificate_files(c, k).value();
    }
    void replace_certificate_pem(bytes_view c, bytes_view k) const { try_replace_certificate_pem(c, k).value(); }
    tls_server_config &set_client_auth(std::int32_t mode, const std::string &ca_path = {}) {
        try_set_client_auth(mode, ca_path).value();
        return *this;
    }
    tls_server_config &set_min_version(std::int32_t v) {
        try_set_min_version(v).value();
        return *this;
    }

private:
    explicit tls_server_config(ws_tls_server_config *c) noexcept : c_(c) {}
    ws_tls_server_config *c_;
};

/** Client settings (gorilla's Dialer). */
class dialer {
public:
    dialer() : d_(ws_dialer_new()) {}
    dialer(dialer &&o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    dialer &operator=(dialer &&o) noexcept {
        std::swap(d_, o.d_);
        return *this;
    }
    dialer(const dialer &) = delete;
    dialer &operator=(const dialer &) = delete;
    ~dialer() { ws_dialer_free(d_); }
    const ws_dialer *get() const noexcept { return d_; }

    result<void> try_set_subprotocols(const std::vector<std::string> &protocols) {
        auto c = detail::c_strings(protocols);
        return result<void>::from(ws_dialer_set_subprotocols(d_, c.data(), c.size()));
    }
    result<void> try_add_header(const std::string &name, const std::string &value) {
        return result<void>::from(ws_dialer_add_header(d_, name.c_str(), value.c_str()));
    }
    result<void> try_set_handshake_timeout(std::int64_t timeout_ms) {
        return result<void>::from(ws_dialer_set_handshake_timeout(d_, timeout_ms));
    }
    result<void> try_set_buffer_sizes(std::size_t read_size, std::size_t write_size) {
        return result<void>::from(ws_dialer_set_buffer_sizes(d_, read_size, write_size));
    }
    result<void> try_set_write_buffer_pool(const buffer_pool *pool) {
        return result<void>::from(ws_dialer_set_write_buffer_pool(d_, pool ? pool->get() : nullptr));
    }
    result<void> try_set_compression(const std::optional<ws_compression_options> &opts) {
        return result<void>::from(ws_dialer_set_compression(d_, opts ? &*opts : nullptr));
    }
    result<void> try_set_read_limit(std::uint64_t limit) {
        return result<void>::from(ws_dialer_set_read_limit(d_, limit));
    }
    /** Read and write timeouts of the connections it makes (ms; ws::no_limit = none, the default). */
    result<void> try_set_timeouts(std::int64_t read_ms, std::int64_t write_ms) {
        return result<void>::from(ws_dialer_set_timeouts(d_, read_ms, write_ms));
    }
    dialer &set_timeouts(std::int64_t r, std::int64_t w) { return done(try_set_timeouts(r, w)); }
    dialer &set_subprotocols(const std::vector<std::string> &p) { return done(try_set_subprotocols(p)); }
    dialer &add_header(const std::string &n, const std::string &v) { return done(try_add_header(n, v)); }
    dialer &set_handshake_timeout(std::int64_t ms) { return done(try_set_handshake_timeout(ms)); }
    dialer &set_buffer_sizes(std::size_t r, std::size_t w) { return done(try_set_buffer_sizes(r, w)); }
    dialer &set_write_buffer_pool(const buffer_pool *p) { return done(try_set_write_buffer_pool(p)); }
    dialer &set_compression(const std::optional<ws_compression_options> &o) { return done(try_set_compression(o)); }
    dialer &set_read_limit(std::uint64_t l) { return done(try_set_read_limit(l)); }
    /** A copy of `config` for wss:// targets and HTTPS proxies (nullptr: the defaults). */
    result<void> try_set_tls(const tls_client_config *config) {
        return result<void>::from(ws_dialer_set_tls(d_, config ? config->get() : nullptr));
    }
    /** A proxy URL (http://, https://, socks5://, socks5h://); "" = direct; std::nullopt = the environment's. */
    result<void> try_set_proxy(const std::optional<std::string> &url) {
        return result<void>::from(ws_dialer_set_proxy(d_, url ? url->c_str() : nullptr));
    }
    result<void> try_add_proxy_header(const std::string &name, const std::string &value) {
        return result<void>::from(ws_dialer_add_proxy_header(d_, name.c_str(), value.c_str()));
    }
    dialer &set_tls(const tls_client_config *c) { return done(try_set_tls(c)); }
    dialer &set_proxy(const std::optional<std::string> &url) { return done(try_set_proxy(url)); }
    dialer &add_proxy_header(const std::string &n, const std::string &v) { return done(try_add_proxy_header(n, v)); }

    /**
     * Performs the handshake over `fd`, a TCP socket the caller connected
     * (libws owns it from the call on, closed on failure too); `url` gives
     * the Host header and path (TLS runs for wss://). Blocking.
     */
    result<conn> try_dial_fd(int fd, const std::string &url, const headers &extra = {}, response *resp = nullptr) const {
        detail::header_list h(extra);
        ws_conn *c = nullptr;
        ws_response *r = nullptr;
        ws_status st = ws_dial_fd(d_, fd, url.c_str(), h.data(), h.size(), &c, resp ? &r : nullptr);
        if (resp) *resp = response(r);
        if (st != WS_OK) return result<conn>::failure(st);
        return conn(c);
    }
    conn dial_fd(int fd, const std::string &url, const headers &extra = {}, response *resp = nullptr) const {
        return try_dial_fd(fd, url, extra, resp).value();
    }

    /**
     * Connects and performs the handshake. `resp`, when given, receives
     * the server's answer on success and on WS_ERR_BAD_HANDSHAKE.
     */
    result<conn> try_dial(const std::string &url, const headers &extra = {}, response *resp = nullptr) const {
        detail::header_list h(extra);
        ws_conn *c = nullptr;
        ws_response *r = nullptr;
        ws_status st = ws_dial(d_, url.c_str(), h.data(), h.size(), &c, resp ? &r : nullptr);
        if (resp) *resp = response(r);
        if (st != WS_OK) return result<conn>::failure(st);
        return conn(c);
    }
    conn dial(const std::string &url, const headers &extra = {}, response *resp = nullptr) const {
        return try_dial(url, extra, resp).value();
    }

private:
    dialer &done(result<void> r) {
        r.value();
        return *this;
    }
    ws_dialer *d_;
};

/** Dials with the default settings. */
inline result<conn> try_dial(const std::string &url, const headers &extra = {}) {
    detail::header_list h(extra);
    ws_conn *c = nullptr;
    ws_status st = ws_dial(nullptr, url.c_str(), h.data(), h.size(), &c, nullptr);
    if (st != WS_OK) return result<conn>::failure(st);
    return conn(c);
}
inline conn dial(const std::string &url, const headers &extra = {}) { return try_dial(url, extra).value(); }

namespace detail {

/** An upgrader's callables; shared with listeners made from it. */
struct upgrader_callbacks {
    std::function<bool(request_view)> check_origin;
    std::function<void(std::optional<request_view>, error_response_view)> on_error;
    std::function<void(request_view, bytes_view, http_response_view)> on_http;

    static bool check(const ws_request *r, void *ud) {
        auto &cb = *static_cast<upgrader_callbacks *>(ud);
        WS_HPP_TRY { return cb.check_origin(request_view(r)); }
        WS_HPP_CATCH_ALL(return false)
        return false;
    }
    static void error(const ws_request *r, ws_error_response *resp, void *ud) {
        auto &cb = *static_cast<upgrader_callbacks *>(ud);
        WS_HPP_TRY {
            cb.on_error(r ? std::optional<request_view>(request_view(r)) : std::nullopt, error_response_view(resp));
        }
        WS_HPP_CATCH_ALL((void)0)
    }
    static void http(const ws_request *r, const std::uint8_t *body, std::size_t len, ws_http_response *resp, void *ud) {
        auto &cb = *static_cast<upgrader_callbacks *>(ud);
        WS_HPP_TRY { cb.on_http(request_view(r), bytes_view(body, len), http_response_view(resp)); }
        /* A handler that throws answers 500 (whatever it set before). */
        WS_HPP_CATCH_ALL((void)ws_http_response_set_status(resp, 500))
    }
};

} /* namespace detail */

/**
 * Server handshake settings (gorilla's Upgrader). Listeners take a
 * snapshot of them (and share its callables, which live as long as the
 * last of the upgrader and its listeners). A callback that throws refuses
 * the request (check_origin) or leaves the response as it was (on_error).
 */
class upgrader {
public:
    upgrader() : u_(ws_upgrader_new()), cb_(std::make_shared<detail::upgrader_callbacks>()) {}
    upgrader(upgrader &&o) noexcept : u_(std::exchange(o.u_, nullptr)), cb_(std::move(o.cb_)) {}
    upgrader &operator=(upgrader &&o) noexcept {
        std::swap(u_, o.u_);
        std::swap(cb_, o.cb_);
        return *this;
    }
    upgrader(const upgrader &) = delete;
    upgrader &operator=(const upgrader &) = delete;
    ~upgrader() { ws_upgrader_free(u_); }
    const ws_upgrader *get() const noexcept { return u_; }
    /** The callables the C settings point at (keep them alive with a listener). */
    std::shared_ptr<void> callbacks() const noexcept { return cb_; }

    result<void> try_set_subprotocols(const std::vector<std::string> &protocols) {
        auto c = detail::c_strings(protocols);
        return result<void>::from(ws_upgrader_set_subprotocols(u_, c.data(), c.size()));
    }
    /** Decides whether to accept a request; an empty function restores the same-origin check. */
    result<void> try_set_check_origin(std::function<bool(request_view)> f) {
        cb_->check_origin = std::move(f);
        return result<void>::from(ws_upgrader_set_check_origin(
            u_, cb_->check_origin ? &detail::upgrader_callbacks::check : nullptr, cb_.get()));
    }
    result<void> try_set_error_handler(std::function<void(std::optional<request_view>, error_response_view)> f) {
        cb_->on_error = std::move(f);
        return result<void>::from(ws_upgrader_set_error_handler(
            u_, cb_->on_error ? &detail::upgrader_callbacks::error : nullptr, cb_.get()));
    }
    /**
     * Answers plain HTTP requests on the WebSocket port (see
     * ws_upgrader_set_http_handler); runs on the accepting / loop thread.
     * An empty function removes the handler. A handler that throws
     * answers 500.
     */
    result<void> try_set_http_handler(std::function<void(request_view, bytes_view, http_response_view)> f) {
        cb_->on_http = std::move(f);
        return result<void>::from(
            ws_upgrader_set_http_handler(u_, cb_->on_http ? &detail::upgrader_callbacks::http : nullptr, cb_.get()));
    }
    /** Serves TLS with `config` (shared, see tls_server_config); nullptr: plain TCP. */
    result<void> try_set_tls(const tls_server_config *config) {
        return result<void>::from(ws_upgrader_set_tls(u_, config ? config->get() : nullptr));
    }
    result<void> try_add_response_header(const std::string &name, const std::string &value) {
        return result<void>::from(ws_upgrader_add_response_header(u_, name.c_str(), value.c_str()));
    }
    result<void> try_set_handshake_timeout(std::int64_t timeout_ms) {
        return result<void>::from(ws_upgrader_set_handshake_timeout(u_, timeout_ms));
    }
    result<void> try_set_buffer_sizes(std::size_t read_size, std::size_t write_size) {
        return result<void>::from(ws_upgrader_set_buffer_sizes(u_, read_size, write_size));
    }
    result<void> try_set_write_buffer_pool(const buffer_pool *pool) {
        return result<void>::from(ws_upgrader_set_write_buffer_pool(u_, pool ? pool->get() : nullptr));
    }
    result<void> try_set_compression(const std::optional<ws_compression_options> &opts) {
        return result<void>::from(ws_upgrader_set_compression(u_, opts ? &*opts : nullptr));
    }
    result<void> try_set_read_limit(std::uint64_t limit) {
        return result<void>::from(ws_upgrader_set_read_limit(u_, limit));
    }
    /** Read (idle) and write timeouts of accepted blocking connections (ms; default 60000 / 10000). */
    result<void> try_set_timeouts(std::int64_t read_ms, std::int64_t write_ms) {
        return result<void>::from(ws_upgrader_set_timeouts(u_, read_ms, write_ms));
    }
    /** A memory budget of its own for the connections it accepts (bytes; 0 = none). */
    result<void> try_set_memory_budget(std::uint64_t bytes) {
        return result<void>::from(ws_upgrader_set_memory_budget(u_, bytes));
    }
    /** How long a connection refused memory may wait before it is closed (1009/1008); ms, ws::no_limit = none. */
    result<void> try_set_budget_wait(std::int64_t timeout_ms) {
        return result<void>::from(ws_upgrader_set_budget_wait(u_, timeout_ms));
    }
    /** Bytes its connections hold against its budget now. */
    std::uint64_t memory_budget_used() const noexcept { return ws_upgrader_memory_budget_used(u_); }
    upgrader &set_timeouts(std::int64_t r, std::int64_t w) { return done(try_set_timeouts(r, w)); }
    upgrader &set_memory_budget(std::uint64_t b) { return done(try_set_memory_budget(b)); }
    upgrader &set_budget_wait(std::int64_t ms) { return done(try_set_budget_wait(ms)); }
    /**
     * Upgrades a TCP socket the caller's own HTTP server accepted, given
     * the bytes it already read from it; libws owns `fd` from then on
     * (closed on failure too). A refused request has had its HTTP error
     * sent (WS_ERR_HANDSHAKE_REJECTED). The connection's callables (check
     * origin, error handler) are this upgrader's: keep it alive meanwhile.
     */
    result<conn> try_upgrade_fd(int fd, bytes_view request_bytes, const headers &extra = {}) const {
        detail::header_list h(extra);
        ws_conn *c = nullptr;
        ws_status st = ws_upgrader_upgrade_fd(u_, fd, request_bytes.data(), request_bytes.size(), h.data(), h.size(), &c);
        if (st != WS_OK) return result<conn>::failure(st);
        return conn(c);
    }
    conn upgrade_fd(int fd, bytes_view request_bytes, const headers &extra = {}) const {
        return try_upgrade_fd(fd, request_bytes, extra).value();
    }

    upgrader &set_subprotocols(const std::vector<std::string> &p) { return done(try_set_subprotocols(p)); }
    upgrader &set_check_origin(std::function<bool(request_view)> f) { return done(try_set_check_origin(std::move(f))); }
    upgrader &set_error_handler(std::function<void(std::optional<request_view>, error_response_view)> f) {
        return done(try_set_error_handler(std::move(f)));
    }
    upgrader &add_response_header(const std::string &n, const std::string &v) {
        return done(try_add_response_header(n, v));
    }
    upgrader &set_handshake_timeout(std::int64_t ms) { return done(try_set_handshake_timeout(ms)); }
    upgrader &set_buffer_sizes(std::size_t r, std::size_t w) { return done(try_set_buffer_sizes(r, w)); }
    upgrader &set_write_buffer_pool(const buffer_pool *p) { return done(try_set_write_buffer_pool(p)); }
    upgrader &set_compression(const std::optional<ws_compression_options> &o) { return done(try_set_compression(o)); }
    upgrader &set_read_limit(std::uint64_t l) { return done(try_set_read_limit(l)); }
    upgrader &set_http_handler(std::function<void(request_view, bytes_view, http_response_view)> f) {
        return done(try_set_http_handler(std::move(f)));
    }
    upgrader &set_tls(const tls_server_config *c) { return done(try_set_tls(c)); }

private:
    upgrader &done(result<void> r) {
        r.value();
        return *this;
    }
    ws_upgrader *u_;
    std::shared_ptr<detail::upgrader_callbacks> cb_;
};

/** A blocking listener that hands out upgraded connections. */
class listener {
public:
    /** Listens on host:port (port 0 = a free one) with `up`'s settings (nullptr = defaults). */
    static result<listener> try_listen(const std::string &host, std::uint16_t port, const upgrader *up = nullptr) {
        ws_listener *l = nullptr;
        ws_status st = ws_listen(up ? up->get() : nullptr, host.c_str(), port, &l);
        if (st != WS_OK) return result<listener>::failure(st);
        return listener(l, up ? up->callbacks() : nullptr);
    }
    static listener listen(const std::string &host, std::uint16_t port, const upgrader *up = nullptr) {
        return try_listen(host, port, up).value();
    }
    listener(listener &&o) noexcept : l_(std::exchange(o.l_, nullptr)), keep_(std::move(o.keep_)) {}
    listener &operator=(listener &&o) noexcept {
        std::swap(l_, o.l_);
        std::swap(keep_, o.keep_);
        return *this;
    }
    listener(const listener &) = delete;
    listener &operator=(const listener &) = delete;
    /** Frees the listener: no accept() may be running (call shutdown() and join first). */
    ~listener() { ws_listener_free(l_); }

    /** Waits up to `timeout_ms` for a client whose handshake succeeds. */
    result<conn> try_accept(std::int64_t timeout_ms = no_limit) {
        ws_conn *c = nullptr;
        ws_status st = ws_listener_accept(l_, timeout_ms, &c);
        if (st != WS_OK) return result<conn>::failure(st);
        return conn(c);
    }
    conn accept(std::int64_t timeout_ms = no_limit) { return try_accept(timeout_ms).value(); }
    std::uint16_t port() const noexcept { return ws_listener_port(l_); }
    std::string addr() const {
        auto r = detail::copy_string([&](char *b, std::size_t c, std::size_t *n) { return ws_listener_addr(l_, b, c, n); });
        return r.ok() ? std::move(r).value() : std::string();
    }
    /** Makes accept() on every thread return WS_ERR_LOCALLY_CLOSED. Any thread. */
    void shutdown() noexcept { (void)ws_listener_shutdown(l_); }

private:
    listener(ws_listener *l, std::shared_ptr<void> keep) noexcept : l_(l), keep_(std::move(keep)) {}
    ws_listener *l_;
    std::shared_ptr<void> keep_;
};

class session_view;

/**
 * The events of a sans-IO session; every member may be empty. They run on
 * the calling thread inside the session call that caused them (recv,
 * recv_eof, on_timeout), and may queue sends and a close on the session
 * (recv from inside one is WS_ERR_BUSY; never destroy the session there).
 * Views passed in are zero-copy and valid only during the call. An
 * exception escaping one is kept (the first, later ones are dropped) and
 * rethrown by the call that ran it, once that call has finished.
 */
struct session_handlers {
    /**
     * The opening handshake completed: a server sees the client's request
     * (the response view is empty), a client the server's response (the
     * request is std::nullopt).
     */
    std::function<void(session_view, std::optional<request_view>, response_view)> on_open;
    /** A whole text or binary message (inflated if it was compressed). */
    std::function<void(session_view, msg_type, bytes_view)> on_message;
    /** A ping arrived; its pong is queued when the call returns. */
    std::function<void(session_view, bytes_view)> on_ping;
    std::function<void(session_view, bytes_view)> on_pong;
    /** The peer's close frame (1005: no code); the echo is queued. */
    std::function<void(session_view, std::uint16_t, std::string_view)> on_close;
    /**
     * The session failed (protocol violation, refused handshake, timeout,
     * TLS, transport ended early) and is finished: send what is pending,
     * then close the socket.
     */
    std::function<void(session_view, ws_status, std::string_view)> on_error;
};

namespace detail {

/** A session's handlers at a stable address (the C user data), and the kept exception. */
struct session_state {
    session_handlers h;
    std::shared_ptr<void> keep; /* the upgrader's callables its snapshot points at */
    std::exception_ptr pending;

    template <class F>
    static void guarded(void *ud, F &&f) {
        session_state &st = *static_cast<session_state *>(ud);
        WS_HPP_TRY { f(st.h); }
        WS_HPP_CATCH_ALL(if (!st.pending) st.pending = std::current_exception())
    }
    static void open(ws_session *s, const ws_request *req, const ws_response *resp, void *ud);
    static void message(ws_session *s, ws_msg_type t, const std::uint8_t *d, std::size_t n, void *ud);
    static void ping(ws_session *s, const std::uint8_t *d, std::size_t n, void *ud);
    static void pong(ws_session *s, const std::uint8_t *d, std::size_t n, void *ud);
    static void close(ws_session *s, std::uint16_t code, const std::uint8_t *r, std::size_t n, void *ud);
    static void error(ws_session *s, ws_status st, const char *m, void *ud);
    static ws_session_callbacks c_callbacks() noexcept {
        ws_session_callbacks cb{};
        cb.on_open = &open;
        cb.on_message = &message;
        cb.on_ping = &ping;
        cb.on_pong = &pong;
        cb.on_close = &close;
        cb.on_error = &error;
        return cb;
    }
};

} /* namespace detail */

/**
 * A session the caller does not own (what its handlers receive), and the
 * operations every session has. Copyable; valid while the session is.
 * One thread at a time (the caller serializes).
 */
class session_view {
public:
    explicit session_view(ws_session *s = nullptr) noexcept : s_(s) {}
    ws_session *get() const noexcept { return s_; }
    explicit operator bool() const noexcept { return s_ != nullptr; }
    friend bool operator==(session_view a, session_view b) noexcept { return a.s_ == b.s_; }
    friend bool operator!=(session_view a, session_view b) noexcept { return a.s_ != b.s_; }

    /* ---- queueing (WS_ERR_INVALID_ARGUMENT before on_open, WS_ERR_CLOSE_SENT after a close) ---- */
    /** Queues a message (text is not re-validated; control frames at most 125 bytes). */
    result<void> try_send(msg_type type, bytes_view data) const {
        return result<void>::from(ws_session_send(s_, static_cast<ws_msg_type>(type), data.data(), data.size()));
    }
    result<void> try_send_text(std::string_view s) const { return try_send(msg_type::text, s); }
    result<void> try_send_binary(bytes_view b) const { return try_send(msg_type::binary, b); }
    /** Queues a prepared message (compressed once per setting, shared with other connections). */
    result<void> try_send_prepared(const prepared_message &pm) const {
        return result<void>::from(ws_session_send_prepared(s_, pm.get()));
    }
    result<void> try_ping(bytes_view payload = {}) const { return try_send(msg_type::ping, payload); }
    result<void> try_pong(bytes_view payload = {}) const { return try_send(msg_type::pong, payload); }
    /** Starts the close handshake (WS_CLOSE_NO_STATUS: an empty close frame, no reason). */
    result<void> try_close(std::uint16_t code = WS_CLOSE_NORMAL, std::string_view reason = {}) const {
        return result<void>::from(
            ws_session_close(s_, code, reinterpret_cast<const std::uint8_t *>(reason.data()), reason.size()));
    }
    void send(msg_type type, bytes_view data) const { try_send(type, data).value(); }
    void send_text(std::string_view s) const { try_send_text(s).value(); }
    void send_binary(bytes_view b) const { try_send_binary(b).value(); }
    void send_prepared(const prepared_message &pm) const { try_send_prepared(pm).value(); }
    void ping(bytes_view payload = {}) const { try_ping(payload).value(); }
    void pong(bytes_view payload = {}) const { try_pong(payload).value(); }
    void close(std::uint16_t code = WS_CLOSE_NORMAL, std::string_view reason = {}) const {
        try_close(code, reason).value();
    }

    /* ---- output ---- */
    /**
     * The bytes to transmit (empty: none), owned by the session and valid
     * until the next call on it; report what went out with sent().
     */
    result<bytes_view> try_pending() const {
        const std::uint8_t *d = nullptr;
        std::size_t n = 0;
        ws_status st = ws_session_pending(s_, &d, &n);
        if (st != WS_OK) return result<bytes_view>::failure(st);
        return bytes_view(d, n);
    }
    /** `n` of the pending bytes went out (WS_ERR_INVALID_ARGUMENT: more than were pending). */
    result<void> try_sent(std::size_t n) const { return result<void>::from(ws_session_sent(s_, n)); }
    bytes_view pending() const { return try_pending().value(); }
    void sent(std::size_t n) const { try_sent(n).value(); }

    /** A frame header from try_send_head (len 0, false: there is none). */
    struct frame_head {
        std::uint8_t bytes[WS_MAX_FRAME_HEADER];
        std::size_t len;
        bytes_view view() const noexcept { return bytes_view(bytes, len); }
        explicit operator bool() const noexcept { return len != 0; }
    };
    /**
     * For a text or binary message of `len` bytes that the caller transmits
     * from its own memory (one writev, no copy into the session): its
     * frame header, when the message can go out so (a server, so unmasked;
     * not compressed; no TLS; nothing pending). The session then holds
     * nothing of it: the header and the `len` bytes must go out, in that
     * order, before anything pending() returns later. An empty header: nothing was queued; send
     * it with send(). Refusals as try_send (see ws_session_send_head).
     */
    result<frame_head> try_send_head(msg_type type, std::size_t len) const {
        frame_head h{};
        ws_status st = ws_session_send_head(s_, static_cast<ws_msg_type>(type), len, h.bytes, &h.len);
        if (st != WS_OK) return result<frame_head>::failure(st);
        return h;
    }
    frame_head send_head(msg_type type, std::size_t len) const { return try_send_head(type, len).value(); }

    /* ---- state ---- */
    /** Whether the session wants more input (false once finished). */
    bool wants_read() const noexcept { return ws_session_wants_read(s_); }
    /** Whether bytes are pending. */
    bool wants_write() const noexcept { return ws_session_wants_write(s_); }
    /** Close the socket once this is true and nothing is pending (see ws_session_is_finished). */
    bool is_finished() const noexcept { return ws_session_is_finished(s_); }
    /** Whether the session runs TLS (its bytes in and out are ciphertext). */
    bool is_tls() const noexcept { return ws_session_is_tls(s_); }
    /** The subprotocol the handshake agreed on ("" when none, or before on_open). */
    std::string_view subprotocol() const noexcept {
        const char *p = ws_session_subprotocol(s_);
        return p != nullptr ? std::string_view(p) : std::string_view();
    }
    /** Whether permessage-deflate was negotiated. */
    bool compression_negotiated() const noexcept { return ws_session_compression_negotiated(s_); }
    /** A client's refused handshake answer (status, headers; no body) once on_error reported it; empty otherwise. */
    response_view refused_response() const noexcept { return response_view(ws_session_refused_response(s_)); }
    /**
     * The peer's certificate `index` (0 = its own, then its chain), DER;
     * empty when there is none (no TLS, not received yet, no client
     * certificate, past the chain).
     */
    std::vector<std::uint8_t> tls_peer_certificate(std::size_t index = 0) const {
        std::size_t n = 0;
        ws_status st = ws_session_tls_peer_certificate(s_, index, nullptr, 0, &n);
        if (st != WS_OK && st != WS_ERR_BUFFER_TOO_SMALL) return {};
        std::vector<std::uint8_t> der(n);
        if (ws_session_tls_peer_certificate(s_, index, der.data(), der.size(), &n) != WS_OK) return {};
        der.resize(n);
        return der;
    }

    /* ---- time ---- */
    /**
     * Keepalive ping after `interval_ms` without input (0: off), failure
     * when no input comes `pong_timeout_ms` after it; `close_timeout_ms`
     * bounds the close handshake; `idle_timeout_ms` closes with 1001 after
     * that long without a message (0: never). See ws_session_set_timeouts.
     */
    result<void> try_set_timeouts(std::uint32_t interval_ms, std::uint32_t pong_timeout_ms,
                                  std::uint32_t close_timeout_ms = 5000, std::uint32_t idle_timeout_ms = 0) const {
        return result<void>::from(
            ws_session_set_timeouts(s_, interval_ms, pong_timeout_ms, close_timeout_ms, idle_timeout_ms));
    }
    void set_timeouts(std::uint32_t interval_ms, std::uint32_t pong_timeout_ms, std::uint32_t close_timeout_ms = 5000,
                      std::uint32_t idle_timeout_ms = 0) const {
        try_set_timeouts(interval_ms, pong_timeout_ms, close_timeout_ms, idle_timeout_ms).value();
    }
    /** Milliseconds until on_timeout() is due (0: now), ws::no_limit when nothing is scheduled. */
    result<std::int64_t> try_next_timeout_ms() const {
        std::int64_t ms = 0;
        ws_status st = ws_session_next_timeout_ms(s_, &ms);
        if (st != WS_OK) return result<std::int64_t>::failure(st);
        return ms;
    }
    std::int64_t next_timeout_ms() const { return try_next_timeout_ms().value(); }

protected:
    ws_session *s_;
};

namespace detail {

inline void session_state::open(ws_session *s, const ws_request *req, const ws_response *resp, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_open)
            h.on_open(session_view(s), req ? std::optional<request_view>(request_view(req)) : std::nullopt,
                      response_view(resp));
    });
}
inline void session_state::message(ws_session *s, ws_msg_type t, const std::uint8_t *d, std::size_t n, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_message) h.on_message(session_view(s), static_cast<msg_type>(t), bytes_view(d, n));
    });
}
inline void session_state::ping(ws_session *s, const std::uint8_t *d, std::size_t n, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_ping) h.on_ping(session_view(s), bytes_view(d, n));
    });
}
inline void session_state::pong(ws_session *s, const std::uint8_t *d, std::size_t n, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_pong) h.on_pong(session_view(s), bytes_view(d, n));
    });
}
inline void session_state::close(ws_session *s, std::uint16_t code, const std::uint8_t *r, std::size_t n, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_close) h.on_close(session_view(s), code, std::string_view(reinterpret_cast<const char *>(r), n));
    });
}
inline void session_state::error(ws_session *s, ws_status st, const char *m, void *ud) {
    guarded(ud, [&](session_handlers &h) {
        if (h.on_error) h.on_error(session_view(s), st, m ? std::string_view(m) : std::string_view());
    });
}

} /* namespace detail */

/**
 * An owned sans-IO WebSocket connection (ws_session): the caller moves the
 * bytes. Feed what the socket gave with recv() (recv_eof() at its end),
 * transmit pending() and report it with sent(), call on_timeout() when
 * next_timeout_ms() says; events reach the session_handlers during those
 * calls. Server sessions answer the handshake themselves; client sessions
 * have their request pending at once. With TLS (a server upgrader's
 * set_tls, a wss:// client URL) the bytes in and out are ciphertext.
 * Move-only; the destructor frees the handle (never from its handlers).
 */
class session : public session_view {
public:
    session() noexcept = default;
    /**
     * A server session with `up`'s settings (nullptr: defaults; copied,
     * but its callables are kept alive by the session): the first bytes
     * fed are the client's request.
     */
    static result<session> try_server(const upgrader *up, session_handlers h) {
        auto st = std::make_unique<detail::session_state>();
        st->h = std::move(h);
        if (up) st->keep = up->callbacks();
        ws_session_callbacks cb = detail::session_state::c_callbacks();
        ws_session *s = nullptr;
        ws_status rc = ws_session_server_new(up ? up->get() : nullptr, &cb, st.get(), &s);
        if (rc != WS_OK) return result<session>::failure(rc);
        return session(s, std::move(st));
    }
    static session server(const upgrader *up, session_handlers h) { return try_server(up, std::move(h)).value(); }
    /**
     * A client session for `url` (ws:// or wss://) with `d`'s settings
     * (nullptr: defaults; copied). The caller connects to the URL's host
     * and port itself (no proxy); the request is pending at once.
     */
    static result<session> try_client(const std::string &url, session_handlers h, const dialer *d = nullptr) {
        auto st = std::make_unique<detail::session_state>();
        st->h = std::move(h);
        ws_session_callbacks cb = detail::session_state::c_callbacks();
        ws_session *s = nullptr;
        ws_status rc = ws_session_client_new(d ? d->get() : nullptr, url.c_str(), &cb, st.get(), &s);
        if (rc != WS_OK) return result<session>::failure(rc);
        return session(s, std::move(st));
    }
    static session client(const std::string &url, session_handlers h, const dialer *d = nullptr) {
        return try_client(url, std::move(h), d).value();
    }

    session(session &&o) noexcept : session_view(std::exchange(o.s_, nullptr)), st_(std::move(o.st_)) {}
    session &operator=(session &&o) noexcept {
        std::swap(s_, o.s_);
        std::swap(st_, o.st_);
        return *this;
    }
    session(const session &) = delete;
    session &operator=(const session &) = delete;
    ~session() { ws_session_free(s_); }

    /** Feeds received bytes (copied); handlers run meanwhile, and a handler's exception is rethrown here. */
    result<void> try_recv(bytes_view data) { return after(ws_session_recv(s_, data.data(), data.size())); }
    /** Feeds received bytes without the copy: frames are unmasked inside `data` (its contents are unspecified
     *  afterwards) and a message that arrived whole reaches on_message as a view into it. */
    result<void> try_recv_in_place(std::uint8_t *data, std::size_t len) {
        return after(ws_session_recv_in_place(s_, data, len));
    }
    /** The transport ended (the peer's FIN or a read error). */
    result<void> try_recv_eof() { return after(ws_session_recv_eof(s_)); }
    /** Runs what is due (a keepalive ping, a timeout); handlers may run. */
    result<void> try_on_timeout() { return after(ws_session_on_timeout(s_)); }
    void recv(bytes_view data) { try_recv(data).value(); }
    void recv_in_place(std::uint8_t *data, std::size_t len) { try_recv_in_place(data, len).value(); }
    void recv_eof() { try_recv_eof().value(); }
    void on_timeout() { try_on_timeout().value(); }

private:
    session(ws_session *s, std::unique_ptr<detail::session_state> st) noexcept : session_view(s), st_(std::move(st)) {}
    result<void> after(ws_status st) {
        if (st_ && st_->pending) {
            std::exception_ptr e = std::exchange(st_->pending, nullptr);
            detail::rethrow(e);
        }
        return result<void>::from(st);
    }
    std::unique_ptr<detail::session_state> st_;
};

/**
 * The callbacks of a loop listener's or dial's connections; every member
 * may be empty. They run on the thread driving the loop. Views passed in
 * are valid during the call (a conn_view from on_open until on_close
 * returns; keep it longer with ws::retain).
 */
struct loop_handlers {
    /** Server: return 0 to accept, or an HTTP status (400-599) to refuse. */
    std::function<int(request_view)> on_handshake;
    std::function<void(conn_view)> on_open;
    std::function<void(conn_view, msg_type, bytes_view)> on_message;
    std::function<void(conn_view, bytes_view)> on_ping;
    std::function<void(conn_view, bytes_view)> on_pong;
    std::function<void(conn_view)> on_drain;
    std::function<void(conn_view, ws_status, std::string_view)> on_error;
    std::function<void(conn_view, std::uint16_t, std::string_view)> on_close;
    /** A dial failed before opening; `resp` is the server's answer, if one came. */
    std::function<void(ws_status, std::string_view, const ws_response *resp)> on_dial_error;
    /** Reconnecting dials: re-dial `attempt` starts in `delay_ms` (`last`: what ended the previous one). */
    std::function<void(std::uint32_t attempt, std::int64_t delay_ms, ws_status last)> on_reconnect;
};

/**
 * A reconnecting loop dial (event_loop::dial_reconnecting). Destroying it
 * stops it (as stop()). Move-only; stop() from any thread.
 */
class reconnector {
public:
    reconnector() noexcept = default;
    explicit reconnector(ws_reconnect *r) noexcept : r_(r) {}
    reconnector(reconnector &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    reconnector &operator=(reconnector &&o) noexcept {
        std::swap(r_, o.r_);
        return *this;
    }
    reconnector(const reconnector &) = delete;
    reconnector &operator=(const reconnector &) = delete;
    ~reconnector() { ws_reconnect_free(r_); }
    /** No dial after this; a dial in flight is dropped; the open connection closes with 1000. */
    void stop() const noexcept { (void)ws_reconnect_stop(r_); }
    /** Stopped, out of retries, or refused with a 4xx status. */
    bool stopped() const noexcept { return ws_reconnect_is_stopped(r_); }
    ws_reconnect *get() const noexcept { return r_; }

private:
    ws_reconnect *r_ = nullptr;
};

class event_loop;

namespace detail {

struct loop_state;

/** One listener's or dial's handlers, with the loop they belong to. */
struct loop_entry {
    loop_handlers h;
    loop_state *loop;
};

struct timer_entry {
    std::function<void()> fn;
    bool repeats;
    loop_state *loop;
};

struct loop_state {
    ws_loop *lp = nullptr;
    std::mutex mu;
    std::vector<std::unique_ptr<loop_entry>> entries;
    std::map<timer_entry *, std::unique_ptr<timer_entry>> timers;
    std::exception_ptr pending;

    /** Runs a callback; an exception stops the loop and is kept for run()/poll(). */
    template <class F>
    void guarded(F &&f) {
        WS_HPP_TRY { f(); }
        WS_HPP_CATCH_ALL(keep(std::current_exception()))
    }
    void keep(std::exception_ptr e) {
        {
            std::lock_guard<std::mutex> g(mu);
            if (!pending) pending = e;
        }
        (void)ws_loop_stop(lp);
    }
    std::exception_ptr take() {
        std::lock_guard<std::mutex> g(mu);
        return std::exchange(pending, nullptr);
    }

    static loop_entry &entry(void *ud) { return *static_cast<loop_entry *>(ud); }
    static std::int32_t handshake(const ws_request *r, void *ud, void **) {
        loop_entry &e = entry(ud);
        std::int32_t answer = 500;
        e.loop->guarded([&] { answer = e.h.on_handshake ? e.h.on_handshake(request_view(r)) : 0; });
        return answer;
    }
    static void open(ws_conn *c, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_open) e.loop->guarded([&] { e.h.on_open(conn_view(c)); });
    }
    static void message(ws_conn *c, ws_msg_type t, const std::uint8_t *d, std::size_t n, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_message)
            e.loop->guarded([&] { e.h.on_message(conn_view(c), static_cast<msg_type>(t), bytes_view(d, n)); });
    }
    static void ping(ws_conn *c, const std::uint8_t *d, std::size_t n, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_ping) e.loop->guarded([&] { e.h.on_ping(conn_view(c), bytes_view(d, n)); });
    }
    static void pong(ws_conn *c, const std::uint8_t *d, std::size_t n, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_pong) e.loop->guarded([&] { e.h.on_pong(conn_view(c), bytes_view(d, n)); });
    }
    static void reconnect(std::uint32_t attempt, std::int64_t delay_ms, ws_status last, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_reconnect) e.loop->guarded([&] { e.h.on_reconnect(attempt, delay_ms, last); });
    }
    static void drain(ws_conn *c, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_drain) e.loop->guarded([&] { e.h.on_drain(conn_view(c)); });
    }
    static void error(ws_conn *c, ws_status st, const char *m, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_error) e.loop->guarded([&] { e.h.on_error(conn_view(c), st, m ? std::string_view(m) : ""); });
    }
    static void close(ws_conn *c, std::uint16_t code, const std::uint8_t *r, std::size_t n, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_close)
            e.loop->guarded([&] {
                e.h.on_close(conn_view(c), code, std::string_view(reinterpret_cast<const char *>(r), n));
            });
    }
    static void dial_error(ws_status st, const char *m, const ws_response *resp, void *ud) {
        loop_entry &e = entry(ud);
        if (e.h.on_dial_error) e.loop->guarded([&] { e.h.on_dial_error(st, m ? std::string_view(m) : "", resp); });
    }
    static void timer(ws_loop *, std::uint64_t, void *ud) {
        timer_entry *t = static_cast<timer_entry *>(ud);
        loop_state *ls = t->loop;
        ls->guarded([&] { t->fn(); });
        if (!t->repeats) {
            std::lock_guard<std::mutex> g(ls->mu);
            ls->timers.erase(t);
        }
    }
    static ws_loop_callbacks c_callbacks() {
        ws_loop_callbacks cb{};
        cb.on_handshake = &handshake;
        cb.on_open = &open;
        cb.on_message = &message;
        cb.on_ping = &ping;
        cb.on_pong = &pong;
        cb.on_drain = &drain;
        cb.on_error = &error;
        cb.on_close = &close;
        cb.on_dial_error = &dial_error;
        return cb;
    }
    loop_entry *add(loop_handlers h) {
        auto e = std::make_unique<loop_entry>(loop_entry{std::move(h), this});
        loop_entry *p = e.get();
        std::lock_guard<std::mutex> g(mu);
        entries.push_back(std::move(e));
        return p;
    }
    void remove(loop_entry *p) {
        std::lock_guard<std::mutex> g(mu);
        for (auto it = entries.begin(); it != entries.end(); ++it) {
            if (it->get() == p) {
                entries.erase(it);
                return;
            }
        }
    }
};

} /* namespace detail */

/**
 * An event loop (epoll; no thread of its own). Drive it with run() or
 * poll(); listen(), dial(), timers, stop() and shutdown() work from any
 * thread. The C++ wrapper uses each connection's C user data itself.
 * The handlers of a listener or dial live as long as the loop.
 */
class event_loop {
public:
    static result<event_loop> try_create() {
        auto st = std::make_unique<detail::loop_state>();
        ws_status s = ws_loop_new(&st->lp);
        if (s != WS_OK) return result<event_loop>::failure(s);
        return event_loop(std::move(st));
    }
    static event_loop create() { return try_create().value(); }
    event_loop(event_loop &&o) noexcept = default;
    event_loop &operator=(event_loop &&o) noexcept {
        std::swap(s_, o.s_);
        std::swap(keep_, o.keep_);
        return *this;
    }
    event_loop(const event_loop &) = delete;
    event_loop &operator=(const event_loop &) = delete;
    /** Closes every connection (their on_close runs here), then frees the loop. */
    ~event_loop() {
        if (s_) ws_loop_free(s_->lp);
    }
    ws_loop *get() const noexcept { return s_ ? s_->lp : nullptr; }

    /** Listens on host:port (port 0 = a free one); returns the port. */
    result<std::uint16_t> try_listen(const std::string &host, std::uint16_t port, loop_handlers h,
                                     const upgrader *up = nullptr) {
        detail::loop_entry *e = s_->add(std::move(h));
        ws_loop_callbacks cb = detail::loop_state::c_callbacks();
        std::uint16_t bound = 0;
        ws_status st = ws_loop_listen(s_->lp, up ? up->get() : nullptr, host.c_str(), port, &cb, e, &bound);
        if (st != WS_OK) {
            auto r = result<std::uint16_t>::failure(st);
            s_->remove(e);
            return r;
        }
        if (up) keep_.push_back(up->callbacks());
        return bound;
    }
    std::uint16_t listen(const std::string &host, std::uint16_t port, loop_handlers h, const upgrader *up = nullptr) {
        return try_listen(host, port, std::move(h), up).value();
    }
    /** Dials a ws:// URL through the loop; ends in on_open or on_dial_error. */
    result<void> try_dial(const std::string &url, loop_handlers h, const dialer *d = nullptr,
                          const headers &extra = {}) {
        detail::loop_entry *e = s_->add(std::move(h));
        ws_loop_callbacks cb = detail::loop_state::c_callbacks();
        detail::header_list hl(extra);
        ws_status st = ws_loop_dial(s_->lp, d ? d->get() : nullptr, url.c_str(), hl.data(), hl.size(), &cb, e);
        if (st != WS_OK) {
            auto r = result<void>::failure(st);
            s_->remove(e);
            return r;
        }
        return result<void>();
    }
    void dial(const std::string &url, loop_handlers h, const dialer *d = nullptr, const headers &extra = {}) {
        try_dial(url, std::move(h), d, extra).value();
    }
    /**
     * Dials as dial() does, and again after each failed dial or closed
     * connection with `opts`' delays (see ws_loop_dial_reconnecting), until
     * the reconnector is stopped or destroyed; h.on_reconnect tells of each
     * re-dial (opts.on_reconnect is the wrapper's).
     */
    result<reconnector> try_dial_reconnecting(const std::string &url, loop_handlers h,
                                              ws_reconnect_options opts = ws_reconnect_options_default(),
                                              const dialer *d = nullptr, const headers &extra = {}) {
        detail::loop_entry *e = s_->add(std::move(h));
        ws_loop_callbacks cb = detail::loop_state::c_callbacks();
        opts.on_reconnect = &detail::loop_state::reconnect;
        detail::header_list hl(extra);
        ws_reconnect *r = nullptr;
        ws_status st = ws_loop_dial_reconnecting(s_->lp, d ? d->get() : nullptr, url.c_str(), hl.data(), hl.size(),
                                                 &cb, &opts, e, &r);
        if (st != WS_OK) {
            auto f = result<reconnector>::failure(st);
            s_->remove(e);
            return f;
        }
        return reconnector(r);
    }
    reconnector dial_reconnecting(const std::string &url, loop_handlers h,
                                  ws_reconnect_options opts = ws_reconnect_options_default(),
                                  const dialer *d = nullptr, const headers &extra = {}) {
        return try_dial_reconnecting(url, std::move(h), opts, d, extra).value();
    }

    /** Processes what is ready, waiting at most `timeout_ms`; rethrows a callback's exception. */
    result<void> try_poll(std::int64_t timeout_ms) {
        ws_status st = ws_loop_poll(s_->lp, timeout_ms);
        rethrow_pending();
        return result<void>::from(st);
    }
    void poll(std::int64_t timeout_ms) { try_poll(timeout_ms).value(); }
    /** Runs until stop() or a finished shutdown(); rethrows a callback's exception. */
    result<void> try_run() {
        ws_status st = ws_loop_run(s_->lp);
        rethrow_pending();
        return result<void>::from(st);
    }
    void run() { try_run().value(); }
    void stop() noexcept { (void)ws_loop_stop(s_->lp); }
    void wake() noexcept { (void)ws_loop_wake(s_->lp); }
    result<void> try_shutdown(std::int64_t timeout_ms) { return result<void>::from(ws_loop_shutdown(s_->lp, timeout_ms)); }
    void shutdown(std::int64_t timeout_ms) { try_shutdown(timeout_ms).value(); }

    /** Runs `f` on the loop's thread after `delay_ms`, then every `interval_ms` (0 = once). */
    result<std::uint64_t> try_add_timer(std::int64_t delay_ms, std::int64_t interval_ms, std::function<void()> f) {
        auto t = std::make_unique<detail::timer_entry>(detail::timer_entry{std::move(f), interval_ms > 0, s_.get()});
        detail::timer_entry *p = t.get();
        {
            std::lock_guard<std::mutex> g(s_->mu);
            s_->timers.emplace(p, std::move(t));
        }
        std::uint64_t id = 0;
        ws_status st = ws_loop_timer_add(s_->lp, delay_ms, interval_ms, &detail::loop_state::timer, p, &id);
        if (st != WS_OK) {
            auto r = result<std::uint64_t>::failure(st);
            std::lock_guard<std::mutex> g(s_->mu);
            s_->timers.erase(p);
            return r;
        }
        return id;
    }
    std::uint64_t add_timer(std::int64_t delay_ms, std::int64_t interval_ms, std::function<void()> f) {
        return try_add_timer(delay_ms, interval_ms, std::move(f)).value();
    }
    /** Cancels a timer (its callable is released with the loop). */
    void cancel_timer(std::uint64_t id) noexcept { (void)ws_loop_timer_cancel(s_->lp, id); }

    result<void> try_set_keepalive(std::int64_t interval_ms, std::int64_t timeout_ms) {
        return result<void>::from(ws_loop_set_keepalive(s_->lp, interval_ms, timeout_ms));
    }
    result<void> try_set_idle_timeout(std::int64_t timeout_ms) {
        return result<void>::from(ws_loop_set_idle_timeout(s_->lp, timeout_ms));
    }
    result<void> try_set_close_timeout(std::int64_t timeout_ms) {
        return result<void>::from(ws_loop_set_close_timeout(s_->lp, timeout_ms));
    }
    result<void> try_set_max_buffered(std::size_t bytes) {
        return result<void>::from(ws_loop_set_max_buffered(s_->lp, bytes));
    }
    void set_keepalive(std::int64_t interval_ms, std::int64_t timeout_ms) {
        try_set_keepalive(interval_ms, timeout_ms).value();
    }
    void set_idle_timeout(std::int64_t timeout_ms) { try_set_idle_timeout(timeout_ms).value(); }
    void set_close_timeout(std::int64_t timeout_ms) { try_set_close_timeout(timeout_ms).value(); }
    void set_max_buffered(std::size_t bytes) { try_set_max_buffered(bytes).value(); }

    /** Queues `pm` on every open connection; returns how many took it. */
    result<std::size_t> try_broadcast(const prepared_message &pm) {
        std::size_t n = 0;
        ws_status st = ws_loop_broadcast(s_->lp, pm.get(), &n);
        if (st != WS_OK) return result<std::size_t>::failure(st);
        return n;
    }
    std::size_t broadcast(const prepared_message &pm) { return try_broadcast(pm).value(); }
    std::size_t connection_count() const noexcept { return ws_loop_connection_count(s_->lp); }
    int fd() const noexcept { return ws_loop_fd(s_->lp); }
    std::int64_t next_timeout_ms() const noexcept { return ws_loop_next_timeout_ms(s_->lp); }

private:
    explicit event_loop(std::unique_ptr<detail::loop_state> s) noexcept : s_(std::move(s)) {}
    void rethrow_pending() {
        std::exception_ptr e = s_->take();
        if (e) detail::rethrow(e);
    }
    std::unique_ptr<detail::loop_state> s_;
    std::vector<std::shared_ptr<void>> keep_;
};

/** libws's version at run time (WS_VERSION_STRING is the header's). */
inline std::string_view version() noexcept { return ws_version(); }

/** Whether this libws has TLS (ws_has_tls): false for a build made with
 *  `make install TLS=0`, whose TLS calls fail with WS_ERR_UNSUPPORTED. */
inline bool has_tls() noexcept { return ws_has_tls(); }

} /* namespace ws */

#undef WS_HPP_EXCEPTIONS
#undef WS_HPP_TRY
#undef WS_HPP_CATCH_ALL

#endif /* WS_HPP_INCLUDED */
