#ifndef CLARIAT_BIO_H
#define CLARIAT_BIO_H

#include <stddef.h>
#include <openssl/bio.h>

/// The buffers behind one TLS session's BIO. OpenSSL's memory BIO zeroes and copies every
/// byte on the way in and copies it again on the way out; this BIO lets the SSL object read
/// ciphertext straight from the socket's read buffer and append its records to one output
/// buffer that goes to the socket as is.
///
/// Input: while a socket read is being processed, `lariat_bio_lend` points the BIO at the
/// bytes (no copy); `lariat_bio_keep` then copies whatever the SSL did not consume before the
/// read buffer is reused. Output: records accumulate in `out` until the owner sends them and
/// calls `lariat_bio_sent`.
typedef struct lariat_bio_buffers {
    const unsigned char *lent;
    size_t lent_len;
    unsigned char *kept;
    size_t kept_start, kept_len, kept_cap;
    unsigned char *out;
    size_t out_len, out_cap;
    /// Uses in a row that needed under an eighth of a large buffer (see bio.c).
    unsigned kept_light, out_light;
    /// Non-zero: `kept` and `out` are freed whenever they empty, whatever their size (the
    /// connection's traffic is light; an idle one then holds neither).
    int release_when_empty;
} lariat_bio_buffers;

/// A BIO over `buffers` (owned by the caller, who must keep it alive as long as the BIO).
BIO *lariat_bio_new(lariat_bio_buffers *buffers);
/// Frees the buffers' memory (not the struct).
void lariat_bio_buffers_free(lariat_bio_buffers *buffers);

void lariat_bio_lend(lariat_bio_buffers *buffers, const void *bytes, size_t count);
/// Copies the unconsumed part of the lent bytes; returns 0 when out of memory.
int lariat_bio_keep(lariat_bio_buffers *buffers);
/// Appends ciphertext input (copying); returns 0 when out of memory.
int lariat_bio_append_input(lariat_bio_buffers *buffers, const void *bytes, size_t count);
/// Drops the first `count` bytes of `out` (they were sent).
void lariat_bio_sent(lariat_bio_buffers *buffers, size_t count);
/// Frees `kept` and `out` if they hold nothing (for `release_when_empty` turned on).
void lariat_bio_release_empty(lariat_bio_buffers *buffers);

/* The module's umbrella header: the ALPN select callback lives beside the BIO. */
#include "CLariatALPN.h"

#endif
