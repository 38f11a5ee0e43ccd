/*
 * libws._speedups.SessionCore: one libws.asyncio connection over the
 * sans-IO ws_session, driven by an asyncio BufferedProtocol.
 *
 * Why: over the libws event loop a message costs one more epoll_wait (the
 * loop's own epoll, nested in asyncio's) and, at 1 MiB, the loop's read
 * buffer. Here asyncio's own loop reads the socket: get_buffer() lends it
 * a buffer this module owns, buffer_updated(n) hands those bytes to
 * ws_session_recv_in_place (unmasked where they lie; a message that
 * arrived whole goes to Python without an intermediate copy), and what the
 * session has to send goes straight to the socket with send(2) while the
 * transport holds nothing (else through transport.write, which keeps the
 * order).
 *
 * The Python subclass (libws/_aio_session.py) is also the
 * asyncio.BufferedProtocol; this type does the per-message work and calls
 * back into it only for rare events:
 *   self._c_open(request_address, response_address)   the handshake is done
 *   self._c_pong(data)                                 a pong
 *   self._c_close(code, reason: bytes)                 the peer's close frame
 *   self._c_error(status, message: bytes)              the session failed
 *   self._c_timer(ms)                                  a session deadline (>= 0 ms away)
 *   self._c_finished()                                 close the transport now
 *   self._report(exception, where)                     one of the above raised
 * and messages go to the callable set with _set_deliver (the connection's
 * _on_message), an exception from it to self._report.
 *
 * Reading into one buffer shared by every connection is sound: asyncio
 * calls get_buffer and buffer_updated back to back on its thread, and the
 * session keeps nothing of what it was fed after the call (it copies an
 * unfinished frame into its own buffers).
 *
 * One thread: every method runs on the asyncio loop's thread, with the GIL.
 */

#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "_collect.h"
#include "_session.h"

/* Python ignores SIGPIPE already; the flag only spares the signal where
 * it exists. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* The stable ABI's value (memoryobject.h keeps the name out of the 3.8
 * limited API, though PyMemoryView_FromMemory takes it). */
#ifndef PyBUF_WRITE
#define PyBUF_WRITE 0x200
#endif

/* ---- the library's functions (addresses handed over by session_init) ---- */

typedef struct {
    void *on_open, *on_message, *on_ping, *on_pong, *on_close, *on_error;
} ws_session_callbacks;

typedef int32_t (*server_new_fn)(const void *up, const ws_session_callbacks *cb, void *ud, void **out);
typedef int32_t (*client_new_fn)(const void *d, const char *url, const ws_session_callbacks *cb, void *ud,
                                 void **out);
typedef void (*free_fn)(void *s);
typedef int32_t (*recv_fn)(void *s, uint8_t *data, size_t len);
typedef int32_t (*eof_fn)(void *s);
typedef int32_t (*pending_fn)(void *s, const uint8_t **data, size_t *len);
typedef int32_t (*sent_fn)(void *s, size_t n);
typedef bool (*is_finished_fn)(void *s);
typedef int32_t (*send_fn)(void *s, int32_t type, const uint8_t *data, size_t len);
typedef int32_t (*close_fn)(void *s, uint16_t code, const uint8_t *reason, size_t len);
typedef int32_t (*set_timeouts_fn)(void *s, uint32_t interval, uint32_t pong, uint32_t close, uint32_t idle);
typedef int32_t (*next_timeout_fn)(void *s, int64_t *ms);
typedef int32_t (*on_timeout_fn)(void *s);
typedef const char *(*subprotocol_fn)(void *s);
typedef bool (*compression_fn)(void *s);
typedef bool (*is_tls_fn)(void *s);
typedef int32_t (*send_head_fn)(void *s, int32_t type, size_t len, uint8_t *head, size_t *head_len);

static struct {
    server_new_fn server_new;
    client_new_fn client_new;
    free_fn free;
    recv_fn recv_in_place;
    eof_fn recv_eof;
    pending_fn pending;
    sent_fn sent;
    is_finished_fn is_finished;
    send_fn send;
    close_fn close;
    set_timeouts_fn set_timeouts;
    next_timeout_fn next_timeout;
    on_timeout_fn on_timeout;
    subprotocol_fn subprotocol;
    compression_fn compression;
    is_tls_fn is_tls;
    send_head_fn send_head;
} ws;

static const char *const ws_names[] = {
    "ws_session_server_new", "ws_session_client_new",  "ws_session_free",      "ws_session_recv_in_place",
    "ws_session_recv_eof",   "ws_session_pending",     "ws_session_sent",      "ws_session_is_finished",
    "ws_session_send",       "ws_session_close",       "ws_session_set_timeouts", "ws_session_next_timeout_ms",
    "ws_session_on_timeout", "ws_session_subprotocol", "ws_session_compression_negotiated",
    "ws_session_is_tls",     "ws_session_send_head",
};
#define N_FUNCS (sizeof ws_names / sizeof ws_names[0])

