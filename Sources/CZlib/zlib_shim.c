#include "CZlib.h"

#include <stdlib.h>
#include <zlib.h>

ballast_zstream *ballast_deflate_new(int level, int window_bits, int mem_level, int strategy) {
    z_stream *z = calloc(1, sizeof(z_stream));
    if (z == NULL) return NULL;
    if (deflateInit2(z, level, Z_DEFLATED, window_bits, mem_level, strategy) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int ballast_deflate_reset(ballast_zstream *z) { return deflateReset(z); }

int ballast_deflate(ballast_zstream *z, const void *in, size_t in_len, void *out, size_t out_cap,
                    int flush, size_t *used, size_t *written) {
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)in_len;
    z->next_out = (Bytef *)out;
    z->avail_out = (uInt)out_cap;
    int rc = deflate(z, flush);
    *used = in_len - z->avail_in;
    *written = out_cap - z->avail_out;
    return rc;
}

void ballast_deflate_free(ballast_zstream *z) {
    if (z == NULL) return;
    deflateEnd(z);
    free(z);
}

ballast_zstream *ballast_inflate_new(int window_bits) {
    z_stream *z = calloc(1, sizeof(z_stream));
    if (z == NULL) return NULL;
    if (inflateInit2(z, window_bits) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int ballast_inflate_reset(ballast_zstream *z) { return inflateReset(z); }

int ballast_inflate(ballast_zstream *z, const void *in, size_t in_len, void *out, size_t out_cap,
                    size_t *used, size_t *written) {
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)in_len;
    z->next_out = (Bytef *)out;
    z->avail_out = (uInt)out_cap;
    int rc = inflate(z, Z_NO_FLUSH);
    *used = in_len - z->avail_in;
    *written = out_cap - z->avail_out;
    return rc;
}

void ballast_inflate_free(ballast_zstream *z) {
    if (z == NULL) return;
    inflateEnd(z);
    free(z);
}
