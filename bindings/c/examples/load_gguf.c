/*
 * How an inference engine loads GGUF tensors straight from a .hxz archive:
 * open, read the model's metadata, enumerate tensors, allocate its own
 * buffers and have libhexz fill them.
 *
 * build: cc -std=c11 load_gguf.c $(pkg-config --cflags --libs hexz)
 * usage: load_gguf MODEL.hxz
 */
#include <hexz.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.hxz\n", argv[0]);
        return 2;
    }
    hexz_archive *model = NULL;
    hexz_status s = hexz_open_path(argv[1], NULL, &model);
    if (s != HEXZ_STATUS_OK) {
        fprintf(stderr, "open: %s: %s\n", hexz_status_str(s), hexz_last_error());
        return 1;
    }

    /* Metadata, as gguf_get_val_str / gguf_get_val_u32 would give it. */
    size_t key = 0;
    const char *arch = "?";
    size_t arch_len = 1;
    if (hexz_gguf_find_key(model, "general.architecture", &key) == HEXZ_STATUS_OK)
        hexz_gguf_get_string(model, key, &arch, &arch_len);
    printf("architecture: %.*s\n", (int)arch_len, arch);

    /* Enumerate tensors and load each into an engine-owned buffer. */
    size_t count = 0;
    hexz_tensor_count(model, &count);
    void **buffers = calloc(count, sizeof *buffers);
    unsigned long long total = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(model, i, &t);
        buffers[i] = malloc(t.length ? t.length : 1);
        size_t got = 0;
        s = hexz_read_tensor(model, i, buffers[i], t.length, &got);
        if (s != HEXZ_STATUS_OK) {
            fprintf(stderr, "tensor %s: %s\n", t.name, hexz_last_error());
            return 1;
        }
        total += got;
        if (i < 3)
            printf("  %-32s %-6s ggml_type=%u dims=[%llu%s] %zu bytes\n", t.name, t.dtype, t.ggml_type,
                   (unsigned long long)(t.n_dims ? t.dims[0] : 0), t.n_dims > 1 ? ", ..." : "", got);
    }
    printf("loaded %zu tensors, %llu bytes\n", count, total);

    for (size_t i = 0; i < count; i++) free(buffers[i]);
    free(buffers);
    hexz_close(model);
    return 0;
}
