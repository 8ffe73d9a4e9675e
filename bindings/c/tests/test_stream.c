/*
 * hexz_fopen / hexz_fopen_file: an archive's original file as a stdio
 * FILE *, checked against the original bytes. Run under valgrind memcheck
 * by scripts/c-tests.sh.
 *
 * usage: test_stream ARCHIVE.hxz ORIGINAL FOLDER.hxz FOLDER_DIR
 *
 * - fseeko/ftello/fread at random offsets and sizes (one byte to several
 *   blocks, from SEEK_SET, SEEK_CUR and SEEK_END) return the original
 *   bytes; fgetc and small freads too; a front-to-back read in 1 MiB
 *   freads (a loader's pattern) equals the whole file;
 * - end of file: at and past the end, feof; before the start, EINVAL;
 *   writing fails;
 * - small reads decode each block once (bytes the read callback serves,
 *   against one read of the same span), and a large fread is decoded on
 *   several threads;
 * - a read that fails after open: a short fread, ferror, errno EIO and
 *   hexz_last_error() on the reading thread;
 * - a file of a folder archive through hexz_fopen_file; the error statuses.
 */
#define _GNU_SOURCE
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* A deterministic generator (xorshift64), so a failure can be replayed. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Read `n` at `at` through the stream, compare with the original. */
static void check_read_at(FILE *f, const unsigned char *orig, size_t size, size_t at, size_t n, unsigned char *buf) {
    /* Reach `at` from one of the three origins. */
    int ok;
    switch (next_random() % 3) {
    case 0: ok = fseeko(f, (off_t)at, SEEK_SET) == 0; break;
    case 1: ok = fseeko(f, (off_t)at - ftello(f), SEEK_CUR) == 0; break;
    default: ok = fseeko(f, (off_t)at - (off_t)size, SEEK_END) == 0; break;
    }
    CHECK(ok && ftello(f) == (off_t)at);
    size_t want = at >= size ? 0 : (n < size - at ? n : size - at);
    size_t got = fread(buf, 1, n, f);
    CHECK(got == want);
    CHECK(memcmp(buf, orig + (at < size ? at : size), got) == 0);
    CHECK(ftello(f) == (off_t)(at + got));
    CHECK(!ferror(f));
    if (got < n) CHECK(feof(f));
    clearerr(f);
}

static void check_random_reads(hexz_archive *a, const unsigned char *orig, size_t size) {
    FILE *f = NULL;
    CHECK(hexz_fopen(a, &f) == HEXZ_STATUS_OK && f != NULL);
    if (!f) return;
    size_t cap = 6u << 20;
    unsigned char *buf = malloc(cap);
    CHECK(fseeko(f, 0, SEEK_END) == 0 && ftello(f) == (off_t)size);
    rewind(f);
    /* The header as a parser reads it: a byte, then small pieces. */
    int c = fgetc(f);
    CHECK(c == orig[0]);
    size_t at = 1;
    while (at < 300000) {
        size_t n = 1 + next_random() % 64;
        CHECK(fread(buf, 1, n, f) == n && memcmp(buf, orig + at, n) == 0);
        at += n;
    }
    for (int i = 0; i < 400; i++) {
        size_t n;
        switch (next_random() % 4) {
        case 0: n = 1 + next_random() % 16; break;
        case 1: n = 100 + next_random() % 8192; break;
        case 2: n = 8193 + next_random() % 400000; break;
        default: n = (1u << 20) + next_random() % (cap - (1u << 20)); break;
        }
        size_t pos = next_random() % (size + 1);
        if (i % 50 == 0) pos = size - (n < size ? n : size) / 2; /* across the end */
        check_read_at(f, orig, size, pos, n, buf);
    }
    /* End of file: at the end and past it, reads give nothing and set EOF. */
    CHECK(fseeko(f, 0, SEEK_END) == 0);
    CHECK(fread(buf, 1, 10, f) == 0 && feof(f) && !ferror(f));
    clearerr(f);
    CHECK(fseeko(f, 100, SEEK_END) == 0 && ftello(f) == (off_t)size + 100);
    CHECK(fgetc(f) == EOF && feof(f));
    clearerr(f);
    /* Before the start: EINVAL, and the position is kept. */
    CHECK(fseeko(f, 4096, SEEK_SET) == 0);
    errno = 0;
    CHECK(fseeko(f, -1, SEEK_SET) == -1 && errno == EINVAL);
    CHECK(fseeko(f, -8192, SEEK_CUR) == -1 && errno == EINVAL);
    CHECK(ftello(f) == 4096 && fgetc(f) == orig[4096]);
    /* Read-only. */
    CHECK(fwrite("x", 1, 1, f) == 0 && ferror(f));
    clearerr(f);
    CHECK(fclose(f) == 0);
    free(buf);
}

