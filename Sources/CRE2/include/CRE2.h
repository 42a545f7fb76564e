// A small C interface over RE2 (Debian's libre2-dev), the engine Envoy evaluates safe_regex with.
// Swift sees only these declarations; the C++ lives in re2_shim.cpp.
#ifndef BALLAST_CRE2_H
#define BALLAST_CRE2_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ballast_re2 ballast_re2;

/// Compiles `pattern` (RE2 syntax, UTF-8, `length` bytes; RE2's default options, as Envoy's).
/// On failure returns NULL and copies RE2's message (NUL-terminated, truncated) into `error`.
ballast_re2 *ballast_re2_compile(const char *pattern, size_t length, char *error, size_t error_capacity);

void ballast_re2_free(ballast_re2 *re);

/// RE2's program size (Envoy refuses a pattern above its max_program_size, 100 by default).
int ballast_re2_program_size(const ballast_re2 *re);

/// 1 when the whole text matches (RE2::FullMatch), else 0. Safe from any thread.
int ballast_re2_full_match(const ballast_re2 *re, const char *text, size_t length);

/// 1 when some part of the text matches (RE2::PartialMatch), else 0. Safe from any thread.
int ballast_re2_partial_match(const ballast_re2 *re, const char *text, size_t length);

/// The number of capturing groups of the pattern.
int ballast_re2_group_count(const ballast_re2 *re);

/// Searches `text` from `start` (RE2::Match, unanchored) for the leftmost match. On a match returns
/// 1 and fills `groups` with `ngroups` (begin, end) offset pairs into `text` (group 0 is the whole
/// match; an unmatched group gets (-1, -1)); else 0. No allocation. Safe from any thread.
int ballast_re2_match(const ballast_re2 *re, const char *text, size_t length, size_t start, long *groups, int ngroups);

#ifdef __cplusplus
}
#endif

#endif