#define WS_OK 0
#define WS_TEXT 1

/* The shared read buffer. 256 KiB: one read takes what loopback TCP
 * usually has ready for a large message. */
#define READ_BUF (256 * 1024)
static uint8_t *read_buf;
static PyObject *read_view;

/* A binary frame of at least this size that a read cuts is read straight
 * into the bytes object it is delivered as (start_direct). */
#define DIRECT_MIN (16 * 1024)

/* A message of at least this size goes out from its own bytes object
 * behind the header ws_session_send_head gives (send_direct), where it can:
 * no copy into the session's output. */
#define SEND_DIRECT_MIN (64 * 1024)

/* send(2) of this many bytes or more runs with the GIL released. */
#define RELEASE_GIL_AT (64 * 1024)

static PyObject *s_write, *s_get_write_buffer_size, *s_c_open, *s_c_pong, *s_c_close, *s_c_error, *s_c_timer,
    *s_c_finished, *s_report;

typedef struct {
    PyObject_HEAD
    void *s;             /* ws_session*, NULL before _new_* and after _free */
    PyObject *deliver;   /* message -> None, or NULL */
    PyObject *transport; /* or NULL */
    int fd;              /* the socket for direct sends, -1: none */
    int backlog;         /* the transport holds bytes: write through it to keep the order */
    int busy;            /* inside a session call: no _free */
    int finished_told;   /* _c_finished was called */
    int64_t timer_ms;    /* the last deadline handed to _c_timer, -1: none */
    int framing;         /* open and plaintext: the session is fed whole frames (_collect.c) */
    int head_match;      /* bytes of the handshake head's "\r\n\r\n" seen so far */
    size_t collect_max;  /* a larger frame is not gathered (the session takes it in pieces) */
    collect col;         /* a frame being gathered */
    PyObject *direct;    /* a cut binary frame's payload, read into the bytes it is delivered as (or NULL) */
    uint8_t *direct_at;  /* its memory */
    size_t direct_len;   /* its size */
    size_t direct_got;   /* how much of it was read */
    uint8_t direct_head[FRAME_HEADER_MAX]; /* the frame's header */
    size_t direct_head_len;
} Core;

/* The core inside buffer_updated (borrowed: it is alive for the call),
 * for the Upgrader's callbacks, which do not say whose request it is. */
static Core *feeding_now;

static PyObject *feeding(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *r = feeding_now != NULL ? (PyObject *)feeding_now : Py_None;
    Py_INCREF(r);
    return r;
}

/* An exception raised by a Python callback goes to self._report(exc,
 * where), never C. */
static void report_current(Core *c, const char *where) {
    PyObject *t, *v, *b;
    PyErr_Fetch(&t, &v, &b);
    PyErr_NormalizeException(&t, &v, &b);
    if (v != NULL && b != NULL)
        PyException_SetTraceback(v, b);
    PyObject *w = PyUnicode_FromString(where);
    PyObject *r = v != NULL && w != NULL ? PyObject_CallMethodObjArgs((PyObject *)c, s_report, v, w, NULL) : NULL;
    Py_XDECREF(w);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(b);
    if (r == NULL)
        PyErr_WriteUnraisable((PyObject *)c);
    Py_XDECREF(r);
}

/* self.name(a[, b]) from a session callback (b NULL: one argument). */
static void call_method(Core *c, PyObject *name, PyObject *a, PyObject *b, int two, const char *where) {
    if (a == NULL || (two && b == NULL)) {
        report_current(c, where);
        return;
    }
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)c, name, a, b, NULL);
    if (r == NULL)
        report_current(c, where);
    Py_XDECREF(r);
}

/* ---- session callbacks (inside a session call; the GIL is held) ---- */

static PyObject *address_or_none(const void *p) {
    if (p == NULL)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr((void *)p);
}

static void cb_open(void *s, const void *req, const void *resp, void *ud) {
    Core *c = ud;
    c->framing = !ws.is_tls(s);
    PyObject *a = address_or_none(req), *b = address_or_none(resp);
    call_method(c, s_c_open, a, b, 1, "on_open");
    Py_XDECREF(a);
    Py_XDECREF(b);
}

