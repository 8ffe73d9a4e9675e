/*
 * Load every tensor of a GGUF model into engine-owned buffers, timed:
 *   bench_load hxz ARCHIVE.hxz          through the C API (hexz_read_tensor)
 *   bench_load gguf ARCHIVE.hxz FILE.gguf   pread() of the same byte ranges from the .gguf
 *   bench_load one ARCHIVE.hxz NAME     read one tensor 50 times through the C API, average time
 *   bench_load open ARCHIVE.hxz         open and close the archive 20 times, best time
 *   bench_load threads N ARCHIVE.hxz    as "hxz" from N threads of the engine: each takes the next
 *                                       piece (a tensor, or about 8 MiB of a larger one, cut at a
 *                                       block end; BENCH_UNALIGNED=1: at exactly 8 MiB) and reads
 *                                       it with hexz_read_range; the archive opened with N read slots
 *   bench_load batch N ARCHIVE.hxz      every tensor into held buffers with one hexz_read_tensors
 *                                       call on N threads (0: one per core), from the caller's thread
 *   bench_load threads N ARCHIVE.hxz FILE.gguf
 *                                       the same pieces into the same held buffers, by pread()
 *                                       from the .gguf (opening the archive is not timed)
 * Prints seconds, MB/s and peak RSS (getrusage). Buffers are freed as the
 * loop goes so RSS reflects the library, not the model.
 */
#define _POSIX_C_SOURCE 200809L
#include <hexz.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* All `len` bytes at `offset` of `fd` into `dst`; 0, or -1 on an error or early end. */
static int pread_all(int fd, unsigned char *dst, size_t len, unsigned long long offset) {
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, dst + done, len - done, (off_t)(offset + done));
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

/* The threaded engine: pieces of at most PIECE bytes, taken in order. */
#define PIECE (8u << 20)
struct piece {
    unsigned long long offset;
    size_t length;
    unsigned char *dst;
};
struct work {
    hexz_archive *archive;
    int gguf_fd; /* >= 0: pread() the pieces from this .gguf instead */
    struct piece *pieces;
    size_t count;
    atomic_size_t next;
    atomic_int failed;
};

static void *worker(void *arg) {
    struct work *w = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&w->next, 1);
        if (k >= w->count) return NULL;
        struct piece *p = &w->pieces[k];
        if (w->gguf_fd >= 0) {
            if (pread_all(w->gguf_fd, p->dst, p->length, p->offset) != 0) {
                perror("pread");
                atomic_store(&w->failed, 1);
                return NULL;
            }
            continue;
        }
        if (hexz_read_range(w->archive, p->offset, p->dst, p->length) != HEXZ_STATUS_OK) {
            fprintf(stderr, "%s\n", hexz_last_error());
            atomic_store(&w->failed, 1);
            return NULL;
        }
    }
}

static int threaded(int threads, const char *path, const char *gguf, int aligned) {
    double t0 = now();
    hexz_open_options o = HEXZ_OPEN_OPTIONS_INIT;
    o.read_slots = (uint32_t)threads;
    hexz_archive *a = NULL;
    if (hexz_open_path(path, &o, &a) != HEXZ_STATUS_OK) {
        fprintf(stderr, "%s\n", hexz_last_error());
        return 1;
    }
    size_t count = 0, pieces = 0;
    hexz_tensor_count(a, &count);
    unsigned char **bufs = calloc(count ? count : 1, sizeof *bufs);
    struct piece *list = NULL;
    unsigned long long total = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, i, &t);
        bufs[i] = malloc(t.length ? t.length : 1);
        uint64_t at = 0;
        do {
            uint64_t end = t.length - at <= PIECE ? t.length : at + PIECE;
            uint64_t start = 0, len = 0;
            if (aligned && end < t.length && hexz_block_span(a, t.offset + end, &start, &len) == HEXZ_STATUS_OK) {
                /* Cut at the nearer end of the block holding the cut, so no
                   block is decoded by two pieces. */
                uint64_t lo = start - t.offset, hi = lo + len < t.length ? lo + len : t.length;
                end = (end - lo <= hi - end && lo > at) ? lo : hi;
            }
            list = realloc(list, (pieces + 1) * sizeof *list);
            list[pieces++] = (struct piece){t.offset + at, (size_t)(end - at), bufs[i] + at};
            at = end;
        } while (at < t.length);
        total += t.length;
    }
    int fd = -1;
    if (gguf) {
        fd = open(gguf, O_RDONLY);
        if (fd < 0) {
            perror(gguf);
            return 1;
        }
        t0 = now();
    }
    struct work w = {a, fd, list, pieces, 0, 0};
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    for (int k = 0; k < threads; k++) pthread_create(&ids[k], NULL, worker, &w);
    for (int k = 0; k < threads; k++) pthread_join(ids[k], NULL);
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s, %d thread%s: %zu tensors, %.1f MB in %.3f s (%.0f MB/s), peak RSS %.1f MiB (the model held)\n",
           gguf ? "read() .gguf" : "hexz C API", threads, threads == 1 ? "" : "s", count, (double)total / 1e6, dt, (double)total / 1e6 / dt, (double)ru.ru_maxrss / 1024.0);
    for (size_t i = 0; i < count; i++) free(bufs[i]);
    free(bufs);
    free(list);
    free(ids);
    if (fd >= 0) close(fd);
    hexz_close(a);
    return atomic_load(&w.failed);
}