/* The whole file in 1 MiB freads, as a loader reads tensor after tensor. */
static void check_front_to_back(hexz_archive *a, const unsigned char *orig, size_t size) {
    FILE *f = NULL;
    CHECK(hexz_fopen(a, &f) == HEXZ_STATUS_OK);
    if (!f) return;
    size_t chunk = 1u << 20;
    unsigned char *buf = malloc(chunk);
    size_t at = 0, got;
    int same = 1;
    while ((got = fread(buf, 1, chunk, f)) > 0) {
        same &= at + got <= size && memcmp(buf, orig + at, got) == 0;
        at += got;
    }
    CHECK(same && at == size && feof(f) && !ferror(f));
    fclose(f);
    free(buf);
}

/* An archive in memory read through a callback that counts what it serves. */
struct counted {
    const unsigned char *data;
    size_t len;
    int fail;
    pthread_mutex_t lock;
    uint64_t bytes;
    pthread_t threads[16];
    int thread_count;
};

static int counted_read(void *user, uint64_t offset, uint8_t *buf, size_t len) {
    struct counted *c = user;
    if (__atomic_load_n(&c->fail, __ATOMIC_RELAXED)) return -1;
    if (offset > c->len || len > c->len - offset) return -1;
    memcpy(buf, c->data + offset, len);
    pthread_mutex_lock(&c->lock);
    c->bytes += len;
    int seen = 0;
    for (int i = 0; i < c->thread_count; i++) seen |= pthread_equal(c->threads[i], pthread_self());
    if (!seen && c->thread_count < 16) c->threads[c->thread_count++] = pthread_self();
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void reset_count(struct counted *c) {
    pthread_mutex_lock(&c->lock);
    c->bytes = 0;
    c->thread_count = 0;
    pthread_mutex_unlock(&c->lock);
}

static void check_decoding_work(const char *path, const unsigned char *orig, size_t size) {
    struct counted c = {0};
    c.data = read_file(path, &c.len);
    pthread_mutex_init(&c.lock, NULL);
    hexz_archive *a = NULL;
    CHECK(hexz_open_callbacks(counted_read, c.len, &c, NULL, &a) == HEXZ_STATUS_OK);
    if (!a) return;
    /* Small reads over 3 MiB from 1 MiB on (a GGUF tokenizer's strings) cost
       about what one read of the span costs, not a block per stdio refill. */
    size_t span = 3u << 20, from = 1u << 20;
    unsigned char *buf = malloc(span);
    reset_count(&c);
    CHECK(hexz_read_range(a, from, buf, span) == HEXZ_STATUS_OK);
    uint64_t one_read = c.bytes;
    FILE *f = NULL;
    CHECK(hexz_fopen(a, &f) == HEXZ_STATUS_OK);
    if (f) {
        CHECK(fseeko(f, (off_t)from, SEEK_SET) == 0);
        reset_count(&c);
        int same = 1;
        for (size_t at = 0; at < span;) {
            size_t n = 1 + next_random() % 512;
            if (n > span - at) n = span - at;
            same &= fread(buf + at, 1, n, f) == n;
            at += n;
        }
        CHECK(same && memcmp(buf, orig + from, span) == 0);
        CHECK(c.bytes <= 2 * one_read + (2u << 20));
        printf("test_stream: 3 MiB in small freads read %llu archive bytes (one hexz_read_range: %llu)\n",
               (unsigned long long)c.bytes, (unsigned long long)one_read);
        /* A large fread is decoded on several threads, straight into the buffer. */
        size_t big = size / 2 < 64u << 20 ? size / 2 : 64u << 20;
        unsigned char *large = malloc(big);
        CHECK(fseeko(f, (off_t)(size / 4), SEEK_SET) == 0);
        reset_count(&c);
        CHECK(fread(large, 1, big, f) == big && memcmp(large, orig + size / 4, big) == 0);
        if (sysconf(_SC_NPROCESSORS_ONLN) > 1) CHECK(c.thread_count > 1);
        printf("test_stream: a %zu MiB fread was decoded on %d threads\n", big >> 20, c.thread_count);
        /* A read that fails: short fread, the error indicator, EIO, a message. */
        __atomic_store_n(&c.fail, 1, __ATOMIC_RELAXED);
        CHECK(fseeko(f, (off_t)(size / 3), SEEK_SET) == 0);
        errno = 0;
        size_t got = fread(large, 1, big, f);
        CHECK(got < big && ferror(f) && errno == EIO);
        CHECK(strstr(hexz_last_error(), "callback") != NULL);
        /* Nothing unverified was handed over: what came back is right. */
        CHECK(memcmp(large, orig + size / 3, got) == 0);
        clearerr(f);
        __atomic_store_n(&c.fail, 0, __ATOMIC_RELAXED);
        CHECK(fseeko(f, (off_t)(size / 3), SEEK_SET) == 0);
        CHECK(fread(large, 1, 4096, f) == 4096 && memcmp(large, orig + size / 3, 4096) == 0);
        fclose(f);
        free(large);
    }
    hexz_close(a);
    free(buf);
    free((void *)c.data);
    pthread_mutex_destroy(&c.lock);
}

static void check_folder(const char *archive, const char *dir) {
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(archive, NULL, &a) == HEXZ_STATUS_OK);
    if (!a) return;
    size_t count = 0;
    CHECK(hexz_file_count(a, &count) == HEXZ_STATUS_OK && count > 0);
    int checked = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_file_info fi = HEXZ_FILE_INFO_INIT;
        CHECK(hexz_file_get_info(a, i, &fi) == HEXZ_STATUS_OK);
        FILE *f = NULL;
        if (fi.kind == HEXZ_FILE_DIRECTORY) {
            CHECK(hexz_fopen_file(a, i, &f) == HEXZ_STATUS_INVALID_ARGUMENT && f == NULL);
            continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, fi.path);
        size_t len = 0;
        unsigned char *want = read_file(path, &len);
        CHECK(want != NULL && len == fi.length);
        CHECK(hexz_fopen_file(a, i, &f) == HEXZ_STATUS_OK);
        if (!f || !want) continue;
        unsigned char *got = malloc(len + 16);
        CHECK(fread(got, 1, len + 16, f) == len && feof(f));
        CHECK(memcmp(got, want, len) == 0);
        if (len > 10) {
            CHECK(fseeko(f, -10, SEEK_END) == 0 && ftello(f) == (off_t)len - 10);
            CHECK(fread(got, 1, 16, f) == 10 && memcmp(got, want + len - 10, 10) == 0);
        }
        fclose(f);
        free(got);
        free(want);
        checked++;
    }
    CHECK(checked > 0);
    FILE *f = NULL;
    CHECK(hexz_fopen_file(a, count, &f) == HEXZ_STATUS_INVALID_ARGUMENT && f == NULL);
    hexz_close(a);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ARCHIVE.hxz ORIGINAL FOLDER.hxz FOLDER_DIR\n", argv[0]);
        return 2;
    }
    size_t size = 0;
    unsigned char *orig = read_file(argv[2], &size);
    CHECK(orig != NULL);
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(argv[1], NULL, &a) == HEXZ_STATUS_OK);
    if (!orig || !a) return 1;
    check_random_reads(a, orig, size);
    check_front_to_back(a, orig, size);
    /* Error statuses; nothing is written on failure. */
    FILE *f = (FILE *)&size;
    CHECK(hexz_fopen(NULL, &f) == HEXZ_STATUS_NULL_ARGUMENT && f == (FILE *)&size);
    CHECK(hexz_fopen(a, NULL) == HEXZ_STATUS_NULL_ARGUMENT);
    CHECK(hexz_fopen_file(a, 0, &f) == HEXZ_STATUS_INVALID_ARGUMENT); /* a single-file archive has no files */
    hexz_close(a);
    check_decoding_work(argv[1], orig, size);
    check_folder(argv[3], argv[4]);
    free(orig);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_stream: all checks passed\n");
    return 0;
}