static void cb_message(void *s, int32_t type, const uint8_t *data, size_t len, void *ud) {
    (void)s;
    Core *c = ud;
    if (c->deliver == NULL)
        return; /* no connection object (a cancelled connect): nobody to tell */
    PyObject *msg;
    if (c->direct != NULL && data == c->direct_at && len == c->direct_len && type != WS_TEXT) {
        /* The payload the session unmasked in the bytes it was read into:
         * the message is that object (this reference is handed over). */
        msg = c->direct;
        c->direct = NULL;
    } else {
        msg = type == WS_TEXT ? PyUnicode_DecodeUTF8((const char *)data, (Py_ssize_t)len, "strict")
                              : PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    }
    if (msg == NULL) {
        report_current(c, "on_message");
        return;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(c->deliver, msg, NULL);
    Py_DECREF(msg);
    if (r == NULL)
        report_current(c, "on_message");
    Py_XDECREF(r);
}

static void cb_pong(void *s, const uint8_t *data, size_t len, void *ud) {
    (void)s;
    Core *c = ud;
    PyObject *d = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    call_method(c, s_c_pong, d, NULL, 0, "on_pong");
    Py_XDECREF(d);
}

static void cb_close(void *s, uint16_t code, const uint8_t *reason, size_t len, void *ud) {
    (void)s;
    Core *c = ud;
    PyObject *a = PyLong_FromLong(code), *b = PyBytes_FromStringAndSize((const char *)reason, (Py_ssize_t)len);
    call_method(c, s_c_close, a, b, 1, "on_close");
    Py_XDECREF(a);
    Py_XDECREF(b);
}

static void cb_error(void *s, int32_t status, const char *message, void *ud) {
    (void)s;
    Core *c = ud;
    PyObject *a = PyLong_FromLong(status), *b = PyBytes_FromString(message != NULL ? message : "");
    call_method(c, s_c_error, a, b, 1, "on_error");
    Py_XDECREF(a);
    Py_XDECREF(b);
}

static const ws_session_callbacks callbacks_ = {
    (void *)cb_open, (void *)cb_message, NULL, (void *)cb_pong, (void *)cb_close, (void *)cb_error,
};

/* ---- output and deadlines ---- */

static int ensure(Core *c) {
    if (ws.recv_in_place == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "libws._speedups.session_init() was not called");
        return 0;
    }
    if (c->s == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the session is gone");
        return 0;
    }
    return 1;
}

/* transport.write(b) (c->transport set); whatever the transport then
 * holds goes first: no direct send until it drained (resume_writing
 * clears c->backlog). 0 with an exception set when write raised. */
static int transport_write(Core *c, PyObject *b) {
    PyObject *t = c->transport;
    Py_INCREF(t);
    PyObject *r = PyObject_CallMethodObjArgs(t, s_write, b, NULL);
    PyObject *sz = r != NULL ? PyObject_CallMethodObjArgs(t, s_get_write_buffer_size, NULL) : NULL;
    Py_DECREF(t);
    Py_XDECREF(r);
    if (sz == NULL)
        return 0;
    int held = PyObject_IsTrue(sz);
    Py_DECREF(sz);
    if (held < 0)
        return 0;
    if (held)
        c->backlog = 1;
    return 1;
}

/* Hands what the session has to send to the socket (send(2) while the
 * transport holds nothing) or, for the rest, to transport.write. Returns
 * 0 with an exception set when the transport's write raised. */
