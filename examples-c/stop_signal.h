/*
 * stop_signal.h: SIGINT/SIGTERM handled on a thread of their own, for the
 * event-loop examples.
 *
 * Why not a handler that sets a flag: a loop of
 *     while (!stop_requested) ws_loop_poll(loop, -1);
 * misses a signal that arrives after the check and before the wait starts
 * (the wait then blocks until some unrelated event). Here both signals are
 * blocked in every thread and one thread takes them with sigwait(2), so no
 * signal can fall between a check and a wait; it then calls ws_loop_shutdown
 * (which may be called from any thread) and the main thread's ws_loop_run
 * returns once every connection is closed. A second signal while that
 * graceful shutdown runs ends the process at once (exit status 130).
 *
 * Usage: stop_signal_block() first in main, before anything can start a
 * thread (threads inherit the mask; one that did not block the signals
 * would take them with their default action); stop_signal_watch(loop,
 * timeout_ms) once the loop exists; stop_signal_forget() before
 * ws_loop_free. SIGPIPE is ignored as well.
 */
#ifndef LIBWS_EXAMPLES_STOP_SIGNAL_H
#define LIBWS_EXAMPLES_STOP_SIGNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ws.h"

static sigset_t stop_signal_set;
/* Guards the target's loop against stop_signal_forget (the loop being
 * freed) while the signal thread uses it. */
static pthread_mutex_t stop_signal_lock = PTHREAD_MUTEX_INITIALIZER;

/* Blocks SIGINT and SIGTERM in the calling thread (and in every thread it
 * starts later) and ignores SIGPIPE. 0 on success. */
static int stop_signal_block(void) {
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&stop_signal_set);
    sigaddset(&stop_signal_set, SIGINT);
    sigaddset(&stop_signal_set, SIGTERM);
    return pthread_sigmask(SIG_BLOCK, &stop_signal_set, NULL);
}

struct stop_signal_target {
    struct ws_loop *loop;
    int64_t timeout_ms;
};

static void *stop_signal_wait(void *arg) {
    struct stop_signal_target *t = (struct stop_signal_target *)arg;
    int sig = 0;
    int stops = 0;
    for (;;) {
        if (sigwait(&stop_signal_set, &sig) != 0) continue;
        pthread_mutex_lock(&stop_signal_lock);
        /* A second signal, or one after the loop is gone: no more waiting. */
        if (stops++ > 0 || t->loop == NULL) _exit(130);
        ws_status st = ws_loop_shutdown(t->loop, t->timeout_ms);
        pthread_mutex_unlock(&stop_signal_lock);
        if (st != WS_OK) {
            fprintf(stderr, "shutdown on signal %d: %s\n", sig, ws_status_str(st));
            _exit(1);
        }
    }
    return NULL;
}

static struct stop_signal_target stop_signal_target_;

/* Starts the thread that answers the first SIGINT/SIGTERM with
 * ws_loop_shutdown(loop, timeout_ms). Call stop_signal_forget() before
 * freeing the loop (the thread is detached and never joined). 0 on
 * success. */
static int stop_signal_watch(struct ws_loop *loop, int64_t timeout_ms) {
    struct stop_signal_target *t = &stop_signal_target_;
    pthread_t thread;
    pthread_attr_t attr;
    int rc;
    t->loop = loop;
    t->timeout_ms = timeout_ms;
    if ((rc = pthread_attr_init(&attr)) != 0) return rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&thread, &attr, stop_signal_wait, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) fprintf(stderr, "signal thread: %s\n", strerror(rc));
    return rc;
}

/* The loop is about to be freed: a signal from now on ends the process
 * (status 130) without touching it. Waits for a shutdown call in progress
 * on the signal thread. */
static void stop_signal_forget(void) {
    pthread_mutex_lock(&stop_signal_lock);
    stop_signal_target_.loop = NULL;
    pthread_mutex_unlock(&stop_signal_lock);
}

#endif
