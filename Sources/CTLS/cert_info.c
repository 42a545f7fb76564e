// Facts about PEM certificates for the admin's /certs (Envoy's shape): serial, validity, SANs.
#include "CTLS.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static long long asn1_time_epoch(const ASN1_TIME *t) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (long long)timegm(&tm);
}

int ballast_pem_first_certificate(const char *pem, size_t length, char *out, size_t capacity) {
    if (!pem || !out || capacity == 0) return -1;
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    if (!bio) return -1;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!x) {
        ERR_clear_error();
        return -1;
    }
    char *serial = NULL;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn) {
        serial = BN_bn2hex(bn);
        BN_free(bn);
    }
    int n = snprintf(out, capacity, "%s\n%lld\n%lld\n", serial ? serial : "", asn1_time_epoch(X509_get0_notBefore(x)),
                     asn1_time_epoch(X509_get0_notAfter(x)));
    OPENSSL_free(serial);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && n >= 0 && (size_t)n < capacity; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            n += snprintf(out + n, capacity - (size_t)n, "dns:%.*s\n", ASN1_STRING_length(g->d.dNSName),
                          (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_URI) {
            n += snprintf(out + n, capacity - (size_t)n, "uri:%.*s\n", ASN1_STRING_length(g->d.uniformResourceIdentifier),
                          (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
        } else if (g->type == GEN_IPADD) {
            char text[INET6_ADDRSTRLEN] = "";
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *bytes = ASN1_STRING_get0_data(g->d.iPAddress);
            if (len == 4) inet_ntop(AF_INET, bytes, text, sizeof text);
            else if (len == 16) inet_ntop(AF_INET6, bytes, text, sizeof text);
            n += snprintf(out + n, capacity - (size_t)n, "ip:%s\n", text);
        }
    }
    GENERAL_NAMES_free(names);
    X509_free(x);
    if (n < 0 || (size_t)n >= capacity) return -1;
    return n;
}