static int flush(Core *c) {
    for (;;) {
        const uint8_t *p = NULL;
        size_t n = 0;
        if (ws.pending(c->s, &p, &n) != WS_OK || n == 0)
            return 1;
        size_t done = 0;
        if (!c->backlog && c->fd >= 0) {
            ssize_t k;
            if (n >= RELEASE_GIL_AT) {
                Py_BEGIN_ALLOW_THREADS
                k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                Py_END_ALLOW_THREADS
            } else {
                k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            if (k > 0)
                done = (size_t)k;
            /* EAGAIN or an error: the transport takes the rest (and
             * reports a dead socket itself). */
        }
        if (done < n) {
            if (c->transport == NULL) {
                /* Not connected (any more): nothing can go out. */
                ws.sent(c->s, n);
                return 1;
            }
            PyObject *b = PyBytes_FromStringAndSize((const char *)p + done, (Py_ssize_t)(n - done));
            if (b == NULL)
                return 0;
            /* The session's output moves on before Python runs: write()
             * may call back into this connection (pause_writing). */
            ws.sent(c->s, n);
            int ok = transport_write(c, b);
            Py_DECREF(b);
            if (!ok)
                return 0;
            if (c->s == NULL)
                return 1;
            continue;
        }
        ws.sent(c->s, n);
    }
}

/* After any session call: flush, aim the deadline timer, tell Python when
 * the session is finished. Returns NULL with an exception, else None. */
static PyObject *after(Core *c) {
    if (c->s == NULL)
        Py_RETURN_NONE;
    if (!flush(c))
        return NULL;
    int64_t ms = -1;
    if (ws.next_timeout(c->s, &ms) != WS_OK)
        ms = -1;
    /* A deadline that went away (the handshake's, once open) cancels its
     * timer: -1 tells _c_timer so, and no idle connection keeps one. */
    if (ms != c->timer_ms && (ms >= 0 || c->timer_ms >= 0)) {
        c->timer_ms = ms;
        PyObject *a = PyLong_FromLongLong((long long)ms);
        if (a == NULL)
            return NULL;
        PyObject *r = PyObject_CallMethodObjArgs((PyObject *)c, s_c_timer, a, NULL);
        Py_DECREF(a);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    if (!c->finished_told && ws.is_finished(c->s)) {
        const uint8_t *p = NULL;
        size_t n = 0;
        if (ws.pending(c->s, &p, &n) == WS_OK && n == 0) {
            c->finished_told = 1;
            PyObject *r = PyObject_CallMethodObjArgs((PyObject *)c, s_c_finished, NULL);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *status_result(Core *c, int32_t st) {
    if (st != WS_OK)
        return PyLong_FromLong((long)st);
    PyObject *r = after(c);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    return PyLong_FromLong(0);
}

/* ---- methods ---- */

/* _new_server(upgrader_address) / _new_client(dialer_address, url: bytes) -> status */
static PyObject *core_new_server(Core *c, PyObject *arg) {
    if (ws.server_new == NULL || c->s != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "session_init() not called, or a session exists");
        return NULL;
    }
    void *up = PyLong_AsVoidPtr(arg);
    if (up == NULL && PyErr_Occurred())
        return NULL;
    int32_t st = ws.server_new(up, &callbacks_, c, &c->s);
    return PyLong_FromLong((long)st);
}

static PyObject *core_new_client(Core *c, PyObject *args) {
    PyObject *d;
    const char *url;
    if (!PyArg_ParseTuple(args, "Oy:_new_client", &d, &url))
        return NULL;
    if (ws.client_new == NULL || c->s != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "session_init() not called, or a session exists");
        return NULL;
    }
    void *dp = PyLong_AsVoidPtr(d);
    if (dp == NULL && PyErr_Occurred())
        return NULL;
    int32_t st = ws.client_new(dp, url, &callbacks_, c, &c->s);
    return PyLong_FromLong((long)st);
}

/* _attach(transport, fd): the transport to write through, the socket for
 * direct sends (-1: always the transport). */
static PyObject *core_attach(Core *c, PyObject *args) {
    PyObject *t;
    int fd;
    if (!PyArg_ParseTuple(args, "Oi:_attach", &t, &fd))
        return NULL;
    Py_INCREF(t);
    PyObject *old = c->transport;
    c->transport = t;
    Py_XDECREF(old);
    c->fd = fd;
    c->backlog = 0;
    return after(c);
}

static PyObject *core_detach(Core *c, PyObject *unused) {
    (void)unused;
    Py_CLEAR(c->transport);
    c->fd = -1;
    Py_RETURN_NONE;
}

static PyObject *core_set_deliver(Core *c, PyObject *fn) {
    if (fn == Py_None) {
        Py_CLEAR(c->deliver);
    } else {
        Py_INCREF(fn);
        PyObject *old = c->deliver;
        c->deliver = fn;
        Py_XDECREF(old);
    }
    Py_RETURN_NONE;
}

/* _set_backlog(flag): pause_writing (True) / resume_writing (False). */
static PyObject *core_set_backlog(Core *c, PyObject *flag) {
    int v = PyObject_IsTrue(flag);
    if (v < 0)
        return NULL;
    c->backlog = v;
    Py_RETURN_NONE;
}

static PyObject *core_get_buffer(Core *c, PyObject *hint) {
    (void)hint;
    if (c->direct != NULL)
        return PyMemoryView_FromMemory((char *)c->direct_at + c->direct_got,
                                       (Py_ssize_t)(c->direct_len - c->direct_got), PyBUF_WRITE);
    if (c->col.len == 0) {
        Py_INCREF(read_view);
        return read_view;
    }
    /* Gathering: read the frame's rest (or, with its header still cut,
     * up to 64 KiB) straight into its buffer. */
    size_t want = c->col.need != 0 ? c->col.need : c->col.len + 64 * 1024;
    if (!collect_reserve(&c->col, want))
        return PyErr_NoMemory();
    return PyMemoryView_FromMemory((char *)c->col.buf + c->col.len, (Py_ssize_t)(want - c->col.len), PyBUF_WRITE);
}

/* One ws_session_recv_in_place (failures arrive through on_error). */
static void feed(Core *c, uint8_t *p, size_t n) {
    if (n == 0 || c->s == NULL)
        return;
    Core *outer = feeding_now;
    feeding_now = c;
    c->busy++;
    ws.recv_in_place(c->s, p, n);
    c->busy--;
    feeding_now = outer;
}

/* The end of the handshake's head ("\r\n\r\n") in p[0..n], counting
 * what earlier reads matched: its offset + 1, or 0 when not there. */
static size_t head_end(Core *c, const uint8_t *p, size_t n) {
    static const char crlf2[4] = {'\r', '\n', '\r', '\n'};
    for (size_t i = 0; i < n; i++) {
        if (p[i] == (uint8_t)crlf2[c->head_match])
            c->head_match++;
        else
            c->head_match = p[i] == '\r' ? 1 : 0;
        if (c->head_match == 4)
            return i + 1;
    }
    return 0;
}

/* A cut frame f[0..rest] (next bytes in all, its header complete) that is
 * a large single-frame binary message, uncompressed: its payload is read
 * from here on into a bytes object of its size, which the session then
 * unmasks and checks in place (fed the header, then the payload:
 * feed_direct) and which becomes the message itself, without the copy
 * from a gathering buffer into bytes. Returns 1 when started, 0 when the
 * frame is not such a message, -1 with an exception set. */
static int start_direct(Core *c, const uint8_t *f, size_t rest, size_t next) {
    /* FIN, no RSV bits (no compression), opcode 2: anything else (text,
     * a fragment, a control frame) is gathered as before. */
    if (next < DIRECT_MIN || f[0] != 0x82)
        return 0;
    size_t head = frame_header_len(f, rest);
    if (head == 0 || head > sizeof c->direct_head)
        return 0;
    size_t len = next - head;
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (b == NULL)
        return -1;
    c->direct = b;
    c->direct_at = (uint8_t *)PyBytes_AsString(b);
    c->direct_len = len;
    c->direct_got = rest - head;
    memcpy(c->direct_head, f, head);
    c->direct_head_len = head;
    memcpy(c->direct_at, f + head, c->direct_got);
    return 1;
}

/* The direct frame is whole: the session takes its header, then its
 * payload where it lies (cb_message hands the bytes object on). */
static void feed_direct(Core *c) {
    /* Alive until the session is done with its memory, whatever the
     * application does with the message meanwhile. */
    PyObject *keep = c->direct;
    Py_INCREF(keep);
    feed(c, c->direct_head, c->direct_head_len);
    if (c->direct != NULL)
        feed(c, c->direct_at, c->direct_len);
    /* Not delivered (the session failed, or nobody listens): dropped. */
    Py_CLEAR(c->direct);
    c->direct_got = 0;
    Py_DECREF(keep);
}

/* Feeds the whole frames of p[0..n] and keeps a cut one for gathering
 * (p is read_buf or the gathering buffer itself). */
static int feed_frames(Core *c, uint8_t *p, size_t n) {
    size_t next = 0;
    size_t whole = whole_frames(p, n, &next);
    feed(c, p, whole);
    size_t rest = n - whole;
    if (rest == 0 || c->s == NULL || next > c->collect_max) {
        /* Nothing cut, or a frame too large to gather: the session takes
         * it in pieces (copying into its own message buffer). */
        feed(c, p + whole, rest);
        collect_release(&c->col);
        return 1;
    }
    int direct = start_direct(c, p + whole, rest, next);
    if (direct != 0) {
        collect_release(&c->col);
        return direct > 0;
    }
    if (p == c->col.buf) {
        memmove(c->col.buf, p + whole, rest);
        c->col.len = rest;
    } else {
        c->col.len = 0;
        if (!collect_reserve(&c->col, next > rest ? next : rest + 64 * 1024)) {
            PyErr_NoMemory();
            return 0;
        }
        memcpy(c->col.buf, p + whole, rest);
        c->col.len = rest;
    }
    c->col.need = next;
    return 1;
}

/* asyncio's BufferedProtocol.buffer_updated(nbytes): the bytes it read
 * into read_buf go to the session. */
static PyObject *core_buffer_updated(Core *c, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred())
        return NULL;
    if (c->direct != NULL) {
        if (n < 0 || (size_t)n > c->direct_len - c->direct_got) {
            PyErr_SetString(PyExc_ValueError, "buffer_updated: nbytes out of range");
            return NULL;
        }
        if (!ensure(c))
            return NULL;
        c->direct_got += (size_t)n;
        if (c->direct_got == c->direct_len)
            feed_direct(c);
        return after(c);
    }
    if (n < 0 || (c->col.len == 0 && n > READ_BUF)) {
        PyErr_SetString(PyExc_ValueError, "buffer_updated: nbytes out of range");
        return NULL;
    }
    if (!ensure(c))
        return NULL;
    uint8_t *p = read_buf;
    size_t len = (size_t)n;
    if (c->col.len != 0) {
        if ((size_t)n > c->col.cap - c->col.len) {
            PyErr_SetString(PyExc_ValueError, "buffer_updated: nbytes out of range");
            return NULL;
        }
        c->col.len += (size_t)n;
        p = c->col.buf;
        len = c->col.len;
        if (c->col.need != 0 && len < c->col.need)
            return after(c); /* the frame is not whole yet */
    }
    int ok = 1;
    if (c->framing) {
        ok = feed_frames(c, p, len);
    } else {
        /* The handshake: its head goes in first; the frames after it (in
         * the same read) are whole-frame fed once the session is open. */
        size_t head = ws.is_tls(c->s) ? 0 : head_end(c, p, len);
        feed(c, p, head != 0 ? head : len);
        if (head != 0 && c->framing)
            ok = feed_frames(c, p + head, len - head);
        else if (head != 0)
            feed(c, p + head, len - head);
        if (c->col.len != 0 && p == c->col.buf && !c->framing)
            collect_release(&c->col);
    }
    if (!ok)
        return NULL;
    return after(c);
}

/* _feed_eof(): the peer's FIN or the transport's end. */
static PyObject *core_feed_eof(Core *c, PyObject *unused) {
    (void)unused;
    /* A frame cut by the end is never whole. */
    Py_CLEAR(c->direct);
    c->direct_got = 0;
    if (c->s == NULL)
        Py_RETURN_NONE;
    c->busy++;
    ws.recv_eof(c->s);
    c->busy--;
    return after(c);
}

/* A large message straight from its bytes object d (data[0..len]): the
 * header from ws_session_send_head and the payload in one sendmsg, what
 * the socket does not take through the transport (d itself or a view of
 * it: no copy here). Returns 1 when sent so, 0 when the session encodes
 * it instead (*st: WS_OK) or refused it (*st), -1 with an exception set. */
static int send_direct(Core *c, int32_t type, PyObject *d, const char *data, size_t len, int32_t *st) {
    *st = WS_OK;
    /* What the session holds goes first; it may end up in the transport. */
    if (!flush(c))
        return -1;
    if (c->s == NULL || c->backlog || c->fd < 0 || c->transport == NULL)
        return 0;
    uint8_t head[FRAME_HEADER_MAX];
    size_t hl = 0;
    *st = ws.send_head(c->s, type, len, head, &hl);
    if (*st != WS_OK || hl == 0)
        return 0;
    struct iovec iov[2] = {{head, hl}, {(void *)data, len}};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    ssize_t k;
    Py_BEGIN_ALLOW_THREADS
    k = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    Py_END_ALLOW_THREADS
    size_t done = k > 0 ? (size_t)k : 0; /* EAGAIN or an error: the transport takes it all (and reports a dead socket) */
    if (done == hl + len)
        return 1;
    PyObject *rest;
    if (done < hl) {
        PyObject *h = PyBytes_FromStringAndSize((const char *)head + done, (Py_ssize_t)(hl - done));
        if (h == NULL)
            return -1;
        int ok = transport_write(c, h);
        Py_DECREF(h);
        if (!ok)
            return -1;
        if (c->transport == NULL)
            return 1;
        Py_INCREF(d);
        rest = d;
    } else {
        PyObject *view = PyMemoryView_FromObject(d);
        if (view == NULL)
            return -1;
        rest = PySequence_GetSlice(view, (Py_ssize_t)(done - hl), (Py_ssize_t)len);
        Py_DECREF(view);
        if (rest == NULL)
            return -1;
    }
    int ok = transport_write(c, rest);
    Py_DECREF(rest);
    return ok ? 1 : -1;
}

/* send(type, data: bytes) -> bytes the transport still holds (>= 0), or
 * -1 - status when ws_session_send refused. */
static PyObject *core_send_varargs(Core *c, PyObject *args) {
    PyObject *t, *d;
    if (!PyArg_UnpackTuple(args, "send", 2, 2, &t, &d))
        return NULL;
    if (!ensure(c))
        return NULL;
    long type = PyLong_AsLong(t);
    if (type == -1 && PyErr_Occurred())
        return NULL;
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(d, &data, &len) < 0)
        return NULL;
    int32_t st = WS_OK;
    int direct = (size_t)len >= SEND_DIRECT_MIN ? send_direct(c, (int32_t)type, d, data, (size_t)len, &st) : 0;
    if (direct < 0)
        return NULL;
    if (direct == 0 && st == WS_OK) {
        if (!ensure(c)) /* the flush's transport.write may have ended it */
            return NULL;
        st = ws.send(c->s, (int32_t)type, (const uint8_t *)data, (size_t)len);
    }
    if (st != WS_OK)
        return PyLong_FromLong(-1L - (long)st);
    /* Inside this connection's read (a ConnectionListener answering from
     * on_message): the read's after() flushes what all its messages
     * produced with one send(2). */
    if (c->busy == 0 && !flush(c))
        return NULL;
    if (!c->backlog)
        return PyLong_FromLong(0);
    return PyObject_CallMethodObjArgs(c->transport, s_get_write_buffer_size, NULL);
}

/* _control(type, data: bytes) -> status (a ping or pong, or a prepared
 * message's address with type -1). */
static PyObject *core_control(Core *c, PyObject *args) {
    int type;
    const char *data;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "iy#:_control", &type, &data, &len))
        return NULL;
    if (!ensure(c))
        return NULL;
    return status_result(c, ws.send(c->s, (int32_t)type, (const uint8_t *)data, (size_t)len));
}

