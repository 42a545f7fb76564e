// A small C interface over Debian's libzstd (libzstd-dev) for the compressor filter's
// `envoy.compression.zstd.compressor`, the codec Envoy uses; zstd_shim.c has the rest.
#ifndef BALLAST_CZSTD_H
#define BALLAST_CZSTD_H

#include <stddef.h>

typedef struct ZSTD_CCtx_s ballast_zstd_cctx;

/// A compression context with Envoy's parameters (level, checksum flag, strategy; 0: zstd's
/// default strategy); NULL when zstd refuses them.
ballast_zstd_cctx *ballast_zstd_new(int level, int checksum, int strategy);
/// Ready for a new frame with the same parameters (no allocation); 0 on failure.
int ballast_zstd_reset(ballast_zstd_cctx *c);
/// One step: `end` finishes the frame, else input is taken as zstd buffers it (ZSTD_e_continue).
/// Returns 0 on failure; `*pending` is set when output is still waiting.
int ballast_zstd_compress(ballast_zstd_cctx *c, int end, const void *in, size_t in_len, void *out, size_t out_cap,
                          size_t *used, size_t *written, int *pending);
void ballast_zstd_free(ballast_zstd_cctx *c);

/// Decodes whole frames (tests): the size written, or -1.
long ballast_zstd_decompress(const void *in, size_t in_len, void *out, size_t out_cap);

#endif
