/* libws._speedups.SessionCore (_session.c), added to the module by _speedups.c. */
#ifndef LIBWS_PY_SESSION_H
#define LIBWS_PY_SESSION_H
#include <Python.h>
int add_session_type(PyObject *module);
#endif
