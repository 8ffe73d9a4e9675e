/*
 * C test suite for libhexz, run under valgrind memcheck by scripts/c-tests.sh.
 *
 * usage: test_hexz ARCHIVE.hxz ORIGINAL.gguf DUMP_OUT
 *
 * - every tensor's bytes equal the original file's bytes at its offset;
 * - every tensor and GGUF key/value is written to DUMP_OUT in the canonical
 *   text form that tests/oracle/gguf_dump.py produces from gguf-py, and the
 *   script compares the two;
 * - opening from memory and from callbacks reads the same bytes;
 * - many threads reading random tensors at once get the right bytes;
 * - error paths return their status: bad path, corrupted archive, wrong
 *   name, small buffer, NULL arguments, wrong value types.
 */
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_STATUS(call, want) CHECK((call) == (want))

static void hex(FILE *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) fprintf(out, "%02x", (unsigned char)s[i]);
}

static const char *type_name(uint32_t t) {
    static const char *names[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                  "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
    return t < 13 ? names[t] : "UNKNOWN";
}

static void dump_scalar(FILE *out, uint32_t type, const unsigned char *p) {
    switch (type) {
    case HEXZ_GGUF_TYPE_UINT8: fprintf(out, "%u", p[0]); break;
    case HEXZ_GGUF_TYPE_INT8: fprintf(out, "%d", (int8_t)p[0]); break;
    case HEXZ_GGUF_TYPE_BOOL: fprintf(out, "%d", p[0] != 0); break;
    case HEXZ_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); fprintf(out, "%u", v); break; }
    case HEXZ_GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); fprintf(out, "%d", v); break; }
    case HEXZ_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); fprintf(out, "%u", v); break; }
    case HEXZ_GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); fprintf(out, "%d", v); break; }
    case HEXZ_GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); fprintf(out, "%.9g", (double)v); break; }
    case HEXZ_GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); fprintf(out, "%llu", (unsigned long long)v); break; }
    case HEXZ_GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); fprintf(out, "%lld", (long long)v); break; }
    case HEXZ_GGUF_TYPE_FLOAT64: { double v; memcpy(&v, p, 8); fprintf(out, "%.17g", v); break; }
    default: fprintf(out, "?");
    }
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case HEXZ_GGUF_TYPE_UINT8: case HEXZ_GGUF_TYPE_INT8: case HEXZ_GGUF_TYPE_BOOL: return 1;
    case HEXZ_GGUF_TYPE_UINT16: case HEXZ_GGUF_TYPE_INT16: return 2;
    case HEXZ_GGUF_TYPE_UINT32: case HEXZ_GGUF_TYPE_INT32: case HEXZ_GGUF_TYPE_FLOAT32: return 4;
    default: return 8;
    }
}

/* Read one scalar through its typed getter into 8 bytes. */
static hexz_status get_scalar(const hexz_archive *a, size_t i, uint32_t type, unsigned char out[8]) {
    memset(out, 0, 8);
    switch (type) {
    case HEXZ_GGUF_TYPE_UINT8: return hexz_gguf_get_u8(a, i, (uint8_t *)out);
    case HEXZ_GGUF_TYPE_INT8: return hexz_gguf_get_i8(a, i, (int8_t *)out);
    case HEXZ_GGUF_TYPE_BOOL: { bool b = false; hexz_status s = hexz_gguf_get_bool(a, i, &b); out[0] = b; return s; }
    case HEXZ_GGUF_TYPE_UINT16: { uint16_t v = 0; hexz_status s = hexz_gguf_get_u16(a, i, &v); memcpy(out, &v, 2); return s; }
    case HEXZ_GGUF_TYPE_INT16: { int16_t v = 0; hexz_status s = hexz_gguf_get_i16(a, i, &v); memcpy(out, &v, 2); return s; }
    case HEXZ_GGUF_TYPE_UINT32: { uint32_t v = 0; hexz_status s = hexz_gguf_get_u32(a, i, &v); memcpy(out, &v, 4); return s; }
    case HEXZ_GGUF_TYPE_INT32: { int32_t v = 0; hexz_status s = hexz_gguf_get_i32(a, i, &v); memcpy(out, &v, 4); return s; }
    case HEXZ_GGUF_TYPE_FLOAT32: { float v = 0; hexz_status s = hexz_gguf_get_f32(a, i, &v); memcpy(out, &v, 4); return s; }
    case HEXZ_GGUF_TYPE_UINT64: { uint64_t v = 0; hexz_status s = hexz_gguf_get_u64(a, i, &v); memcpy(out, &v, 8); return s; }
    case HEXZ_GGUF_TYPE_INT64: { int64_t v = 0; hexz_status s = hexz_gguf_get_i64(a, i, &v); memcpy(out, &v, 8); return s; }
    case HEXZ_GGUF_TYPE_FLOAT64: { double v = 0; hexz_status s = hexz_gguf_get_f64(a, i, &v); memcpy(out, &v, 8); return s; }
    default: return HEXZ_STATUS_TYPE_MISMATCH;
    }
}

