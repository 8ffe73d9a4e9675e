/*
 * The read path allocates nothing after open: malloc and friends are
 * interposed and counted while tensors, ranges and GGUF values are read
 * (zstd and lz4 archives). Not run under valgrind (it replaces malloc).
 *
 * usage: test_noalloc ARCHIVE.hxz...
 */
#include <hexz.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int counting = 0;
static volatile long allocations = 0;

void *malloc(size_t n) {
    if (counting) allocations++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    if (counting) allocations++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    if (counting) allocations++;
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    if (counting) allocations++;
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}
void *aligned_alloc(size_t align, size_t n) {
    if (counting) allocations++;
    return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n) {
    if (counting) allocations++;
    return __libc_memalign(align, n);
}

int main(int argc, char **argv) {
    int failed = 0;
    for (int k = 1; k < argc; k++) {
        hexz_archive *a = NULL;
        if (hexz_open_path(argv[k], NULL, &a) != HEXZ_STATUS_OK) {
            fprintf(stderr, "%s: open failed: %s\n", argv[k], hexz_last_error());
            return 1;
        }
        size_t count = 0, max_len = 0;
        hexz_tensor_count(a, &count);
        for (size_t i = 0; i < count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, i, &t);
            if (t.length > max_len) max_len = t.length;
        }
        unsigned char *buf = __libc_malloc(max_len + (3u << 20));
        size_t kv_count = 0;
        hexz_gguf_kv_count(a, &kv_count);

        allocations = 0;
        counting = 1;
        for (size_t i = 0; i < count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            size_t got = 0, index = 0;
            if (hexz_tensor_get_info(a, i, &t) != HEXZ_STATUS_OK || hexz_find_tensor(a, t.name, &index) != HEXZ_STATUS_OK ||
                hexz_read_tensor(a, i, buf, max_len, &got) != HEXZ_STATUS_OK)
                failed++;
        }
        if (hexz_read_range(a, 4097, buf, 3u << 20) != HEXZ_STATUS_OK) failed++;
        for (size_t i = 0; i < kv_count; i++) {
            const char *key = NULL;
            size_t len = 0;
            uint32_t type = 0;
            if (hexz_gguf_get_key(a, i, &key, &len) != HEXZ_STATUS_OK || hexz_gguf_get_type(a, i, &type) != HEXZ_STATUS_OK)
                failed++;
        }
        counting = 0;

        printf("%s: %zu tensors read, %ld allocations on the read path\n", argv[k], count, allocations);
        if (allocations != 0) failed++;
        __libc_free(buf);
        hexz_close(a);
    }
    return failed ? 1 : 0;
}
