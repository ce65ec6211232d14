#ifndef CLARIAT_ALPN_H
#define CLARIAT_ALPN_H

#include <stddef.h>
#include <openssl/ssl.h>

/// Server-side ALPN (RFC 7301). OpenSSL asks for the choice through a C callback; this one picks
/// the first protocol of the server's list that the client offers (server preference), and
/// when none matches it answers "no ALPN" instead of failing the handshake: a client that
/// offers only h2 still gets HTTP/1.1 without the extension.
///
/// Installs the callback on `ctx` with a copy of `wire` (the protocols in wire format: each a
/// length byte then the name). Returns that copy, which must outlive the context: free it with
/// `lariat_alpn_server_free` after `SSL_CTX_free`. NULL when out of memory.
void *lariat_alpn_server_install(SSL_CTX *ctx, const unsigned char *wire, size_t length);
void lariat_alpn_server_free(void *list);

#endif
