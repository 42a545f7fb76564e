// OpenSSL on memory BIOs for Ballast (see include/CTLS.h).
#include "CTLS.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>

static void copy_error(char *error, size_t capacity, const char *fallback) {
    if (capacity == 0) return;
    unsigned long code = ERR_get_error();
    if (code != 0) {
        ERR_error_string_n(code, error, capacity);
    } else {
        strncpy(error, fallback, capacity - 1);
        error[capacity - 1] = 0;
    }
    ERR_clear_error();
}

static int fail(ballast_tls_ctx *ctx, char *error, size_t capacity, const char *what) {
    char reason[256];
    copy_error(reason, sizeof reason, "");
    if (reason[0]) snprintf(error, capacity, "%s: %s", what, reason); else snprintf(error, capacity, "%s", what);
    SSL_CTX_free(ctx);
    return 0;
}

static int use_chain(SSL_CTX *ctx, const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return 0;
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    int ok = leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    if (ok) {
        SSL_CTX_clear_chain_certs(ctx);
        X509 *ca;
        while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) { X509_free(ca); ok = 0; break; }
        }
        ERR_clear_error();  // the end of the PEM text reads as an error
    }
    BIO_free(bio);
    return ok;
}

static int use_key(SSL_CTX *ctx, const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return 0;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    int ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ok;
}

static int use_trusted_ca(SSL_CTX *ctx, const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return 0;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, ca) == 1) count++;
        X509_free(ca);
    }
    ERR_clear_error();
    BIO_free(bio);
    return count > 0;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    const unsigned char *preferred = arg;
    // The preferred list follows its two-byte length (see ballast_tls_ctx_new).
    unsigned int plen = preferred[0] | (preferred[1] << 8);
    if (SSL_select_next_proto((unsigned char **)out, outlen, preferred + 2, plen, in, inlen) == OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;  // no overlap: go on without ALPN, as Envoy does
}

static int alpn_index = -1;
static int session_index = -1;

static void free_alpn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    OPENSSL_free(ptr);
}

/// A client context's resumption store: the newest session the server gave (Envoy keeps
/// max_session_keys of them, 1 by default). Shared by every worker's connections, so it is locked;
/// it is touched once per new connection and once per session the server sends, never per request.
typedef struct {
    pthread_mutex_t lock;
    SSL_SESSION *session;
} session_store;

static void free_store(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    session_store *store = ptr;
    if (!store) return;
    SSL_SESSION_free(store->session);
    pthread_mutex_destroy(&store->lock);
    OPENSSL_free(store);
}

static void make_indices(void) {
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
    session_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_store);
}

static int store_session(SSL *ssl, SSL_SESSION *session) {
    session_store *store = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), session_index);
    if (!store || !SSL_SESSION_is_resumable(session)) return 0;
    pthread_mutex_lock(&store->lock);
    SSL_SESSION *old = store->session;
    store->session = session;  // returning 1 hands our reference over
    pthread_mutex_unlock(&store->lock);
    SSL_SESSION_free(old);
    return 1;
}

