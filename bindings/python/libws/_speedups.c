/*
 * libws._speedups: the per-message hot path of libws.asyncio in C.
 *
 * Optional. Without it (not built, or LIBWS_NO_SPEEDUPS=1) libws.asyncio
 * does the same through ctypes; the behaviour is the same, the CPU per
 * message is not (a ctypes call costs about a microsecond, a ctypes
 * callback more, and each drags Python glue along).
 *
 * It does not link against libws: libws.asyncio hands it, once, the
 * addresses of four functions of the libws.so that ctypes loaded
 * (ws_loop_poll, ws_loop_next_timeout_ms, ws_conn_write_message,
 * ws_conn_buffered_amount), the dict of message targets and the error
 * reporter. So it builds with nothing but Python's headers, and it always
 * calls the library the package loaded.
 *
 * What it does:
 *   poll(loop)           ws_loop_poll(loop, 0) and ws_loop_next_timeout_ms
 *                        in one call, the GIL kept (the poll never waits);
 *   send(conn, type, b)  ws_conn_write_message and ws_conn_buffered_amount
 *                        in one call;
 *   on_message           a C callback for ws_loop_callbacks.on_message:
 *                        the payload becomes str (text) or bytes and goes
 *                        to targets[conn](message); an exception from it
 *                        goes to report(conn, exception), never into C.
 *
 * Those serve libws.asyncio's loop path. Its session path (the default)
 * is SessionCore, in _session.c (with _collect.c), added to this module
 * at import; session_init() hands it the ws_session_* functions.
 *
 * The limited API of Python 3.8 (one abi3 module for every Python >= 3.8).
 */

#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>

#include "_session.h"

/* include/ws.h, the four prototypes used here (the values of ws_status
 * and ws_msg_type are int32_t in the C ABI). */
typedef int32_t (*ws_loop_poll_fn)(void *lp, int64_t timeout_ms);
typedef int64_t (*ws_loop_next_timeout_ms_fn)(void *lp);
typedef int32_t (*ws_conn_write_message_fn)(void *conn, int32_t type, const uint8_t *data, size_t len);
typedef size_t (*ws_conn_buffered_amount_fn)(void *conn);

#define WS_TEXT 1
#define WS_OK 0

/* Messages this large are written with the GIL released (the copy into the
 * socket or the queue takes long enough for other threads to notice). */
#define RELEASE_GIL_AT (64 * 1024)

static ws_loop_poll_fn p_poll;
static ws_loop_next_timeout_ms_fn p_next_timeout;
static ws_conn_write_message_fn p_write;
static ws_conn_buffered_amount_fn p_buffered;
/* dict: connection handle (int) -> deliver(message) */
static PyObject *targets;
/* report(handle, exception): called when a deliver raised */
static PyObject *report;

static int ready(void) {
    if (p_poll == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "libws._speedups.init() was not called");
        return 0;
    }
    return 1;
}

/* ws_loop_callbacks.on_message. Runs on the thread driving the loop: with
 * the GIL when poll() below drives it, without when a ctypes call does
 * (PyGILState_Ensure covers both). */
static void on_message(void *conn, int32_t type, const uint8_t *data, size_t len, void *user_data) {
    (void)user_data;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *et, *ev, *tb;
    /* Whatever the caller had pending stays pending. */
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *key = PyLong_FromVoidPtr(conn);
    PyObject *deliver = NULL, *msg = NULL, *res = NULL;
    if (key == NULL)
        goto failed;
    deliver = targets != NULL ? PyDict_GetItemWithError(targets, key) : NULL; /* borrowed */
    if (deliver == NULL) {
        if (PyErr_Occurred())
            goto failed;
        goto done; /* not a connection of libws.asyncio's: nobody to tell */
    }
    Py_INCREF(deliver);
    if (type == WS_TEXT)
        msg = PyUnicode_DecodeUTF8((const char *)data, (Py_ssize_t)len, "strict");
    else
        msg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    if (msg == NULL)
        goto failed;
    res = PyObject_CallFunctionObjArgs(deliver, msg, NULL);
    if (res == NULL)
        goto failed;
    goto done;
failed: {
    /* The exception goes to report(); if there is no report or it fails
     * too, Python's unraisable hook gets it (never C). */
    PyObject *t, *v, *b;
    PyErr_Fetch(&t, &v, &b);
    PyErr_NormalizeException(&t, &v, &b);
    if (v != NULL && b != NULL)
        PyException_SetTraceback(v, b);
    PyObject *r = NULL;
    if (report != NULL && key != NULL && v != NULL) {
        r = PyObject_CallFunctionObjArgs(report, key, v, NULL);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(b);
    } else {
        PyErr_Restore(t, v, b);
    }
    if (r == NULL)
        PyErr_WriteUnraisable(deliver != NULL ? deliver : Py_None);
    Py_XDECREF(r);
}
done:
    Py_XDECREF(res);
    Py_XDECREF(msg);
    Py_XDECREF(deliver);
    Py_XDECREF(key);
    PyErr_Restore(et, ev, tb);
    PyGILState_Release(g);
}

