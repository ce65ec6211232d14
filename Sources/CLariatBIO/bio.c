#include "CLariatBIO.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/// A buffer above LARIAT_BIO_LARGE is given back after LARIAT_BIO_LIGHT_USES uses in a row that
/// each needed under an eighth of it: a tunnel whose traffic turned light (idle after a
/// transfer) returns the memory, while a busy one — even with PONGs between its 128 KiB
/// chunks — keeps reusing its buffer without touching the allocator. With `release_when_empty`
/// (light traffic, see TLSConnection) every buffer is given back as soon as it empties.
#define LARIAT_BIO_LARGE (64 * 1024)
#define LARIAT_BIO_LIGHT_USES 8

static void release_if_light(const lariat_bio_buffers *b, unsigned char **buf, size_t *cap, unsigned *light,
                             size_t used) {
    if (b->release_when_empty) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
        *light = 0;
        return;
    }
    if (*cap <= LARIAT_BIO_LARGE) return;
    if (used >= *cap / 8) {
        *light = 0;
        return;
    }
    if (++*light < LARIAT_BIO_LIGHT_USES) return;
    free(*buf);
    *buf = NULL;
    *cap = 0;
    *light = 0;
}

static BIO_METHOD *lariat_method;
static pthread_once_t lariat_method_once = PTHREAD_ONCE_INIT;

static int reserve(unsigned char **buf, size_t *cap, size_t needed) {
    if (needed <= *cap) return 1;
    size_t grown = *cap ? *cap : 4096;
    while (grown < needed) grown *= 2;
    unsigned char *p = realloc(*buf, grown);
    if (!p) return 0;
    *buf = p;
    *cap = grown;
    return 1;
}

static int lariat_write(BIO *bio, const char *data, size_t len, size_t *written) {
    lariat_bio_buffers *b = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (!reserve(&b->out, &b->out_cap, b->out_len + len)) return 0;
    memcpy(b->out + b->out_len, data, len);
    b->out_len += len;
    *written = len;
    return 1;
}

static int lariat_read(BIO *bio, char *data, size_t len, size_t *readbytes) {
    lariat_bio_buffers *b = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    size_t n = 0;
    if (b->kept_len > 0) {
        n = len < b->kept_len ? len : b->kept_len;
        memcpy(data, b->kept + b->kept_start, n);
        b->kept_start += n;
        b->kept_len -= n;
        if (b->kept_len == 0) {
            release_if_light(b, &b->kept, &b->kept_cap, &b->kept_light, b->kept_start);
            b->kept_start = 0;
        }
    } else if (b->lent_len > 0) {
        n = len < b->lent_len ? len : b->lent_len;
        memcpy(data, b->lent, n);
        b->lent += n;
        b->lent_len -= n;
    }
    if (n == 0) {
        BIO_set_retry_read(bio);  // "no data yet", never end of file: the socket decides that
        *readbytes = 0;
        return 0;
    }
    *readbytes = n;
    return 1;
}

static long lariat_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num; (void)ptr;
    lariat_bio_buffers *b = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)(b->kept_len + b->lent_len);
    case BIO_CTRL_WPENDING: return (long)b->out_len;
    default: return 0;
    }
}

static int lariat_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static int lariat_destroy(BIO *bio) {
    (void)bio;  // the buffers belong to the caller
    return 1;
}

static void make_method(void) {
    int index = BIO_get_new_index();
    if (index == -1) return;
    BIO_METHOD *m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "lariat buffers");
    if (!m) return;
    BIO_meth_set_write_ex(m, lariat_write);
    BIO_meth_set_read_ex(m, lariat_read);
    BIO_meth_set_ctrl(m, lariat_ctrl);
    BIO_meth_set_create(m, lariat_create);
    BIO_meth_set_destroy(m, lariat_destroy);
    lariat_method = m;
}

BIO *lariat_bio_new(lariat_bio_buffers *buffers) {
    pthread_once(&lariat_method_once, make_method);
    if (!lariat_method) return NULL;
    BIO *bio = BIO_new(lariat_method);
    if (bio) BIO_set_data(bio, buffers);
    return bio;
}

void lariat_bio_buffers_free(lariat_bio_buffers *b) {
    free(b->kept);
    free(b->out);
    memset(b, 0, sizeof(*b));
}

void lariat_bio_lend(lariat_bio_buffers *b, const void *bytes, size_t count) {
    b->lent = bytes;
    b->lent_len = count;
}

int lariat_bio_append_input(lariat_bio_buffers *b, const void *bytes, size_t count) {
    if (count == 0) return 1;
    if (b->kept_start > 0 && b->kept_start + b->kept_len + count > b->kept_cap) {
        memmove(b->kept, b->kept + b->kept_start, b->kept_len);
        b->kept_start = 0;
    }
    if (!reserve(&b->kept, &b->kept_cap, b->kept_start + b->kept_len + count)) return 0;
    memcpy(b->kept + b->kept_start + b->kept_len, bytes, count);
    b->kept_len += count;
    return 1;
}

int lariat_bio_keep(lariat_bio_buffers *b) {
    int ok = lariat_bio_append_input(b, b->lent, b->lent_len);
    b->lent = NULL;
    b->lent_len = 0;
    return ok;
}

void lariat_bio_sent(lariat_bio_buffers *b, size_t count) {
    if (count >= b->out_len) {
        release_if_light(b, &b->out, &b->out_cap, &b->out_light, b->out_len);
        b->out_len = 0;
        return;
    }
    memmove(b->out, b->out + count, b->out_len - count);
    b->out_len -= count;
}

void lariat_bio_release_empty(lariat_bio_buffers *b) {
    if (b->kept_len == 0 && b->kept) {
        free(b->kept);
        b->kept = NULL;
        b->kept_cap = 0;
        b->kept_start = 0;
        b->kept_light = 0;
    }
    if (b->out_len == 0 && b->out) {
        free(b->out);
        b->out = NULL;
        b->out_cap = 0;
        b->out_light = 0;
    }
}
