/* Whole WebSocket frames for SessionCore (_collect.c): where the frames
 * in a run of bytes end, and the buffer a frame larger than one read is
 * gathered in. */
#ifndef LIBWS_PY_COLLECT_H
#define LIBWS_PY_COLLECT_H
#include <stddef.h>
#include <stdint.h>

/* The bytes of the frame a run of bytes holds at its start. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;  /* bytes gathered (0: not gathering) */
    size_t need; /* the frame's whole size, header included (0: its header is not complete yet) */
} collect;

/* The length of the whole frames at the start of p[0..n]; *next gets the
 * size of the frame after them (header included) when its header is
 * complete, else 0. No validation: the session checks every frame. */
size_t whole_frames(const uint8_t *p, size_t n, size_t *next);

/* The longest frame header (ws.h's WS_MAX_FRAME_HEADER). */
#define FRAME_HEADER_MAX 14

/* The length of the header of the frame at p, 0 when it is not complete
 * in p[0..n]. */
size_t frame_header_len(const uint8_t *p, size_t n);

/* Makes room for `want` bytes in c (keeping its len bytes); 0 when out of
 * memory. The buffer comes from the process's one spare when that is
 * large enough. */
int collect_reserve(collect *c, size_t want);

/* Gathering is over: the buffer goes back to the spare slot (or is freed). */
void collect_release(collect *c);

#endif
