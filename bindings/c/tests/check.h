/*
 * What the newer C tests share: a failure counter, CHECK (prints the
 * condition and hexz_last_error(), counts, carries on) and read_file.
 */
#ifndef HEXZ_TESTS_CHECK_H
#define HEXZ_TESTS_CHECK_H

/* fseeko/ftello in strict C11 (include this header first). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <hexz.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

static int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, hexz_last_error());                           \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* The whole file at `path` (NULL when it cannot be read); its length in *len. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseeko(f, 0, SEEK_END);
    off_t n = ftello(f);
    fseeko(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