static void dump(const hexz_archive *a, FILE *out) {
    uint32_t version = 0;
    uint64_t alignment = 0, data_offset = 0;
    CHECK_STATUS(hexz_gguf_get_header_info(a, &version, &alignment, &data_offset), HEXZ_STATUS_OK);
    fprintf(out, "version %u\n", version);
    size_t n = 0;
    CHECK_STATUS(hexz_gguf_kv_count(a, &n), HEXZ_STATUS_OK);
    for (size_t i = 0; i < n; i++) {
        const char *key = NULL;
        size_t key_len = 0;
        uint32_t type = 0;
        CHECK_STATUS(hexz_gguf_get_key(a, i, &key, &key_len), HEXZ_STATUS_OK);
        CHECK_STATUS(hexz_gguf_get_type(a, i, &type), HEXZ_STATUS_OK);
        size_t found = (size_t)-1;
        CHECK_STATUS(hexz_gguf_find_key(a, key, &found), HEXZ_STATUS_OK);
        CHECK(found == i);
        fprintf(out, "kv %s %s ", key, type_name(type));
        if (type == HEXZ_GGUF_TYPE_STRING) {
            const char *s = NULL;
            size_t len = 0;
            CHECK_STATUS(hexz_gguf_get_string(a, i, &s, &len), HEXZ_STATUS_OK);
            hex(out, s, len);
        } else if (type == HEXZ_GGUF_TYPE_ARRAY) {
            uint32_t elem = 0;
            uint64_t len = 0;
            CHECK_STATUS(hexz_gguf_get_array_info(a, i, &elem, &len), HEXZ_STATUS_OK);
            fprintf(out, "%s %llu", type_name(elem), (unsigned long long)len);
            if (elem == HEXZ_GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < len; j++) {
                    const char *s = NULL;
                    size_t slen = 0;
                    CHECK_STATUS(hexz_gguf_get_array_string(a, i, j, &s, &slen), HEXZ_STATUS_OK);
                    fputc(' ', out);
                    hex(out, s, slen);
                }
            } else {
                const void *data = NULL;
                size_t bytes = 0;
                CHECK_STATUS(hexz_gguf_get_array_data(a, i, &data, &bytes), HEXZ_STATUS_OK);
                size_t size = scalar_size(elem);
                CHECK(bytes == size * len);
                for (size_t j = 0; j < bytes; j += size) {
                    fputc(' ', out);
                    dump_scalar(out, elem, (const unsigned char *)data + j);
                }
            }
        } else {
            unsigned char raw[8];
            CHECK_STATUS(get_scalar(a, i, type, raw), HEXZ_STATUS_OK);
            dump_scalar(out, type, raw);
            /* Every other typed getter refuses this key. */
            unsigned char other[8];
            uint32_t wrong = type == HEXZ_GGUF_TYPE_UINT32 ? HEXZ_GGUF_TYPE_INT64 : HEXZ_GGUF_TYPE_UINT32;
            CHECK_STATUS(get_scalar(a, i, wrong, other), HEXZ_STATUS_TYPE_MISMATCH);
        }
        fputc('\n', out);
    }
    size_t count = 0;
    CHECK_STATUS(hexz_tensor_count(a, &count), HEXZ_STATUS_OK);
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        CHECK_STATUS(hexz_tensor_get_info(a, i, &t), HEXZ_STATUS_OK);
        fprintf(out, "tensor %s %u %s %u", t.name, t.ggml_type, t.dtype, t.n_dims);
        for (uint32_t d = 0; d < t.n_dims; d++) fprintf(out, " %llu", (unsigned long long)t.dims[d]);
        fprintf(out, " %llu %llu\n", (unsigned long long)t.offset, (unsigned long long)t.length);
    }
}