ballast_tls_ctx *ballast_tls_ctx_new(const ballast_tls_ctx_options *o, char *error, size_t capacity) {
    if (capacity > 0) error[0] = 0;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_indices);
    SSL_CTX *ctx = SSL_CTX_new(o->is_server ? TLS_server_method() : TLS_client_method());
    if (!ctx) { fail(NULL, error, capacity, "creating the TLS context"); return NULL; }
    // No SSL_MODE_RELEASE_BUFFERS: it frees and reallocates OpenSSL's record buffers around every
    // request (an allocation per request on the hot path); keeping them costs ~9 KiB more per idle
    // connection (26 instead of 17 KiB, scripts/tls_idle_memory.py; docs/tls.md).
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (o->min_version && SSL_CTX_set_min_proto_version(ctx, o->min_version) != 1) {
        fail(ctx, error, capacity, "tls_minimum_protocol_version"); return NULL;
    }
    if (o->max_version && SSL_CTX_set_max_proto_version(ctx, o->max_version) != 1) {
        fail(ctx, error, capacity, "tls_maximum_protocol_version"); return NULL;
    }
    if (o->cipher_list && SSL_CTX_set_cipher_list(ctx, o->cipher_list) != 1) {
        fail(ctx, error, capacity, "cipher_suites"); return NULL;
    }
    if (o->cert_chain) {
        if (!use_chain(ctx, o->cert_chain, o->cert_chain_len)) { fail(ctx, error, capacity, "certificate_chain"); return NULL; }
        if (!o->private_key || !use_key(ctx, o->private_key, o->private_key_len)) { fail(ctx, error, capacity, "private_key"); return NULL; }
        if (SSL_CTX_check_private_key(ctx) != 1) { fail(ctx, error, capacity, "private_key does not match certificate_chain"); return NULL; }
    }
    if (o->trusted_ca) {
        if (!use_trusted_ca(ctx, o->trusted_ca, o->trusted_ca_len)) { fail(ctx, error, capacity, "trusted_ca: no PEM certificate in it"); return NULL; }
    }
    if (o->require_peer_cert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (o->is_server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    } else if (o->trusted_ca) {
        // A server with a CA but without require_client_certificate asks for a certificate and
        // verifies one that is given (Envoy's behaviour); a client always verifies against it.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->alpn && o->alpn_len > 0) {
        if (o->is_server) {
            unsigned char *copy = OPENSSL_malloc(o->alpn_len + 2);
            if (!copy) { fail(ctx, error, capacity, "alpn_protocols"); return NULL; }
            copy[0] = (unsigned char)(o->alpn_len & 0xff);
            copy[1] = (unsigned char)(o->alpn_len >> 8);
            memcpy(copy + 2, o->alpn, o->alpn_len);
            SSL_CTX_set_ex_data(ctx, alpn_index, copy);
            SSL_CTX_set_alpn_select_cb(ctx, select_alpn, copy);
        } else if (SSL_CTX_set_alpn_protos(ctx, o->alpn, (unsigned int)o->alpn_len) != 0) {
            fail(ctx, error, capacity, "alpn_protocols"); return NULL;
        }
    }
    if (o->is_server) {
        // A session may be resumed only by a context with the same certificate and trust: OpenSSL
        // refuses resumption under client-certificate verification without this id.
        unsigned char id[EVP_MAX_MD_SIZE];
        unsigned int id_len = 0;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
            && (!o->cert_chain || EVP_DigestUpdate(md, o->cert_chain, o->cert_chain_len) == 1)
            && (!o->trusted_ca || EVP_DigestUpdate(md, o->trusted_ca, o->trusted_ca_len) == 1)
            && EVP_DigestUpdate(md, &o->require_peer_cert, sizeof o->require_peer_cert) == 1
            && EVP_DigestFinal_ex(md, id, &id_len) == 1;
        EVP_MD_CTX_free(md);
        if (!ok || SSL_CTX_set_session_id_context(ctx, id, id_len > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH : id_len) != 1) {
            fail(ctx, error, capacity, "session id context"); return NULL;
        }
    }
    if (!o->is_server && o->session_keys > 0) {
        session_store *store = OPENSSL_zalloc(sizeof *store);
        if (!store) { fail(ctx, error, capacity, "max_session_keys"); return NULL; }
        pthread_mutex_init(&store->lock, NULL);
        SSL_CTX_set_ex_data(ctx, session_index, store);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, store_session);
    }
    return ctx;
}

void ballast_tls_ctx_free(ballast_tls_ctx *ctx) { SSL_CTX_free(ctx); }

ballast_tls *ballast_tls_new(ballast_tls_ctx *ctx, const char *sni) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    if (!in || !out) { BIO_free(in); BIO_free(out); SSL_free(ssl); return NULL; }
    BIO_set_mem_eof_return(in, -1);  // an empty input BIO means "more later", not end of stream
    SSL_set_bio(ssl, in, out);
    if (SSL_is_server(ssl)) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        // Envoy's sni does not imply a name check (that is match_typed_subject_alt_names), so
        // hostname verification stays off, as there.
        if (sni && sni[0]) SSL_set_tlsext_host_name(ssl, sni);
        session_store *store = SSL_CTX_get_ex_data(ctx, session_index);
        if (store) {
            pthread_mutex_lock(&store->lock);
            if (store->session) SSL_set_session(ssl, store->session);  // takes its own reference
            pthread_mutex_unlock(&store->lock);
        }
    }
    return ssl;
}

