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

extern "C" int ballast_re2_group_count(const ballast_re2 *re) { return re->re.NumberOfCapturingGroups(); }

extern "C" int ballast_re2_match(const ballast_re2 *re, const char *text, size_t length, size_t start, long *groups, int ngroups) {
    // At most 10 groups are asked for (\0-\9 in a substitution): a fixed array, no allocation.
    re2::StringPiece pieces[10];
    if (ngroups > 10) ngroups = 10;
    re2::StringPiece whole(text, length);
    if (!re->re.Match(whole, start, length, RE2::UNANCHORED, pieces, ngroups)) return 0;
    for (int i = 0; i < ngroups; i++) {
        if (pieces[i].data() == nullptr) {
            groups[2 * i] = -1;
            groups[2 * i + 1] = -1;
        } else {
            groups[2 * i] = static_cast<long>(pieces[i].data() - text);
            groups[2 * i + 1] = static_cast<long>(pieces[i].data() - text + pieces[i].size());
        }
    }
    return 1;
}
