#include "CZstd.h"

#include <zstd.h>

ballast_zstd_cctx *ballast_zstd_new(int level, int checksum, int strategy) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (c == NULL) return NULL;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum)) ||
        (strategy != 0 && ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, strategy)))) {
        ZSTD_freeCCtx(c);
        return NULL;
    }
    return c;
}

int ballast_zstd_reset(ballast_zstd_cctx *c) { return !ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_only)); }

int ballast_zstd_compress(ballast_zstd_cctx *c, int end, const void *in, size_t in_len, void *out, size_t out_cap,
                          size_t *used, size_t *written, int *pending) {
    ZSTD_inBuffer input = {in, in_len, 0};
    ZSTD_outBuffer output = {out, out_cap, 0};
    size_t rc = ZSTD_compressStream2(c, &output, &input, end ? ZSTD_e_end : ZSTD_e_continue);
    *used = input.pos;
    *written = output.pos;
    if (ZSTD_isError(rc)) return 0;
    *pending = end ? rc != 0 : output.pos == out_cap;
    return 1;
}

void ballast_zstd_free(ballast_zstd_cctx *c) { ZSTD_freeCCtx(c); }

long ballast_zstd_decompress(const void *in, size_t in_len, void *out, size_t out_cap) {
    size_t rc = ZSTD_decompress(out, out_cap, in, in_len);
    return ZSTD_isError(rc) ? -1 : (long)rc;
}
