// A small C interface over OpenSSL (Debian's libssl-dev) for TLS on memory BIOs: the proxy's I/O
// backends move ciphertext through their own buffers and completions (epoll and io_uring alike),
// and OpenSSL never touches a socket. Swift sees only these declarations; tls_shim.c has the rest.
#ifndef BALLAST_CTLS_H
#define BALLAST_CTLS_H

#include <stddef.h>

typedef struct ssl_ctx_st ballast_tls_ctx;
typedef struct ssl_st ballast_tls;

/// What a context is built from (PEM text, not file names: the Swift side reads the files so that
/// its errors name the YAML path). NULL / 0 for what is not set.
typedef struct {
    int is_server;
    const char *cert_chain; size_t cert_chain_len;
    const char *private_key; size_t private_key_len;
    const char *trusted_ca; size_t trusted_ca_len;
    /// Server: ask for and require a client certificate. Client: verify the server against trusted_ca.
    int require_peer_cert;
    /// TLS1_VERSION.. constants (0: OpenSSL's default).
    int min_version;
    int max_version;
    /// OpenSSL cipher list for TLS 1.2 and below (NULL: default).
    const char *cipher_list;
    /// ALPN in wire format (length-prefixed names), as offered (client) or preferred (server).
    const unsigned char *alpn; size_t alpn_len;
    /// Client: keep the newest session for resumption (Envoy's max_session_keys, 0 or 1).
    int session_keys;
} ballast_tls_ctx_options;

/// Builds a context; on failure returns NULL and writes OpenSSL's reason into `error`.
ballast_tls_ctx *ballast_tls_ctx_new(const ballast_tls_ctx_options *options, char *error, size_t error_capacity);
void ballast_tls_ctx_free(ballast_tls_ctx *ctx);

/// A connection on memory BIOs. `sni` (client only, may be NULL) is sent as server_name and, with
/// verification on, is the name the server's certificate must carry.
ballast_tls *ballast_tls_new(ballast_tls_ctx *ctx, const char *sni);
void ballast_tls_free(ballast_tls *tls);

/// Hands received ciphertext to OpenSSL. Returns the count taken (all of it) or -1.
int ballast_tls_feed(ballast_tls *tls, const void *bytes, size_t count);

/// Results of handshake / read.
enum { BALLAST_TLS_DONE = 1, BALLAST_TLS_WANT = 0, BALLAST_TLS_ERROR = -1, BALLAST_TLS_CLOSED = -2 };

/// Advances the handshake: DONE, WANT (more input needed; send what is pending first) or ERROR.
int ballast_tls_handshake(ballast_tls *tls);

/// Decrypts into `buffer`: > 0 bytes, WANT (no whole record yet), CLOSED (close_notify) or ERROR.
int ballast_tls_read(ballast_tls *tls, void *buffer, size_t capacity);

/// Encrypts all of `bytes` (memory BIOs never block); returns 1, or ERROR.
int ballast_tls_write(ballast_tls *tls, const void *bytes, size_t count);

/// Ciphertext waiting to be sent, and taking it out (returns the count copied).
size_t ballast_tls_pending_output(ballast_tls *tls);
size_t ballast_tls_take_output(ballast_tls *tls, void *buffer, size_t capacity);

/// Queues a close_notify alert (then send what is pending).
void ballast_tls_close_notify(ballast_tls *tls);

/// "TLSv1.3" and the like, the negotiated ALPN (may be empty) and the SNI the client sent (NULL: none).
const char *ballast_tls_version(const ballast_tls *tls);
void ballast_tls_alpn(const ballast_tls *tls, const unsigned char **name, unsigned int *length);
const char *ballast_tls_server_name(const ballast_tls *tls);

/// Why the last handshake failed, as Envoy's stats split it.
enum { BALLAST_TLS_FAIL_OTHER = 0, BALLAST_TLS_FAIL_NO_CERT = 1, BALLAST_TLS_FAIL_VERIFY = 2 };
int ballast_tls_failure_kind(const ballast_tls *tls);
/// Whether the peer presented a certificate (after the handshake).
int ballast_tls_peer_has_cert(const ballast_tls *tls);

/// The oldest queued OpenSSL error as text ("error:0A000086:SSL routines::certificate verify
/// failed"), or "" when none; clears the thread's error queue.
void ballast_tls_last_error(char *buffer, size_t capacity);

/// SSL_version: 0x0304 for TLS 1.3.
int ballast_tls_version_number(const ballast_tls *tls);

/// Drops the thread's queued OpenSSL errors.
void ballast_tls_clear_errors(void);

/// Whether the completed handshake resumed a session.
int ballast_tls_session_reused(const ballast_tls *tls);

/// Whether OpenSSL knows `name` as a cipher for TLS 1.2 and below.
int ballast_tls_cipher_known(const char *name);

/// The first certificate of a PEM text, as lines: the serial (hex), not-before and not-after
/// (Unix seconds), then one line per SAN ("dns:NAME", "uri:URI", "ip:ADDRESS"). Returns the
/// bytes written, or -1 (no certificate, or `capacity` too small). Off the hot path (/certs).
int ballast_pem_first_certificate(const char *pem, size_t length, char *out, size_t capacity);

#endif