/* Compare every tensor with the original file. */
static void check_tensors(const hexz_archive *a, const unsigned char *orig, size_t orig_len) {
    size_t count = 0;
    CHECK_STATUS(hexz_tensor_count(a, &count), HEXZ_STATUS_OK);
    CHECK(count > 0);
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        CHECK_STATUS(hexz_tensor_get_info(a, i, &t), HEXZ_STATUS_OK);
        size_t index = (size_t)-1;
        CHECK_STATUS(hexz_find_tensor(a, t.name, &index), HEXZ_STATUS_OK);
        CHECK(index == i);
        CHECK(t.offset + t.length <= orig_len);
        unsigned char *buf = malloc(t.length ? t.length : 1);
        size_t got = 0;
        CHECK_STATUS(hexz_read_tensor(a, i, buf, t.length, &got), HEXZ_STATUS_OK);
        CHECK(got == t.length);
        CHECK(memcmp(buf, orig + t.offset, t.length) == 0);
        free(buf);
    }
    /* Every tensor in one hexz_read_tensors call, on one thread and on one
       per core, the first tensor twice (into two buffers). */
    for (uint32_t threads = 0; threads <= 1; threads++) {
        hexz_tensor_read *reads = calloc(count + 1, sizeof *reads);
        for (size_t i = 0; i <= count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, i < count ? i : 0, &t);
            reads[i] = (hexz_tensor_read){i < count ? i : 0, malloc(t.length + 1), t.length + 1};
        }
        CHECK_STATUS(hexz_read_tensors(a, reads, count + 1, threads), HEXZ_STATUS_OK);
        for (size_t i = 0; i <= count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, reads[i].index, &t);
            CHECK(memcmp(reads[i].buf, orig + t.offset, t.length) == 0);
            free(reads[i].buf);
        }
        free(reads);
    }
}

struct reader_args {
    const hexz_archive *archive;
    const unsigned char *orig;
    unsigned seed;
    int errors;
};

static void *reader_thread(void *p) {
    struct reader_args *r = p;
    size_t count = 0;
    hexz_tensor_count(r->archive, &count);
    for (int k = 0; k < 40; k++) {
        r->seed = r->seed * 1103515245u + 12345u;
        size_t i = (r->seed >> 8) % count;
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        if (hexz_tensor_get_info(r->archive, i, &t) != HEXZ_STATUS_OK) { r->errors++; continue; }
        unsigned char *buf = malloc(t.length ? t.length : 1);
        size_t got = 0;
        if (hexz_read_tensor(r->archive, i, buf, t.length, &got) != HEXZ_STATUS_OK || got != t.length ||
            memcmp(buf, r->orig + t.offset, t.length) != 0)
            r->errors++;
        free(buf);
    }
    return NULL;
}

struct memory_file {
    const unsigned char *data;
    size_t len;
};

static int read_cb(void *user, uint64_t offset, uint8_t *buf, size_t len) {
    const struct memory_file *m = user;
    if (offset > m->len || len > m->len - offset) return -1;
    memcpy(buf, m->data + offset, len);
    return 0;
}