/* _close(code, reason: bytes) -> status */
static PyObject *core_close(Core *c, PyObject *args) {
    int code;
    const char *data;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "iy#:_close", &code, &data, &len))
        return NULL;
    if (code < 0 || code > 0xFFFF) {
        /* Cast to uint16_t it would become another, valid-looking code. */
        PyErr_Format(PyExc_ValueError, "invalid close code %d", code);
        return NULL;
    }
    if (!ensure(c))
        return NULL;
    return status_result(c, ws.close(c->s, (uint16_t)code, (const uint8_t *)data, (size_t)len));
}

/* _after(): flush and re-aim after a call made through ctypes on _address
 * (a prepared message). */
static PyObject *core_after(Core *c, PyObject *unused) {
    (void)unused;
    return after(c);
}

/* _on_timeout(): the deadline timer fired. */
static PyObject *core_on_timeout(Core *c, PyObject *unused) {
    (void)unused;
    c->timer_ms = -1;
    if (c->s == NULL)
        Py_RETURN_NONE;
    c->busy++;
    ws.on_timeout(c->s);
    c->busy--;
    return after(c);
}

/* _set_collect_max(bytes): frames up to this size are gathered whole. */
static PyObject *core_set_collect_max(Core *c, PyObject *arg) {
    size_t v = PyLong_AsSize_t(arg);
    if (v == (size_t)-1 && PyErr_Occurred())
        return NULL;
    c->collect_max = v;
    Py_RETURN_NONE;
}