static void *address(PyObject *o, const char *what) {
    void *p = PyLong_AsVoidPtr(o);
    if (p == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s is NULL", what);
    return p;
}

/* init(poll, next_timeout, write, buffered, targets, report) */
static PyObject *sp_init(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *a[4], *t, *r;
    if (!PyArg_ParseTuple(args, "OOOOO!O:init", &a[0], &a[1], &a[2], &a[3], &PyDict_Type, &t, &r))
        return NULL;
    void *f[4];
    static const char *names[4] = {"ws_loop_poll", "ws_loop_next_timeout_ms", "ws_conn_write_message",
                                   "ws_conn_buffered_amount"};
    for (int i = 0; i < 4; i++) {
        f[i] = address(a[i], names[i]);
        if (f[i] == NULL)
            return NULL;
    }
    if (!PyCallable_Check(r)) {
        PyErr_SetString(PyExc_TypeError, "report must be callable");
        return NULL;
    }
    PyObject *old_targets = targets, *old_report = report;
    Py_INCREF(t);
    Py_INCREF(r);
    targets = t;
    report = r;
    Py_XDECREF(old_targets);
    Py_XDECREF(old_report);
    p_poll = (ws_loop_poll_fn)f[0];
    p_next_timeout = (ws_loop_next_timeout_ms_fn)f[1];
    p_write = (ws_conn_write_message_fn)f[2];
    p_buffered = (ws_conn_buffered_amount_fn)f[3];
    Py_RETURN_NONE;
}

/* poll(loop) -> the loop's next timeout in ms (-1: none), or -2 - status
 * when ws_loop_poll failed. */
static PyObject *sp_poll(PyObject *self, PyObject *arg) {
    (void)self;
    if (!ready())
        return NULL;
    void *lp = address(arg, "loop");
    if (lp == NULL)
        return NULL;
    int32_t st = p_poll(lp, 0);
    if (PyErr_Occurred()) /* never set by the callbacks; be safe */
        return NULL;
    if (st != WS_OK)
        return PyLong_FromLong(-2L - (long)st);
    return PyLong_FromLongLong((long long)p_next_timeout(lp));
}

/* send(conn, type, data: bytes) -> bytes now queued (>= 0), or -1 - status
 * when ws_conn_write_message failed. */
static PyObject *sp_send(PyObject *self, PyObject *args) {
    (void)self;
    if (!ready())
        return NULL;
    if (PyTuple_Size(args) != 3) {
        PyErr_SetString(PyExc_TypeError, "send(conn, type, data) takes 3 arguments");
        return NULL;
    }
    void *conn = address(PyTuple_GetItem(args, 0), "conn");
    if (conn == NULL)
        return NULL;
    long type = PyLong_AsLong(PyTuple_GetItem(args, 1));
    if (type == -1 && PyErr_Occurred())
        return NULL;
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(PyTuple_GetItem(args, 2), &data, &len) < 0)
        return NULL;
    int32_t st;
    size_t queued = 0;
    if (len >= RELEASE_GIL_AT) {
        Py_BEGIN_ALLOW_THREADS
        st = p_write(conn, (int32_t)type, (const uint8_t *)data, (size_t)len);
        if (st == WS_OK)
            queued = p_buffered(conn);
        Py_END_ALLOW_THREADS
    } else {
        st = p_write(conn, (int32_t)type, (const uint8_t *)data, (size_t)len);
        if (st == WS_OK)
            queued = p_buffered(conn);
    }
    if (st != WS_OK)
        return PyLong_FromLong(-1L - (long)st);
    return PyLong_FromSize_t(queued);
}

static PyObject *sp_on_message_address(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)on_message);
}

static PyMethodDef methods[] = {
    {"init", sp_init, METH_VARARGS,
     "init(poll, next_timeout, write, buffered, targets, report): the addresses of ws_loop_poll, "
     "ws_loop_next_timeout_ms, ws_conn_write_message and ws_conn_buffered_amount, the dict "
     "handle -> deliver(message) and report(handle, exception)."},
    {"poll", sp_poll, METH_O,
     "poll(loop) -> next timeout in ms (-1: none), or -2 - status when ws_loop_poll(loop, 0) failed."},
    {"send", sp_send, METH_VARARGS,
     "send(conn, type, data) -> bytes queued after ws_conn_write_message, or -1 - status when it failed."},
    {"on_message_address", sp_on_message_address, METH_NOARGS,
     "The address of the C on_message callback (for ws_loop_callbacks.on_message)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "libws._speedups", "libws.asyncio's per-message path in C (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && add_session_type(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