static void check_errors(const char *archive_path, const unsigned char *hxz, size_t hxz_len) {
    hexz_archive *a = NULL;
    /* Bad path. */
    CHECK_STATUS(hexz_open_path("/nonexistent/x.hxz", NULL, &a), HEXZ_STATUS_IO);
    CHECK(a == NULL);
    CHECK(strstr(hexz_last_error(), "/nonexistent/x.hxz") != NULL);
    /* Not an archive. */
    static const unsigned char junk[300] = {1, 2, 3};
    CHECK_STATUS(hexz_open_memory(junk, sizeof junk, NULL, &a), HEXZ_STATUS_BAD_MAGIC);
    /* NULL arguments. */
    CHECK_STATUS(hexz_open_path(NULL, NULL, &a), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_open_path(archive_path, NULL, NULL), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_open_memory(NULL, 10, NULL, &a), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_open_callbacks(NULL, 10, NULL, NULL, &a), HEXZ_STATUS_NULL_ARGUMENT);
    size_t n = 0;
    CHECK_STATUS(hexz_tensor_count(NULL, &n), HEXZ_STATUS_NULL_ARGUMENT);
    hexz_close(NULL);
    /* Corrupted footer: refused at open. */
    unsigned char *bad = malloc(hxz_len);
    memcpy(bad, hxz, hxz_len);
    bad[hxz_len - 10] ^= 0x55;
    CHECK_STATUS(hexz_open_memory(bad, hxz_len, NULL, &a), HEXZ_STATUS_CHECKSUM);
    /* Corrupted block data: opens, the read of that block fails, others work. */
    memcpy(bad, hxz, hxz_len);
    bad[hxz_len / 2] ^= 0x55;
    CHECK_STATUS(hexz_open_memory(bad, hxz_len, NULL, &a), HEXZ_STATUS_OK);
    if (a) {
        hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
        CHECK_STATUS(hexz_archive_get_info(a, &info), HEXZ_STATUS_OK);
        size_t count = 0, failed = 0;
        hexz_tensor_count(a, &count);
        for (size_t i = 0; i < count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, i, &t);
            unsigned char *buf = malloc(t.length ? t.length : 1);
            size_t got = 0;
            hexz_status s = hexz_read_tensor(a, i, buf, t.length, &got);
            if (s != HEXZ_STATUS_OK) {
                CHECK(s == HEXZ_STATUS_HASH_MISMATCH || s == HEXZ_STATUS_DECODE);
                failed++;
            }
            free(buf);
        }
        CHECK(failed >= 1 && failed < count);
        /* All tensors in one call: it fails, and no buffer keeps a byte. */
        hexz_tensor_read *reads = calloc(count, sizeof *reads);
        for (size_t i = 0; i < count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, i, &t);
            reads[i] = (hexz_tensor_read){i, malloc(t.length ? t.length : 1), t.length};
            memset(reads[i].buf, 0xaa, t.length);
        }
        hexz_status s = hexz_read_tensors(a, reads, count, 0);
        CHECK(s == HEXZ_STATUS_HASH_MISMATCH || s == HEXZ_STATUS_DECODE);
        size_t nonzero = 0;
        for (size_t i = 0; i < count; i++) {
            for (size_t k = 0; k < reads[i].buf_len; k++) nonzero += reads[i].buf[k] != 0;
            free(reads[i].buf);
        }
        CHECK(nonzero == 0);
        free(reads);
        hexz_close(a);
        a = NULL;
    }
    free(bad);
    /* Wrong name, small buffer, bad index, NULL outputs, wrong kind of value. */
    CHECK_STATUS(hexz_open_memory(hxz, hxz_len, NULL, &a), HEXZ_STATUS_OK);
    size_t index = 0;
    CHECK_STATUS(hexz_find_tensor(a, "no.such.tensor", &index), HEXZ_STATUS_NOT_FOUND);
    CHECK_STATUS(hexz_find_tensor(a, NULL, &index), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_find_tensor(a, "token_embd.weight", &index), HEXZ_STATUS_OK);
    hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
    CHECK_STATUS(hexz_tensor_get_info(a, index, &t), HEXZ_STATUS_OK);
    unsigned char small[16];
    size_t needed = 0;
    CHECK_STATUS(hexz_read_tensor(a, index, small, sizeof small, &needed), HEXZ_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed == t.length);
    CHECK_STATUS(hexz_read_tensor(a, index, NULL, 0, &needed), HEXZ_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(hexz_read_tensor(a, 1u << 30, small, sizeof small, &needed), HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hexz_tensor_get_info(a, 1u << 30, &t), HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hexz_read_range(a, (uint64_t)-8, small, 16), HEXZ_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(hexz_read_range(a, 0, NULL, 16), HEXZ_STATUS_NULL_ARGUMENT);
    /* Block spans: token_embd's blocks tile it; the end of the file has none. */
    uint64_t at = t.offset, start = 0, length = 0, blocks = 0;
    while (at < t.offset + t.length) {
        CHECK_STATUS(hexz_block_span(a, at, &start, &length), HEXZ_STATUS_OK);
        uint64_t mid_start = 0, mid_length = 0;
        CHECK_STATUS(hexz_block_span(a, at + length / 2, &mid_start, &mid_length), HEXZ_STATUS_OK);
        if (start != at || length == 0 || length > (2u << 20) || mid_start != start || mid_length != length) {
            CHECK(start == at && length > 0 && length <= (2u << 20) && mid_start == start && mid_length == length);
            break;
        }
        at += length;
        blocks++;
    }
    CHECK(at == t.offset + t.length && blocks > 100);
    hexz_archive_info ainfo = HEXZ_ARCHIVE_INFO_INIT;
    CHECK_STATUS(hexz_archive_get_info(a, &ainfo), HEXZ_STATUS_OK);
    CHECK_STATUS(hexz_block_span(a, ainfo.original_size, &start, &length), HEXZ_STATUS_OUT_OF_RANGE);
    CHECK_STATUS(hexz_block_span(a, 0, NULL, &length), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_block_span(NULL, 0, &start, &length), HEXZ_STATUS_NULL_ARGUMENT);
    /* hexz_read_tensors checks every entry before reading any. */
    size_t norm = 0;
    CHECK_STATUS(hexz_find_tensor(a, "output_norm.weight", &norm), HEXZ_STATUS_OK);
    unsigned char norm_buf[2560], big[4096];
    hexz_tensor_read two[2] = {{norm, norm_buf, sizeof norm_buf}, {index, small, sizeof small}};
    CHECK_STATUS(hexz_read_tensors(a, NULL, 0, 0), HEXZ_STATUS_OK);
    CHECK_STATUS(hexz_read_tensors(NULL, two, 1, 0), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_read_tensors(a, NULL, 1, 0), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 0), HEXZ_STATUS_BUFFER_TOO_SMALL);
    CHECK(strstr(hexz_last_error(), "reads[1]") != NULL);
    two[1] = (hexz_tensor_read){1u << 30, big, sizeof big};
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 0), HEXZ_STATUS_INVALID_ARGUMENT);
    two[1] = (hexz_tensor_read){norm, NULL, 0};
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 0), HEXZ_STATUS_BUFFER_TOO_SMALL);
    two[1] = (hexz_tensor_read){norm, NULL, 4096};
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 0), HEXZ_STATUS_NULL_ARGUMENT);
    two[1] = (hexz_tensor_read){norm, norm_buf + 100, sizeof norm_buf};
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 0), HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hexz_last_error(), "overlap") != NULL);
    two[1] = (hexz_tensor_read){norm, big, sizeof big};
    CHECK_STATUS(hexz_read_tensors(a, two, 2, 2), HEXZ_STATUS_OK);
    CHECK(memcmp(norm_buf, big, sizeof norm_buf) == 0);
    CHECK_STATUS(hexz_gguf_find_key(a, "no.such.key", &index), HEXZ_STATUS_NOT_FOUND);
    CHECK_STATUS(hexz_gguf_find_key(a, "general.architecture", &index), HEXZ_STATUS_OK);
    uint32_t u = 0;
    CHECK_STATUS(hexz_gguf_get_u32(a, index, &u), HEXZ_STATUS_TYPE_MISMATCH);
    CHECK_STATUS(hexz_gguf_get_array_data(a, index, NULL, NULL), HEXZ_STATUS_TYPE_MISMATCH);
    CHECK_STATUS(hexz_gguf_get_string(a, index, NULL, NULL), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_gguf_get_key(a, 100000, NULL, NULL), HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(hexz_status_str(HEXZ_STATUS_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(hexz_status_str(9999), "unknown status") == 0);
    /* Categories: the kind of failure (bindings/testdata/error-categories.json). */
    CHECK(hexz_status_category(HEXZ_STATUS_OK) == HEXZ_CATEGORY_OK);
    CHECK(hexz_status_category(HEXZ_STATUS_HASH_MISMATCH) == HEXZ_CATEGORY_CORRUPT);
    CHECK(hexz_status_category(HEXZ_STATUS_VERIFY_FAILED) == HEXZ_CATEGORY_CORRUPT);
    CHECK(hexz_status_category(HEXZ_STATUS_TYPE_MISMATCH) == HEXZ_CATEGORY_INVALID_INPUT);
    CHECK(hexz_status_category(HEXZ_STATUS_NOT_FOUND) == HEXZ_CATEGORY_NOT_FOUND);
    CHECK(hexz_status_category(HEXZ_STATUS_PARENT_NOT_FOUND) == HEXZ_CATEGORY_PARENT_MISSING);
    CHECK(hexz_status_category(HEXZ_STATUS_CANCELLED) == HEXZ_CATEGORY_CANCELLED);
    CHECK(hexz_status_category(HEXZ_STATUS_PANIC) == HEXZ_CATEGORY_INTERNAL);
    CHECK(hexz_status_category(9999) == HEXZ_CATEGORY_INTERNAL);
    hexz_close(a);
}

/* One-call store and verify, alone and against a base, on small files. */
static void check_store(const char *dir_hint) {
    char src[512], base_src[512], dst[512], base_dst[512];
    snprintf(base_src, sizeof base_src, "%s.base.bin", dir_hint);
    snprintf(src, sizeof src, "%s.fine.bin", dir_hint);
    snprintf(base_dst, sizeof base_dst, "%s.base.hxz", dir_hint);
    snprintf(dst, sizeof dst, "%s.fine.hxz", dir_hint);
    size_t n = 300000;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)((i * 2654435761u) >> 13);
    FILE *f = fopen(base_src, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    for (size_t i = 1000; i < 1100; i++) data[i] ^= 0x5a;
    f = fopen(src, "wb");
    fwrite(data, 1, n, f);
    fclose(f);

    hexz_store_options opts = HEXZ_STORE_OPTIONS_INIT;
    opts.compression = HEXZ_COMPRESSION_LZ4;
    opts.block_size = 65536;
    opts.threads = 2;
    opts.chunking = HEXZ_CHUNKING_FIXED;
    hexz_store_report report = HEXZ_STORE_REPORT_INIT;
    CHECK_STATUS(hexz_store(base_src, base_dst, &opts, &report), HEXZ_STATUS_OK);
    CHECK(report.source_size == n && report.blocks == 5);
    opts.base = base_dst;
    CHECK_STATUS(hexz_store(src, dst, &opts, &report), HEXZ_STATUS_OK);
    CHECK(report.blocks == 5);
    size_t problems = 99;
    CHECK_STATUS(hexz_verify(dst, true, &problems), HEXZ_STATUS_OK);
    CHECK(problems == 0);

    hexz_archive *a = NULL;
    CHECK_STATUS(hexz_open_path(dst, NULL, &a), HEXZ_STATUS_OK);
    if (a) {
        hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
        CHECK_STATUS(hexz_archive_get_info(a, &info), HEXZ_STATUS_OK);
        CHECK(info.has_parent == 1 && info.source_format == HEXZ_SOURCE_RAW && info.original_size == n);
        unsigned char *back = malloc(n);
        CHECK_STATUS(hexz_read_range(a, 0, back, n), HEXZ_STATUS_OK);
        CHECK(memcmp(back, data, n) == 0);
        free(back);
        hexz_close(a);
    }
    /* A missing base: opening the child names what is missing. */
    remove(base_dst);
    a = NULL;
    CHECK_STATUS(hexz_open_path(dst, NULL, &a), HEXZ_STATUS_PARENT_NOT_FOUND);
    CHECK(strstr(hexz_last_error(), "base.hxz") != NULL);
    CHECK_STATUS(hexz_verify(dst, false, &problems), HEXZ_STATUS_VERIFY_FAILED);
    /* Bad arguments. */
    CHECK_STATUS(hexz_store(NULL, dst, NULL, NULL), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(hexz_store("/nonexistent/src.bin", dst, NULL, NULL), HEXZ_STATUS_IO);
    opts.base = NULL;
    /* A URL destination: libhexz has no remote stack (libhexz-remote is
       tested against an S3 server in tests/remote); dst and url are exclusive. */
    opts.url = "s3://models/c-test.hxz";
    CHECK_STATUS(hexz_store(src, NULL, &opts, NULL), HEXZ_STATUS_UNSUPPORTED);
    CHECK(strstr(hexz_last_error(), "remote") != NULL);
    CHECK_STATUS(hexz_store(src, dst, &opts, NULL), HEXZ_STATUS_INVALID_ARGUMENT);
    opts.url = NULL;
    CHECK_STATUS(hexz_store(src, NULL, &opts, NULL), HEXZ_STATUS_NULL_ARGUMENT);
    /* A caller built against 1.0's struct (no url): still served. */
    opts.struct_size = offsetof(hexz_store_options, url);
    opts.url = "s3://not/read.hxz";
    remove(dst);
    CHECK_STATUS(hexz_store(src, dst, &opts, NULL), HEXZ_STATUS_OK);
    opts.struct_size = sizeof opts;
    opts.url = NULL;
    opts.compression = 77;
    CHECK_STATUS(hexz_store(src, dst, &opts, NULL), HEXZ_STATUS_INVALID_ARGUMENT);
    remove(src);
    remove(base_src);
    remove(dst);
    free(data);
}

/* Signed archives (libhexz 1.2): the spec's signed vector opens with its
   key (run from the repository root, as c-tests.sh does); an unsigned
   archive, another key and a bad key are refused. */
static void check_signatures(void) {
    size_t pub_len = 0;
    unsigned char *pub = read_file("spec/vectors/signed-test.pub", &pub_len);
    CHECK(pub != NULL);
    if (!pub) return;
    char *key = malloc(pub_len + 1);
    memcpy(key, pub, pub_len);
    key[pub_len] = 0;
    const char *keys[1] = {key};
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.trusted_keys = keys;
    opts.trusted_key_count = 1;
    hexz_archive *a = NULL;
    CHECK_STATUS(hexz_open_path("spec/vectors/signed-gguf-lz4.hxz", &opts, &a), HEXZ_STATUS_OK);
    hexz_close(a);
    a = NULL;
    CHECK_STATUS(hexz_open_path("spec/vectors/gguf-lz4.hxz", &opts, &a), HEXZ_STATUS_SIGNATURE);
    CHECK(a == NULL);
    CHECK(hexz_status_category(HEXZ_STATUS_SIGNATURE) == HEXZ_CATEGORY_SIGNATURE);
    CHECK(strstr(hexz_last_error(), "not signed") != NULL);
    /* Another key (another key id): refused. */
    const char *other[1] = {"RWQBAgMEBQYHCCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS"};
    opts.trusted_keys = other;
    CHECK_STATUS(hexz_open_path("spec/vectors/signed-gguf-lz4.hxz", &opts, &a), HEXZ_STATUS_SIGNATURE);
    const char *bad[1] = {"not a key"};
    opts.trusted_keys = bad;
    CHECK_STATUS(hexz_open_path("spec/vectors/signed-gguf-lz4.hxz", &opts, &a), HEXZ_STATUS_INVALID_ARGUMENT);
    opts.trusted_keys = NULL;
    CHECK_STATUS(hexz_open_path("spec/vectors/signed-gguf-lz4.hxz", &opts, &a), HEXZ_STATUS_NULL_ARGUMENT);
    free(key);
    free(pub);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ARCHIVE.hxz ORIGINAL.gguf DUMP_OUT\n", argv[0]);
        return 2;
    }
    CHECK(hexz_version() == HEXZ_VERSION_NUMBER);
    CHECK(hexz_version() == ((HEXZ_VERSION_MAJOR << 16) | (HEXZ_VERSION_MINOR << 8) | HEXZ_VERSION_PATCH));
    char expected_version[32];
    snprintf(expected_version, sizeof expected_version, "%d.%d.%d", HEXZ_VERSION_MAJOR, HEXZ_VERSION_MINOR,
             HEXZ_VERSION_PATCH);
    CHECK(strcmp(hexz_version_string(), expected_version) == 0);
    CHECK(strcmp(hexz_version_string(), HEXZ_VERSION_STRING) == 0);

    size_t orig_len = 0, hxz_len = 0;
    unsigned char *orig = read_file(argv[2], &orig_len);
    unsigned char *hxz = read_file(argv[1], &hxz_len);
    if (!orig || !hxz) {
        fprintf(stderr, "cannot read inputs\n");
        return 2;
    }

    hexz_archive *a = NULL;
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.read_slots = 4;
    CHECK_STATUS(hexz_open_path(argv[1], &opts, &a), HEXZ_STATUS_OK);
    if (!a) return 1;
    hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
    CHECK_STATUS(hexz_archive_get_info(a, &info), HEXZ_STATUS_OK);

    /* User metadata, as c-tests.sh stored it: run=c-tests, cfg:={"lr":0.001}. */
    size_t md_count = 0;
    CHECK_STATUS(hexz_metadata_count(a, &md_count), HEXZ_STATUS_OK);
    CHECK(md_count == 2);
    const char *key = NULL, *value = NULL;
    size_t key_len = 0, value_len = 0;
    bool is_json = true;
    CHECK_STATUS(hexz_metadata_get(a, 0, &key, &key_len, &value, &value_len, &is_json), HEXZ_STATUS_OK);
    CHECK(key && strcmp(key, "run") == 0 && key_len == 3 && value && strcmp(value, "c-tests") == 0 && !is_json);
    CHECK_STATUS(hexz_metadata_get(a, 1, &key, NULL, &value, &value_len, &is_json), HEXZ_STATUS_OK);
    CHECK(key && strcmp(key, "cfg") == 0 && value && strcmp(value, "{\"lr\":0.001}") == 0 && is_json);
    CHECK_STATUS(hexz_metadata_get(a, 2, &key, NULL, NULL, NULL, NULL), HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hexz_metadata_count(NULL, &md_count), HEXZ_STATUS_NULL_ARGUMENT);
    CHECK(info.source_format == HEXZ_SOURCE_GGUF);
    CHECK(info.original_size == orig_len);
    CHECK(info.archive_size == hxz_len);
    CHECK(info.has_parent == 0);

    FILE *out = fopen(argv[3], "w");
    CHECK(out != NULL);
    if (out) {
        dump(a, out);
        fclose(out);
    }
    check_tensors(a, orig, orig_len);

    /* The verbatim original header. */
    const uint8_t *header = NULL;
    size_t header_len = 0;
    uint64_t data_offset = 0;
    CHECK_STATUS(hexz_source_header(a, &header, &header_len), HEXZ_STATUS_OK);
    CHECK_STATUS(hexz_gguf_get_header_info(a, NULL, NULL, &data_offset), HEXZ_STATUS_OK);
    CHECK(header_len == data_offset && memcmp(header, orig, header_len) == 0);

    /* A byte range across block boundaries. */
    size_t span = 5u << 20;
    unsigned char *range = malloc(span);
    CHECK_STATUS(hexz_read_range(a, 12345, range, span), HEXZ_STATUS_OK);
    CHECK(memcmp(range, orig + 12345, span) == 0);
    free(range);

    /* Threads: 8 readers over 4 read slots. */
    pthread_t threads[8];
    struct reader_args args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct reader_args){a, orig, (unsigned)i * 7919u + 1u, 0};
        pthread_create(&threads[i], NULL, reader_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].errors == 0);
    }

