/*
 * The panic boundary, against a test build of libhexz (feature panic-test:
 * a read callback returning PANIC_TEST_STATUS makes the library panic
 * inside that read). scripts/c-tests.sh builds that library apart; the
 * shipped one has no such path.
 *
 * usage: test_panic ARCHIVE.hxz ORIGINAL.gguf STDERR_FILE
 *
 * A panic on a decoding worker thread (open's parallel header decode,
 * hexz_read_tensors, a large fread of a hexz_fopen stream) and one on the
 * calling thread each come back as HEXZ_STATUS_PANIC (the stream: EIO)
 * with the panic's message in hexz_last_error(); nothing is printed on
 * stderr (checked on STDERR_FILE, where this program sends it while the
 * library runs); the archive works afterwards (no read slot was lost).
 */
#define _GNU_SOURCE
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PANIC_TEST_STATUS 0x70616e63 /* hexz-ffi's panic-test feature */

static char first_failure[512];

/* stderr belongs to the library under test: failures are kept for the end. */
#undef CHECK
#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            if (!failures)                                                                            \
                snprintf(first_failure, sizeof first_failure, "%s:%d: check failed: %s (last error: %s)", \
                         __FILE__, __LINE__, #cond, hexz_last_error());                               \
            failures++;                                                                               \
        }                                                                                             \
    } while (0)

enum { ARMED_OFF, ARMED_WORKERS, ARMED_CALLER };

struct source {
    const unsigned char *data;
    size_t len;
    pthread_t caller;
    int armed;
    int worker_reads;
};

static int read_cb(void *user, uint64_t offset, uint8_t *buf, size_t len) {
    struct source *s = user;
    int armed = __atomic_load_n(&s->armed, __ATOMIC_RELAXED);
    int on_caller = pthread_equal(pthread_self(), s->caller);
    if (!on_caller) __atomic_add_fetch(&s->worker_reads, 1, __ATOMIC_RELAXED);
    if (armed == ARMED_WORKERS && !on_caller) return PANIC_TEST_STATUS;
    if (armed == ARMED_WORKERS) usleep(2000); /* the calling thread lets the workers take pieces */
    if (armed == ARMED_CALLER && on_caller) return PANIC_TEST_STATUS;
    if (offset > s->len || len > s->len - offset) return -1;
    memcpy(buf, s->data + offset, len);
    return 0;
}

static int is_panic_message(void) { return strstr(hexz_last_error(), "panic-test: the read callback asked") != NULL; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ARCHIVE.hxz ORIGINAL.gguf STDERR_FILE\n", argv[0]);
        return 2;
    }
    struct source s = {0};
    s.data = read_file(argv[1], &s.len);
    s.caller = pthread_self();
    size_t orig_len = 0;
    unsigned char *orig = read_file(argv[2], &orig_len);
    if (!s.data || !orig) {
        fprintf(stderr, "cannot read the inputs\n");
        return 2;
    }
    fflush(stderr);
    int saved = dup(2);
    int err_fd = open(argv[3], O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(err_fd, 2);

    /* Open and stream reads use one thread per core: workers need two. */
    int cores = sysconf(_SC_NPROCESSORS_ONLN) > 1;

    /* 1. Open decodes the long GGUF header on worker threads. */
    hexz_archive *a = NULL;
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.read_slots = 4;
    if (cores) {
        s.armed = ARMED_WORKERS;
        hexz_status open_status = hexz_open_callbacks(read_cb, s.len, &s, &opts, &a);
        CHECK(open_status == HEXZ_STATUS_PANIC && a == NULL && is_panic_message());
        s.armed = ARMED_OFF;
    }
    CHECK(hexz_open_callbacks(read_cb, s.len, &s, &opts, &a) == HEXZ_STATUS_OK);

    /* 2. hexz_read_tensors on two threads: the worker's read panics. */
    size_t count = 0;
    hexz_tensor_count(a, &count);
    hexz_tensor_read reads[8];
    size_t n = 0;
    for (size_t i = 0; i < count && n < 8; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, i, &t);
        if (t.length < (1u << 20)) continue;
        reads[n].index = i;
        reads[n].buf = malloc(t.length);
        reads[n].buf_len = t.length;
        n++;
    }
    CHECK(n >= 2);
    s.worker_reads = 0;
    s.armed = ARMED_WORKERS;
    CHECK(hexz_read_tensors(a, reads, n, 2) == HEXZ_STATUS_PANIC && is_panic_message());
    CHECK(s.worker_reads > 0);
    s.armed = ARMED_OFF;

    /* 3. The calling thread's own read. */
    unsigned char small[4096];
    s.armed = ARMED_CALLER;
    CHECK(hexz_read_range(a, 1u << 20, small, sizeof small) == HEXZ_STATUS_PANIC && is_panic_message());
    s.armed = ARMED_OFF;

    /* 4. A large fread of a stream: EIO, and the panic's message. */
    FILE *f = NULL;
    CHECK(hexz_fopen(a, &f) == HEXZ_STATUS_OK);
    size_t big = 32u << 20;
    unsigned char *large = malloc(big);
    if (f && cores) {
        CHECK(fseeko(f, (off_t)(orig_len / 3), SEEK_SET) == 0);
        s.armed = ARMED_WORKERS;
        errno = 0;
        CHECK(fread(large, 1, big, f) < big && ferror(f) && errno == EIO && is_panic_message());
        s.armed = ARMED_OFF;
        clearerr(f);
        CHECK(fseeko(f, (off_t)(orig_len / 3), SEEK_SET) == 0);
        CHECK(fread(large, 1, big, f) == big && memcmp(large, orig + orig_len / 3, big) == 0);
    }
    if (f) fclose(f);

    /* 5. Afterwards every read slot is back: all tensors read right. */
    CHECK(hexz_read_tensors(a, reads, n, 4) == HEXZ_STATUS_OK);
    for (size_t k = 0; k < n; k++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, reads[k].index, &t);
        CHECK(memcmp(reads[k].buf, orig + t.offset, t.length) == 0);
        free(reads[k].buf);
    }
    hexz_close(a);
    free(large);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(err_fd);
    struct stat st;
    CHECK(stat(argv[3], &st) == 0 && st.st_size == 0);
    free((void *)s.data);
    free(orig);
    if (failures) {
        fprintf(stderr, "%s\n%d check(s) failed\n", first_failure, failures);
        return 1;
    }
    printf("test_panic: panics on worker threads and the calling thread give HEXZ_STATUS_PANIC; nothing printed\n");
    return 0;
}