void ballast_tls_free(ballast_tls *tls) { SSL_free(tls); }

int ballast_tls_feed(ballast_tls *tls, const void *bytes, size_t count) {
    if (count == 0) return 0;
    return BIO_write(SSL_get_rbio(tls), bytes, (int)count);
}

int ballast_tls_handshake(ballast_tls *tls) {
    ERR_clear_error();
    int r = SSL_do_handshake(tls);
    if (r == 1) return BALLAST_TLS_DONE;
    int e = SSL_get_error(tls, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return BALLAST_TLS_WANT;
    return BALLAST_TLS_ERROR;
}

int ballast_tls_read(ballast_tls *tls, void *buffer, size_t capacity) {
    ERR_clear_error();
    int r = SSL_read(tls, buffer, (int)capacity);
    if (r > 0) return r;
    int e = SSL_get_error(tls, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return BALLAST_TLS_WANT;
    if (e == SSL_ERROR_ZERO_RETURN) return BALLAST_TLS_CLOSED;
    return BALLAST_TLS_ERROR;
}

int ballast_tls_write(ballast_tls *tls, const void *bytes, size_t count) {
    const char *p = bytes;
    while (count > 0) {
        ERR_clear_error();
        size_t written = 0;
        if (SSL_write_ex(tls, p, count, &written) != 1) return BALLAST_TLS_ERROR;
        p += written;
        count -= written;
    }
    return 1;
}

size_t ballast_tls_pending_output(ballast_tls *tls) { return BIO_ctrl_pending(SSL_get_wbio(tls)); }

size_t ballast_tls_take_output(ballast_tls *tls, void *buffer, size_t capacity) {
    int r = BIO_read(SSL_get_wbio(tls), buffer, (int)capacity);
    return r > 0 ? (size_t)r : 0;
}

void ballast_tls_close_notify(ballast_tls *tls) {
    ERR_clear_error();
    if (SSL_is_init_finished(tls)) SSL_shutdown(tls);
    ERR_clear_error();
}

const char *ballast_tls_version(const ballast_tls *tls) { return SSL_get_version(tls); }

void ballast_tls_alpn(const ballast_tls *tls, const unsigned char **name, unsigned int *length) {
    SSL_get0_alpn_selected(tls, name, length);
}

const char *ballast_tls_server_name(const ballast_tls *tls) {
    return SSL_get_servername(tls, TLSEXT_NAMETYPE_host_name);
}

int ballast_tls_failure_kind(const ballast_tls *tls) {
    long v = SSL_get_verify_result(tls);
    if (v != X509_V_OK) return BALLAST_TLS_FAIL_VERIFY;
    unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        return BALLAST_TLS_FAIL_NO_CERT;
    return BALLAST_TLS_FAIL_OTHER;
}

int ballast_tls_peer_has_cert(const ballast_tls *tls) {
    X509 *peer = SSL_get0_peer_certificate(tls);
    return peer != NULL;
}

void ballast_tls_last_error(char *buffer, size_t capacity) {
    if (capacity == 0) return;
    buffer[0] = 0;
    unsigned long code = ERR_get_error();
    if (code != 0) ERR_error_string_n(code, buffer, capacity);
    ERR_clear_error();
}

int ballast_tls_cipher_known(const char *name) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) return 0;
    int ok = SSL_CTX_set_cipher_list(ctx, name) == 1;
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

int ballast_tls_session_reused(const ballast_tls *tls) { return SSL_session_reused((SSL *)tls) == 1; }

void ballast_tls_clear_errors(void) { ERR_clear_error(); }

int ballast_tls_version_number(const ballast_tls *tls) { return SSL_version(tls); }