/* _set_timeouts(close_ms) */
static PyObject *core_set_timeouts(Core *c, PyObject *arg) {
    unsigned long ms = PyLong_AsUnsignedLong(arg);
    if (ms == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (!ensure(c))
        return NULL;
    /* Keepalive stays in Python (asyncio timers, ping futures): the
     * session's own ping interval is off; no idle timeout. */
    return PyLong_FromLong((long)ws.set_timeouts(c->s, 0, 10000, (uint32_t)ms, 0));
}

static PyObject *core_negotiated(Core *c, PyObject *unused) {
    (void)unused;
    if (!ensure(c))
        return NULL;
    const char *sp = ws.subprotocol(c->s);
    return Py_BuildValue("(sO)", sp != NULL ? sp : "", ws.compression(c->s) ? Py_True : Py_False);
}

/* _address() -> the ws_session* (for ctypes calls on this thread), 0 when gone. */
static PyObject *core_address(Core *c, PyObject *unused) {
    (void)unused;
    return PyLong_FromVoidPtr(c->s);
}

/* _free() -> True when freed (False: inside a session call; try later). */
static PyObject *core_free(Core *c, PyObject *unused) {
    (void)unused;
    if (c->busy)
        Py_RETURN_FALSE;
    if (c->s != NULL) {
        void *s = c->s;
        c->s = NULL;
        ws.free(s);
    }
    Py_RETURN_TRUE;
}

static PyMethodDef core_methods[] = {
    {"get_buffer", (PyCFunction)core_get_buffer, METH_O, "BufferedProtocol.get_buffer: the shared read buffer."},
    {"buffer_updated", (PyCFunction)core_buffer_updated, METH_O, "BufferedProtocol.buffer_updated: feed the session."},
    {"send", (PyCFunction)core_send_varargs, METH_VARARGS,
     "send(type, data) -> bytes the transport holds, or -1 - status when refused."},
    {"_new_server", (PyCFunction)core_new_server, METH_O, "_new_server(upgrader_address) -> status"},
    {"_new_client", (PyCFunction)core_new_client, METH_VARARGS, "_new_client(dialer_address, url) -> status"},
    {"_attach", (PyCFunction)core_attach, METH_VARARGS, "_attach(transport, fd)"},
    {"_detach", (PyCFunction)core_detach, METH_NOARGS, "forget the transport"},
    {"_set_deliver", (PyCFunction)core_set_deliver, METH_O, "_set_deliver(fn or None)"},
    {"_set_backlog", (PyCFunction)core_set_backlog, METH_O, "_set_backlog(bool)"},
    {"_feed_eof", (PyCFunction)core_feed_eof, METH_NOARGS, "ws_session_recv_eof"},
    {"_control", (PyCFunction)core_control, METH_VARARGS, "_control(type, data) -> status"},
    {"_close", (PyCFunction)core_close, METH_VARARGS, "_close(code, reason) -> status"},
    {"_after", (PyCFunction)core_after, METH_NOARGS, "flush and re-aim the deadline"},
    {"_on_timeout", (PyCFunction)core_on_timeout, METH_NOARGS, "ws_session_on_timeout"},
    {"_set_timeouts", (PyCFunction)core_set_timeouts, METH_O, "_set_timeouts(close_ms) -> status"},
    {"_set_collect_max", (PyCFunction)core_set_collect_max, METH_O, "_set_collect_max(bytes)"},
    {"_negotiated", (PyCFunction)core_negotiated, METH_NOARGS, "(subprotocol, compression)"},
    {"_address", (PyCFunction)core_address, METH_NOARGS, "the ws_session* as an int"},
    {"_free", (PyCFunction)core_free, METH_NOARGS, "ws_session_free -> True, or False when busy"},
    {NULL, NULL, 0, NULL},
};

static int core_init(Core *c, PyObject *args, PyObject *kw) {
    (void)args;
    (void)kw;
    c->fd = -1;
    c->timer_ms = -1;
    c->collect_max = (size_t)64 * 1024 * 1024 + 14;
    return 0;
}

static PyTypeObject *core_type;

static int core_traverse(Core *c, visitproc visit, void *arg) {
    Py_VISIT(c->deliver);
    Py_VISIT(c->transport);
    /* An instance holds a reference to its heap type. For a Python
     * subclass, subtype_traverse visits the type itself (3.8) or leaves
     * it to a heap base (3.9+: a type object alive as long as the module
     * anyway); visiting it here too would count that reference twice on
     * 3.8. So only instances of this very type visit it. */
    if (Py_TYPE((PyObject *)c) == core_type)
        Py_VISIT(Py_TYPE((PyObject *)c));
    return 0;
}

static int core_clear(Core *c) {
    Py_CLEAR(c->deliver);
    Py_CLEAR(c->transport);
    Py_CLEAR(c->direct);
    return 0;
}

static void core_dealloc(Core *c) {
    PyTypeObject *tp = Py_TYPE((PyObject *)c);
    PyObject_GC_UnTrack((PyObject *)c);
    if (c->s != NULL && ws.free != NULL) {
        void *s = c->s;
        c->s = NULL;
        ws.free(s);
    }
    core_clear(c);
    collect_release(&c->col);
    freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    f(c);
    Py_DECREF(tp);
}

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "One asyncio connection over a ws_session (libws.asyncio's session path)."},
    {Py_tp_init, core_init},
    {Py_tp_methods, core_methods},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_dealloc, core_dealloc},
    {0, NULL},
};

