// A small C interface over Debian's libbrotli (libbrotli-dev) for the compressor filter's
// `envoy.compression.brotli.compressor`, the codec Envoy uses; brotli_shim.c has the rest.
#ifndef BALLAST_CBROTLI_H
#define BALLAST_CBROTLI_H

#include <stddef.h>

typedef struct BrotliEncoderStateStruct ballast_brotli_encoder;

/// Operations (brotli's values).
enum { BALLAST_BROTLI_FLUSH = 1, BALLAST_BROTLI_FINISH = 2 };

/// An encoder with Envoy's parameters (quality, lgwin, lgblock, mode, literal context modeling
/// off when `disable_literal_context_modeling`); NULL when brotli refuses them.
ballast_brotli_encoder *ballast_brotli_encoder_new(int quality, int window_bits, int input_block_bits, int mode,
                                                  int disable_literal_context_modeling);
/// One step: input taken and output written come back in `*used` / `*written`; 0 on failure.
/// `*more` is set when the encoder holds output that did not fit.
int ballast_brotli_compress(ballast_brotli_encoder *e, int op, const void *in, size_t in_len, void *out, size_t out_cap,
                            size_t *used, size_t *written, int *more);
void ballast_brotli_encoder_free(ballast_brotli_encoder *e);

/// One-shot decoding (tests): 1 when `in` is a complete brotli stream that fits `out`.
int ballast_brotli_decompress(const void *in, size_t in_len, void *out, size_t *out_len);

#endif
