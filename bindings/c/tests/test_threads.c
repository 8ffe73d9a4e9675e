/*
 * Many threads on one archive, built with -fsanitize=thread by
 * scripts/c-tests.sh: 8 threads read random tensors and ranges at once
 * (more threads than read slots; some through hexz_read_tensors, which
 * starts threads of its own), and every byte is compared with the
 * original file. libhexz synchronizes with Rust's own locks, which
 * ThreadSanitizer cannot see in an uninstrumented library; tsan.supp holds
 * the suppressions an engine's CI needs for that (see its comments).
 *
 * usage: test_threads ARCHIVE.hxz ORIGINAL [race]
 * With "race", the threads also bump a shared counter without a lock: TSan
 * must still report that (the suppressions hide libhexz's internals only).
 */
#include <hexz.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plant_race = 0;
static long unsynchronized = 0;

struct worker {
    const hexz_archive *archive;
    const unsigned char *orig;
    size_t orig_len;
    unsigned seed;
    int errors;
};

static void *work(void *p) {
    struct worker *w = p;
    size_t count = 0;
    hexz_tensor_count(w->archive, &count);
    for (int k = 0; k < 60; k++) {
        if (plant_race) unsynchronized++;
        w->seed = w->seed * 1103515245u + 12345u;
        if (k % 10 == 5) {
            /* Three tensors in one call, decoded on two threads of libhexz's own. */
            hexz_tensor_read reads[3];
            for (int r = 0; r < 3; r++) {
                w->seed = w->seed * 1103515245u + 12345u;
                hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
                reads[r].index = (w->seed >> 8) % count;
                hexz_tensor_get_info(w->archive, reads[r].index, &t);
                reads[r].buf = malloc(t.length ? t.length : 1);
                reads[r].buf_len = t.length;
            }
            if (hexz_read_tensors(w->archive, reads, 3, 2) != HEXZ_STATUS_OK) w->errors++;
            for (int r = 0; r < 3; r++) {
                hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
                hexz_tensor_get_info(w->archive, reads[r].index, &t);
                if (memcmp(reads[r].buf, w->orig + t.offset, t.length) != 0) w->errors++;
                free(reads[r].buf);
            }
            continue;
        }
        if (k % 3 == 0) {
            size_t len = (w->seed >> 4) % (3u << 20);
            size_t at = (w->seed >> 2) % (w->orig_len - len);
            unsigned char *buf = malloc(len + 1);
            if (hexz_read_range(w->archive, at, buf, len) != HEXZ_STATUS_OK || memcmp(buf, w->orig + at, len) != 0)
                w->errors++;
            free(buf);
            continue;
        }
        size_t i = (w->seed >> 8) % count;
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        if (hexz_tensor_get_info(w->archive, i, &t) != HEXZ_STATUS_OK) {
            w->errors++;
            continue;
        }
        unsigned char *buf = malloc(t.length ? t.length : 1);
        size_t got = 0;
        if (hexz_read_tensor(w->archive, i, buf, t.length, &got) != HEXZ_STATUS_OK || got != t.length ||
            memcmp(buf, w->orig + t.offset, t.length) != 0)
            w->errors++;
        free(buf);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "race") == 0)) {
        fprintf(stderr, "usage: %s ARCHIVE.hxz ORIGINAL [race]\n", argv[0]);
        return 2;
    }
    plant_race = argc == 4;
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *orig = malloc(len);
    if (fread(orig, 1, len, f) != len) return 2;
    fclose(f);
    hexz_archive *a = NULL;
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.read_slots = 4;
    if (hexz_open_path(argv[1], &opts, &a) != HEXZ_STATUS_OK) {
        fprintf(stderr, "open: %s\n", hexz_last_error());
        return 1;
    }
    pthread_t threads[8];
    struct worker workers[8];
    for (int i = 0; i < 8; i++) {
        workers[i] = (struct worker){a, orig, len, (unsigned)i * 7919u + 3u, 0};
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    int errors = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        errors += workers[i].errors;
    }
    hexz_close(a);
    free(orig);
    printf("test_threads: 8 threads, %d wrong reads\n", errors);
    return errors ? 1 : 0;
}