static PyType_Spec core_spec = {
    "libws._speedups.SessionCore",
    sizeof(Core),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    core_slots,
};

/* session_init(addresses: dict name -> int) */
static PyObject *session_init(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyDict_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "session_init takes a dict of function addresses");
        return NULL;
    }
    void *f[N_FUNCS];
    for (size_t i = 0; i < N_FUNCS; i++) {
        PyObject *v = PyDict_GetItemString(arg, ws_names[i]); /* borrowed */
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "%s", ws_names[i]);
            return NULL;
        }
        f[i] = PyLong_AsVoidPtr(v);
        if (f[i] == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "%s is NULL", ws_names[i]);
            return NULL;
        }
    }
    ws.server_new = (server_new_fn)f[0];
    ws.client_new = (client_new_fn)f[1];
    ws.free = (free_fn)f[2];
    ws.recv_in_place = (recv_fn)f[3];
    ws.recv_eof = (eof_fn)f[4];
    ws.pending = (pending_fn)f[5];
    ws.sent = (sent_fn)f[6];
    ws.is_finished = (is_finished_fn)f[7];
    ws.send = (send_fn)f[8];
    ws.close = (close_fn)f[9];
    ws.set_timeouts = (set_timeouts_fn)f[10];
    ws.next_timeout = (next_timeout_fn)f[11];
    ws.on_timeout = (on_timeout_fn)f[12];
    ws.subprotocol = (subprotocol_fn)f[13];
    ws.compression = (compression_fn)f[14];
    ws.is_tls = (is_tls_fn)f[15];
    ws.send_head = (send_head_fn)f[16];
    Py_RETURN_NONE;
}

