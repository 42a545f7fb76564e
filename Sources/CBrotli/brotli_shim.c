#include "CBrotli.h"

#include <brotli/decode.h>
#include <brotli/encode.h>

ballast_brotli_encoder *ballast_brotli_encoder_new(int quality, int window_bits, int input_block_bits, int mode,
                                                  int disable_literal_context_modeling) {
    BrotliEncoderState *e = BrotliEncoderCreateInstance(NULL, NULL, NULL);
    if (e == NULL) return NULL;
    if (!BrotliEncoderSetParameter(e, BROTLI_PARAM_QUALITY, (uint32_t)quality) ||
        !BrotliEncoderSetParameter(e, BROTLI_PARAM_LGWIN, (uint32_t)window_bits) ||
        !BrotliEncoderSetParameter(e, BROTLI_PARAM_LGBLOCK, (uint32_t)input_block_bits) ||
        !BrotliEncoderSetParameter(e, BROTLI_PARAM_MODE, (uint32_t)mode) ||
        !BrotliEncoderSetParameter(e, BROTLI_PARAM_DISABLE_LITERAL_CONTEXT_MODELING, (uint32_t)disable_literal_context_modeling)) {
        BrotliEncoderDestroyInstance(e);
        return NULL;
    }
    return e;
}

int ballast_brotli_compress(ballast_brotli_encoder *e, int op, const void *in, size_t in_len, void *out, size_t out_cap,
                            size_t *used, size_t *written, int *more) {
    size_t avail_in = in_len;
    const uint8_t *next_in = (const uint8_t *)in;
    size_t avail_out = out_cap;
    uint8_t *next_out = (uint8_t *)out;
    int ok = BrotliEncoderCompressStream(e, (BrotliEncoderOperation)op, &avail_in, &next_in, &avail_out, &next_out, NULL);
    *used = in_len - avail_in;
    *written = out_cap - avail_out;
    *more = BrotliEncoderHasMoreOutput(e) ? 1 : 0;
    return ok;
}

void ballast_brotli_encoder_free(ballast_brotli_encoder *e) {
    if (e != NULL) BrotliEncoderDestroyInstance(e);
}

int ballast_brotli_decompress(const void *in, size_t in_len, void *out, size_t *out_len) {
    return BrotliDecoderDecompress(in_len, (const uint8_t *)in, out_len, (uint8_t *)out) == BROTLI_DECODER_RESULT_SUCCESS;
}
