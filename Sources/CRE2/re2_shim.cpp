// The C interface of CRE2.h over RE2. No exceptions cross it (RE2 reports errors by status).
#include "CRE2.h"

#include <re2/re2.h>

#include <cstring>
#include <new>

struct ballast_re2 {
    re2::RE2 re;
    ballast_re2(const char *pattern, size_t length) : re(re2::StringPiece(pattern, length), RE2::Quiet) {}
};

extern "C" ballast_re2 *ballast_re2_compile(const char *pattern, size_t length, char *error, size_t error_capacity) {
    ballast_re2 *compiled = new (std::nothrow) ballast_re2(pattern, length);
    if (compiled == nullptr) {
        if (error_capacity > 0) std::strncpy(error, "out of memory", error_capacity - 1), error[error_capacity - 1] = 0;
        return nullptr;
    }
    if (!compiled->re.ok()) {
        if (error_capacity > 0) {
            const std::string &message = compiled->re.error();
            size_t n = message.size() < error_capacity - 1 ? message.size() : error_capacity - 1;
            std::memcpy(error, message.data(), n);
            error[n] = 0;
        }
        delete compiled;
        return nullptr;
    }
    return compiled;
}

extern "C" void ballast_re2_free(ballast_re2 *re) { delete re; }

extern "C" int ballast_re2_program_size(const ballast_re2 *re) { return re->re.ProgramSize(); }

extern "C" int ballast_re2_full_match(const ballast_re2 *re, const char *text, size_t length) {
    return RE2::FullMatch(re2::StringPiece(text, length), re->re) ? 1 : 0;
}

extern "C" int ballast_re2_partial_match(const ballast_re2 *re, const char *text, size_t length) {
    return RE2::PartialMatch(re2::StringPiece(text, length), re->re) ? 1 : 0;
}
