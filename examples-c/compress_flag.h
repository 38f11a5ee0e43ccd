/* The --compress[=MODE] flag of the example programs.
 *
 *   --compress            permessage-deflate with ws_compression_options_default()
 *                         (12-bit windows, context takeover, pooled state)
 *   --compress=pooled     the same
 *   --compress=dedicated  15-bit windows, each connection its own zlib states
 *   --compress=shared     no context takeover either way, nothing per connection
 *
 * compress_flag() returns 1 when `arg` is one of these (filling *opts),
 * 0 when it is another argument, -1 for --compress=<unknown mode>. */
#ifndef LIBWS_EXAMPLES_COMPRESS_FLAG_H
#define LIBWS_EXAMPLES_COMPRESS_FLAG_H

#include <string.h>

#include "ws.h"

static int compress_flag(const char *arg, ws_compression_options *opts) {
    if (strcmp(arg, "--compress") != 0 && strncmp(arg, "--compress=", 11) != 0) return 0;
    *opts = ws_compression_options_default();
    const char *mode = arg[10] == '=' ? arg + 11 : "pooled";
    if (strcmp(mode, "pooled") == 0) {
        opts->memory = WS_COMPRESSION_POOLED;
    } else if (strcmp(mode, "dedicated") == 0) {
        opts->memory = WS_COMPRESSION_DEDICATED;
        opts->server_max_window_bits = 15;
        opts->client_max_window_bits = 15;
    } else if (strcmp(mode, "shared") == 0) {
        opts->memory = WS_COMPRESSION_SHARED;
    } else {
        return -1;
    }
    return 1;
}

#endif
