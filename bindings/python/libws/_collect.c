/*
 * Whole frames for SessionCore. ws_session_recv_in_place delivers a
 * message without any copy when its frame is whole in the bytes it is
 * given; a frame cut by the end of a read would be copied into the
 * session's own message buffer instead. So SessionCore hands the session
 * whole frames only: it finds where they end (the header's length alone;
 * the session checks everything else) and gathers a cut frame here,
 * reading the rest of it straight into this buffer (asyncio reads into
 * what get_buffer returns). A 1 MiB message then costs the kernel's copy
 * and the copy into a Python bytes, as in picows (a large binary frame is
 * gathered into its bytes object instead: _session.c's start_direct).
 *
 * One gathering buffer is kept for the process (like the libws loop's one
 * kept large buffer): reused warm, it spares the page faults of a fresh
 * megabyte per message.
 */

#include "_collect.h"

#include <stdlib.h>
#include <string.h>

/* The spare slot: at most this large is kept. */
#define SPARE_MAX ((size_t)64 * 1024 * 1024)
static uint8_t *spare;
static size_t spare_cap;

size_t frame_header_len(const uint8_t *p, size_t n) {
    if (n < 2)
        return 0;
    size_t len7 = p[1] & 0x7f;
    size_t head = 2 + ((p[1] & 0x80) ? 4 : 0) + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    return n < head ? 0 : head;
}

/* The size of the frame at p (header + payload), 0 when its header is
 * not complete in p[0..n]. */
static size_t frame_size(const uint8_t *p, size_t n) {
    size_t head = frame_header_len(p, n);
    if (head == 0)
        return 0;
    size_t len7 = p[1] & 0x7f;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)p[2] << 8) | p[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | p[i];
    }
    if (len > (uint64_t)(SIZE_MAX - head))
        return SIZE_MAX;
    return head + (size_t)len;
}

size_t whole_frames(const uint8_t *p, size_t n, size_t *next) {
    size_t at = 0;
    *next = 0;
    while (at < n) {
        size_t f = frame_size(p + at, n - at);
        if (f == 0)
            return at;
        if (f > n - at) {
            *next = f;
            return at;
        }
        at += f;
    }
    return at;
}

int collect_reserve(collect *c, size_t want) {
    if (want <= c->cap)
        return 1;
    if (c->len == 0 && spare != NULL && spare_cap >= want) {
        free(c->buf);
        c->buf = spare;
        c->cap = spare_cap;
        spare = NULL;
        spare_cap = 0;
        return 1;
    }
    uint8_t *b = realloc(c->buf, want);
    if (b == NULL)
        return 0;
    c->buf = b;
    c->cap = want;
    return 1;
}

void collect_release(collect *c) {
    c->len = 0;
    c->need = 0;
    if (c->buf == NULL)
        return;
    if (c->cap <= SPARE_MAX && c->cap > spare_cap) {
        free(spare);
        spare = c->buf;
        spare_cap = c->cap;
    } else {
        free(c->buf);
    }
    c->buf = NULL;
    c->cap = 0;
}