static int batch(uint32_t threads, const char *path) {
    double t0 = now();
    hexz_open_options o = HEXZ_OPEN_OPTIONS_INIT;
    o.read_slots = threads;
    hexz_archive *a = NULL;
    if (hexz_open_path(path, &o, &a) != HEXZ_STATUS_OK) {
        fprintf(stderr, "%s\n", hexz_last_error());
        return 1;
    }
    size_t count = 0;
    hexz_tensor_count(a, &count);
    hexz_tensor_read *reads = calloc(count ? count : 1, sizeof *reads);
    unsigned long long total = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, i, &t);
        reads[i] = (hexz_tensor_read){i, malloc(t.length ? t.length : 1), t.length};
        total += t.length;
    }
    int failed = hexz_read_tensors(a, reads, count, threads) != HEXZ_STATUS_OK;
    if (failed) fprintf(stderr, "%s\n", hexz_last_error());
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("hexz_read_tensors, %u threads: %zu tensors, %.1f MB in %.3f s (%.0f MB/s), peak RSS %.1f MiB (the model held)\n",
           threads, count, (double)total / 1e6, dt, (double)total / 1e6 / dt, (double)ru.ru_maxrss / 1024.0);
    for (size_t i = 0; i < count; i++) free(reads[i].buf);
    free(reads);
    hexz_close(a);
    return failed;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "open") == 0) {
        double best = 1e9;
        for (int k = 0; k < 20; k++) {
            double start = now();
            hexz_archive *a = NULL;
            if (hexz_open_path(argv[2], NULL, &a) != HEXZ_STATUS_OK) {
                fprintf(stderr, "%s\n", hexz_last_error());
                return 1;
            }
            double dt = now() - start;
            best = dt < best ? dt : best;
            hexz_close(a);
        }
        printf("open (and build the tensor and GGUF tables): %.1f ms, best of 20\n", best * 1000);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "batch") == 0) return batch((uint32_t)atoi(argv[2]), argv[3]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "threads") == 0)
        return threaded(atoi(argv[2]), argv[3], argc == 5 ? argv[4] : NULL, getenv("BENCH_UNALIGNED") == NULL);
    if (argc < 3) {
        fprintf(stderr, "usage: %s hxz ARCHIVE | gguf ARCHIVE FILE.gguf\n", argv[0]);
        return 2;
    }
    int use_gguf = strcmp(argv[1], "gguf") == 0;
    if (strcmp(argv[1], "one") == 0 && argc == 4) {
        hexz_archive *one = NULL;
        size_t index = 0;
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        if (hexz_open_path(argv[2], NULL, &one) != HEXZ_STATUS_OK || hexz_find_tensor(one, argv[3], &index) != HEXZ_STATUS_OK ||
            hexz_tensor_get_info(one, index, &t) != HEXZ_STATUS_OK) {
            fprintf(stderr, "%s\n", hexz_last_error());
            return 1;
        }
        unsigned char *buf = malloc(t.length);
        double start = now();
        for (int k = 0; k < 50; k++) {
            size_t got = 0;
            if (hexz_read_tensor(one, index, buf, t.length, &got) != HEXZ_STATUS_OK) return 1;
        }
        printf("one tensor %s (%zu bytes): %.3f ms per read\n", argv[3], (size_t)t.length, (now() - start) / 50 * 1000);
        free(buf);
        hexz_close(one);
        return 0;
    }
    double t0 = now();
    hexz_archive *a = NULL;
    if (hexz_open_path(argv[2], NULL, &a) != HEXZ_STATUS_OK) {
        fprintf(stderr, "%s\n", hexz_last_error());
        return 1;
    }
    int fd = use_gguf ? open(argv[3], O_RDONLY) : -1;
    size_t count = 0;
    hexz_tensor_count(a, &count);
    unsigned long long total = 0;
    double t_start = use_gguf ? now() : t0;
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, i, &t);
        unsigned char *buf = malloc(t.length ? t.length : 1);
        if (use_gguf) {
            if (pread_all(fd, buf, t.length, t.offset) != 0) return 1;
        } else {
            size_t got = 0;
            if (hexz_read_tensor(a, i, buf, t.length, &got) != HEXZ_STATUS_OK) {
                fprintf(stderr, "%s\n", hexz_last_error());
                return 1;
            }
        }
        total += t.length;
        free(buf);
    }
    double dt = now() - t_start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s: %zu tensors, %.1f MB in %.3f s (%.0f MB/s), peak RSS %.1f MiB\n", use_gguf ? "read() .gguf" : "hexz C API",
           count, (double)total / 1e6, dt, (double)total / 1e6 / dt, (double)ru.ru_maxrss / 1024.0);
    if (fd >= 0) close(fd);
    hexz_close(a);
    return 0;
}
