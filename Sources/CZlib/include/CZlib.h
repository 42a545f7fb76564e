// A small C interface over zlib (Debian's zlib1g-dev) for the compressor and decompressor HTTP
// filters: zlib's init calls are macros, which Swift cannot call, and a z_stream stays opaque to
// Swift (the worker pools them). zlib_shim.c has the rest.
#ifndef BALLAST_CZLIB_H
#define BALLAST_CZLIB_H

#include <stddef.h>

typedef struct z_stream_s ballast_zstream;

/// Flush modes (zlib's values).
enum { BALLAST_Z_NO_FLUSH = 0, BALLAST_Z_SYNC_FLUSH = 2, BALLAST_Z_FINISH = 4 };
/// Return codes (zlib's values).
enum { BALLAST_Z_OK = 0, BALLAST_Z_STREAM_END = 1, BALLAST_Z_NEED_DICT = 2, BALLAST_Z_BUF_ERROR = -5 };

/// A deflate stream writing the gzip format (`window_bits` 9..15 plus 16, as Envoy's gzip
/// compressor); NULL when zlib refuses the parameters or memory runs out.
ballast_zstream *ballast_deflate_new(int level, int window_bits, int mem_level, int strategy);
/// Ready for a new body with the same parameters (no allocation).
int ballast_deflate_reset(ballast_zstream *z);
/// Compresses `in` into `out`: the bytes taken and written come back in `*used` / `*written`.
int ballast_deflate(ballast_zstream *z, const void *in, size_t in_len, void *out, size_t out_cap,
                    int flush, size_t *used, size_t *written);
void ballast_deflate_free(ballast_zstream *z);

/// An inflate stream reading gzip (window_bits 9..15 plus 16); NULL on failure.
ballast_zstream *ballast_inflate_new(int window_bits);
int ballast_inflate_reset(ballast_zstream *z);
int ballast_inflate(ballast_zstream *z, const void *in, size_t in_len, void *out, size_t out_cap,
                    size_t *used, size_t *written);
void ballast_inflate_free(ballast_zstream *z);

#endif
