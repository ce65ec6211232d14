#include "CLariatALPN.h"

#include <stdlib.h>
#include <string.h>

typedef struct alpn_list {
    unsigned int length;
    unsigned char wire[];
} alpn_list;

static int select_protocol(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    const alpn_list *server = arg;
    unsigned char *chosen = NULL;
    unsigned char chosen_len = 0;
    // Server list first: SSL_select_next_proto returns the first of its first argument that
    // the second also holds.
    if (SSL_select_next_proto(&chosen, &chosen_len, server->wire, server->length, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = chosen;
    *outlen = chosen_len;
    return SSL_TLSEXT_ERR_OK;
}

void *lariat_alpn_server_install(SSL_CTX *ctx, const unsigned char *wire, size_t length) {
    if (length == 0 || length > 0xFFFF) return NULL;
    alpn_list *list = malloc(sizeof(alpn_list) + length);
    if (!list) return NULL;
    list->length = (unsigned int)length;
    memcpy(list->wire, wire, length);
    SSL_CTX_set_alpn_select_cb(ctx, select_protocol, list);
    return list;
}

void lariat_alpn_server_free(void *list) { free(list); }