#ifdef __linux__
    /* The whole original file through a memfd. */
    int fd = -1;
    CHECK_STATUS(hexz_memfd(a, &fd), HEXZ_STATUS_OK);
    if (fd >= 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        size_t mem_len = 0;
        unsigned char *mem = read_file(path, &mem_len);
        CHECK(mem != NULL && mem_len == orig_len && memcmp(mem, orig, orig_len) == 0);
        free(mem);
        close(fd);
    }
#endif
    hexz_close(a);

    /* Memory and callback sources read the same bytes. */
    a = NULL;
    CHECK_STATUS(hexz_open_memory(hxz, hxz_len, NULL, &a), HEXZ_STATUS_OK);
    if (a) {
        check_tensors(a, orig, orig_len);
        hexz_close(a);
    }
    struct memory_file mf = {hxz, hxz_len};
    a = NULL;
    CHECK_STATUS(hexz_open_callbacks(read_cb, hxz_len, &mf, NULL, &a), HEXZ_STATUS_OK);
    if (a) {
        check_tensors(a, orig, orig_len);
        hexz_close(a);
    }

    check_errors(argv[1], hxz, hxz_len);
    check_store(argv[3]);
    check_signatures();

    /* Verify through the ABI. */
    size_t problems = 99;
    CHECK_STATUS(hexz_verify(argv[1], false, &problems), HEXZ_STATUS_OK);
    CHECK(problems == 0);

    free(orig);
    free(hxz);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_hexz: all checks passed\n");
    return 0;
}