static PyMethodDef session_functions[] = {
    {"feeding", feeding, METH_NOARGS, "feeding() -> the SessionCore whose bytes are being read now, or None."},
    {"session_init", session_init, METH_O,
     "session_init({name: address}): the ws_session_* functions SessionCore calls."},
    {NULL, NULL, 0, NULL},
};

int add_session_type(PyObject *module) {
    static struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&s_write, "write"},     {&s_get_write_buffer_size, "get_write_buffer_size"},
        {&s_c_open, "_c_open"},  {&s_c_pong, "_c_pong"},
        {&s_c_close, "_c_close"}, {&s_c_error, "_c_error"},
        {&s_c_timer, "_c_timer"}, {&s_c_finished, "_c_finished"},
        {&s_report, "_report"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL)
            return -1;
    }
    read_buf = PyMem_Malloc(READ_BUF);
    if (read_buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    read_view = PyMemoryView_FromMemory((char *)read_buf, READ_BUF, PyBUF_WRITE);
    if (read_view == NULL)
        return -1;
    PyObject *tp = PyType_FromSpec(&core_spec);
    if (tp == NULL)
        return -1;
    core_type = (PyTypeObject *)tp;
    if (PyModule_AddObject(module, "SessionCore", tp) < 0) {
        Py_DECREF(tp);
        return -1;
    }
    return PyModule_AddFunctions(module, session_functions);
}
