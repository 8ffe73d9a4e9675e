/*
 * The C ABI under faults, as an engine author with an adversarial client
 * tries it (issue #17): out of memory under an address-space limit, a
 * metadata bomb, FIFOs, children opened from memory with attached parents,
 * option and output structs of an older and a newer layout, memfd seals, buffers after
 * a failed read, empty views, the callback contract, absurd options that
 * must neither abort nor print, errors that name the right file.
 *
 * Also the folder functions (format 1.1) on a real sharded checkpoint.
 *
 * usage: test_faults GEMMA.hxz WORKDIR FOLDER.hxz FOLDER_DIR
 * Not run under valgrind (it sets RLIMIT_AS); see test_hexz for that.
 */
#define _GNU_SOURCE
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char workdir[400];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", workdir, name); }

static void write_file(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

/* A small raw file and a fine-tune of it, stored as base and child. */
static size_t make_chain(char *base_hxz, char *child_hxz, unsigned char **child_data) {
    char base_src[512], child_src[512];
    path_in(base_src, sizeof base_src, "base.bin");
    path_in(child_src, sizeof child_src, "child.bin");
    path_in(base_hxz, 512, "base.hxz");
    path_in(child_hxz, 512, "child.hxz");
    size_t n = 400000;
    unsigned char *data = malloc(n);
    uint64_t x = 0x9E3779B97F4A7C15u; /* xorshift: incompressible, so blocks are stored raw */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    write_file(base_src, data, n);
    for (size_t i = 5000; i < 5200; i++) data[i] ^= 0x33;
    write_file(child_src, data, n);
    hexz_store_options opts = HEXZ_STORE_OPTIONS_INIT;
    opts.block_size = 65536;
    CHECK(hexz_store(base_src, base_hxz, &opts, NULL) == HEXZ_STATUS_OK);
    opts.base = base_hxz;
    CHECK(hexz_store(child_src, child_hxz, &opts, NULL) == HEXZ_STATUS_OK);
    *child_data = data;
    return n;
}

/* 1. Out of memory never aborts: 256 read slots under a 768 MiB limit, in a child process. */
static void check_out_of_memory(const char *gemma) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = {768u << 20, 768u << 20};
        setrlimit(RLIMIT_AS, &lim);
        hexz_archive *a = NULL;
        hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
        opts.read_slots = 256;
        opts.memory_budget = UINT64_MAX; /* no budget: the slots themselves must fail softly */
        hexz_status s = hexz_open_path(gemma, &opts, &a);
        if (s != HEXZ_STATUS_OK) _exit(s == HEXZ_STATUS_OUT_OF_MEMORY ? 0 : 10);
        size_t count = 0;
        hexz_tensor_count(a, &count);
        unsigned char *buf = malloc(1 << 20);
        int errors = 0;
        for (size_t i = 0; i < count; i++) {
            hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
            hexz_tensor_get_info(a, i, &t);
            if (t.length > (1 << 20)) continue;
            size_t got = 0;
            s = hexz_read_tensor(a, i, buf, 1 << 20, &got);
            if (s != HEXZ_STATUS_OK && s != HEXZ_STATUS_OUT_OF_MEMORY) errors++;
        }
        /* A memfd of the whole file cannot fit with the rest under the limit: a status, not an abort. */
        int fd = -1;
        s = hexz_memfd(a, &fd);
        if (s == HEXZ_STATUS_OK) close(fd);
        hexz_close(a);
        free(buf);
        _exit(errors ? 11 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) fprintf(stderr, "out-of-memory child died of signal %d\n", WTERMSIG(status));
}

/* 2. A metadata bomb: a GGUF whose one string value is 300 MiB of zeros. */
static void check_metadata_cap(void) {
    char gguf[512], hxz[512];
    path_in(gguf, sizeof gguf, "bomb.gguf");
    path_in(hxz, sizeof hxz, "bomb.hxz");
    FILE *f = fopen(gguf, "wb");
    uint32_t version = 3;
    uint64_t tensors = 0, kvs = 1, key_len = 1, value_len = 300u << 20;
    uint32_t type = 8; /* STRING */
    fwrite("GGUF", 1, 4, f);
    fwrite(&version, 4, 1, f);
    fwrite(&tensors, 8, 1, f);
    fwrite(&kvs, 8, 1, f);
    fwrite(&key_len, 8, 1, f);
    fwrite("k", 1, 1, f);
    fwrite(&type, 4, 1, f);
    fwrite(&value_len, 8, 1, f);
    long at = ftell(f);
    fclose(f);
    CHECK(truncate(gguf, at + (long)value_len) == 0); /* sparse zeros */
    hexz_store_options so = HEXZ_STORE_OPTIONS_INIT;
    CHECK(hexz_store(gguf, hxz, &so, NULL) == HEXZ_STATUS_OK);
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(hxz, NULL, &a) == HEXZ_STATUS_LIMIT_EXCEEDED);
    CHECK(a == NULL);
    CHECK(strstr(hexz_last_error(), "max_metadata_bytes") != NULL);
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.max_metadata_bytes = 1u << 20;
    CHECK(hexz_open_path(hxz, &opts, &a) == HEXZ_STATUS_LIMIT_EXCEEDED);
    opts.max_metadata_bytes = 512u << 20;
    CHECK(hexz_open_path(hxz, &opts, &a) == HEXZ_STATUS_OK);
    hexz_close(a);
    remove(gguf);
    remove(hxz);
}

/* 3. FIFOs are refused without blocking (alarm fails the test on a hang). */
static void check_fifo(void) {
    char fifo[512], out[512];
    path_in(fifo, sizeof fifo, "fifo");
    path_in(out, sizeof out, "fifo-out.hxz");
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(20);
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(fifo, NULL, &a) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hexz_last_error(), "not a regular file") != NULL);
    size_t problems = 0;
    CHECK(hexz_verify(fifo, true, &problems) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(hexz_store(fifo, out, NULL, NULL) == HEXZ_STATUS_INVALID_ARGUMENT);
    alarm(0);
    remove(fifo);
}

/* 4. A child opened from memory: with its parent attached it reads; without, it names what is missing. */
static void check_attached_parents(void) {
    char base_hxz[512], child_hxz[512];
    unsigned char *expected = NULL;
    size_t n = make_chain(base_hxz, child_hxz, &expected);
    size_t base_len = 0, child_len = 0;
    unsigned char *base = read_file(base_hxz, &base_len);
    unsigned char *child = read_file(child_hxz, &child_len);
    hexz_archive *parent = NULL, *a = NULL;
    CHECK(hexz_open_memory(base, base_len, NULL, &parent) == HEXZ_STATUS_OK);
    CHECK(hexz_open_memory(child, child_len, NULL, &a) == HEXZ_STATUS_PARENT_NOT_FOUND);
    const hexz_archive *parents[1] = {parent};
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.parents = parents;
    opts.parent_count = 1;
    CHECK(hexz_open_memory(child, child_len, &opts, &a) == HEXZ_STATUS_OK);
    if (a) {
        unsigned char *back = malloc(n);
        CHECK(hexz_read_range(a, 0, back, n) == HEXZ_STATUS_OK);
        CHECK(memcmp(back, expected, n) == 0);
        free(back);
        hexz_close(a);
    }
    /* The same through callbacks? The parent attached works for any source; a wrong one is refused. */
    hexz_archive *other = NULL;
    CHECK(hexz_open_memory(child, child_len, &opts, &other) == HEXZ_STATUS_OK);
    hexz_close(other);
    opts.parents = NULL;
    CHECK(hexz_open_memory(child, child_len, &opts, &a) == HEXZ_STATUS_NULL_ARGUMENT);
    hexz_close(parent);
    free(base);
    free(child);
    free(expected);
}

/* 5. Option structs: an older, smaller layout works; a newer one with unknown fields set is refused. */
struct old_open_options { /* what a caller built against the first extensible header sees */
    size_t struct_size;
    uint32_t read_slots;
    uint32_t skip_hash_check;
    const char *parent_dir;
};
struct newer_open_options {
    hexz_open_options known;
    uint64_t future_field;
};
static void check_option_layouts(const char *gemma) {
    hexz_archive *a = NULL;
    struct old_open_options old = {sizeof old, 2, 0, NULL};
    CHECK(hexz_open_path(gemma, (const hexz_open_options *)&old, &a) == HEXZ_STATUS_OK);
    hexz_close(a);
    struct newer_open_options newer;
    memset(&newer, 0, sizeof newer);
    newer.known.struct_size = sizeof newer;
    CHECK(hexz_open_path(gemma, &newer.known, &a) == HEXZ_STATUS_OK);
    hexz_close(a);
    newer.future_field = 1;
    CHECK(hexz_open_path(gemma, &newer.known, &a) == HEXZ_STATUS_INVALID_ARGUMENT);
    hexz_open_options zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    CHECK(hexz_open_path(gemma, &zeroed, &a) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hexz_last_error(), "_INIT") != NULL);
}

/* 5b. Output structs: an older, smaller layout gets the fields it has and
   nothing past them; a newer, larger one gets this library's fields, its
   own extra ones untouched, and struct_size says how much was filled; a
   struct_size that was never set is refused (nothing written, nothing stored). */
struct old_tensor_info { /* a prefix of hexz_tensor_info: what an older header had */
    size_t struct_size;
    const char *name;
    size_t name_len;
};
struct old_archive_info {
    size_t struct_size;
    uint32_t source_format;
    uint32_t has_parent;
    uint64_t original_size;
};
struct old_file_info {
    size_t struct_size;
    const char *path;
    size_t path_len;
};
struct old_store_report {
    size_t struct_size;
    uint64_t source_size;
    uint64_t archive_size;
};
#define GUARD_BYTES 64
static int untouched(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xCD) return 0;
    return 1;
}
static void check_output_layouts(const char *gemma, const char *folder) {
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(gemma, NULL, &a) == HEXZ_STATUS_OK);
    if (!a) return;
    size_t index = 0;
    CHECK(hexz_find_tensor(a, "token_embd.weight", &index) == HEXZ_STATUS_OK);
    hexz_tensor_info full = HEXZ_TENSOR_INFO_INIT;
    CHECK(hexz_tensor_get_info(a, index, &full) == HEXZ_STATUS_OK && full.struct_size == sizeof full);

    struct { struct old_tensor_info old; unsigned char guard[GUARD_BYTES]; } t;
    memset(&t, 0xCD, sizeof t);
    t.old.struct_size = sizeof t.old;
    CHECK(hexz_tensor_get_info(a, index, (hexz_tensor_info *)&t.old) == HEXZ_STATUS_OK);
    CHECK(t.old.struct_size == sizeof t.old && t.old.name == full.name && t.old.name_len == full.name_len);
    CHECK(untouched(t.guard, sizeof t.guard));

    struct { hexz_tensor_info known; uint64_t future; } newer;
    memset(&newer, 0, sizeof newer);
    newer.known.struct_size = sizeof newer;
    newer.future = 0x1234;
    CHECK(hexz_tensor_get_info(a, index, &newer.known) == HEXZ_STATUS_OK);
    CHECK(newer.known.struct_size == sizeof(hexz_tensor_info) && newer.future == 0x1234);
    CHECK(newer.known.length == full.length && newer.known.storage_kind == full.storage_kind);

    hexz_tensor_info unset;
    memset(&unset, 0, sizeof unset);
    CHECK(hexz_tensor_get_info(a, index, &unset) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hexz_last_error(), "HEXZ_TENSOR_INFO") != NULL || strstr(hexz_last_error(), "_INIT") != NULL);
    CHECK(unset.name == NULL && unset.length == 0);

    struct { struct old_archive_info old; unsigned char guard[GUARD_BYTES]; } ai;
    memset(&ai, 0xCD, sizeof ai);
    ai.old.struct_size = sizeof ai.old;
    hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
    CHECK(hexz_archive_get_info(a, &info) == HEXZ_STATUS_OK);
    CHECK(hexz_archive_get_info(a, (hexz_archive_info *)&ai.old) == HEXZ_STATUS_OK);
    CHECK(ai.old.struct_size == sizeof ai.old && ai.old.original_size == info.original_size);
    CHECK(ai.old.source_format == HEXZ_SOURCE_GGUF && untouched(ai.guard, sizeof ai.guard));
    hexz_close(a);

    CHECK(hexz_open_path(folder, NULL, &a) == HEXZ_STATUS_OK);
    if (a) {
        hexz_file_info file = HEXZ_FILE_INFO_INIT;
        CHECK(hexz_file_get_info(a, 0, &file) == HEXZ_STATUS_OK);
        struct { struct old_file_info old; unsigned char guard[GUARD_BYTES]; } fi;
        memset(&fi, 0xCD, sizeof fi);
        fi.old.struct_size = sizeof fi.old;
        CHECK(hexz_file_get_info(a, 0, (hexz_file_info *)&fi.old) == HEXZ_STATUS_OK);
        CHECK(fi.old.path == file.path && fi.old.path_len == file.path_len && untouched(fi.guard, sizeof fi.guard));
        hexz_close(a);
    }

    char src[512], dst[512];
    path_in(src, sizeof src, "layout.bin");
    path_in(dst, sizeof dst, "layout.hxz");
    unsigned char raw[70000];
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i * 7);
    write_file(src, raw, sizeof raw);
    hexz_store_report bad_report;
    memset(&bad_report, 0, sizeof bad_report);
    CHECK(hexz_store(src, dst, NULL, &bad_report) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(access(dst, F_OK) != 0);
    struct { struct old_store_report old; unsigned char guard[GUARD_BYTES]; } sr;
    memset(&sr, 0xCD, sizeof sr);
    sr.old.struct_size = sizeof sr.old;
    CHECK(hexz_store(src, dst, NULL, (hexz_store_report *)&sr.old) == HEXZ_STATUS_OK);
    struct stat st;
    CHECK(stat(dst, &st) == 0 && sr.old.archive_size == (uint64_t)st.st_size);
    CHECK(sr.old.struct_size == sizeof sr.old && sr.old.source_size == sizeof raw && untouched(sr.guard, sizeof sr.guard));
}

/* 6. memfd: close-on-exec, offset 0, sealed against writes and resizing. */
static void check_memfd(const char *gemma) {
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(gemma, NULL, &a) == HEXZ_STATUS_OK);
    int fd = -1;
    CHECK(hexz_memfd(a, &fd) == HEXZ_STATUS_OK);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        CHECK(lseek(fd, 0, SEEK_CUR) == 0);
        int seals = fcntl(fd, F_GET_SEALS);
        CHECK(seals >= 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_GROW) && (seals & F_SEAL_SHRINK) &&
              (seals & F_SEAL_SEAL));
        CHECK(write(fd, "x", 1) == -1 && errno == EPERM);
        CHECK(ftruncate(fd, 10) == -1);
        hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
        hexz_archive_get_info(a, &info);
        struct stat st;
        CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == info.original_size);
        close(fd);
    }
    hexz_close(a);
}

/* 6b. memfd of a file with a long run of zeros: the exact bytes, and the
   zeros left as a hole (the memfd holds pages only for the data). */
static void check_memfd_holes(void) {
    char src[512], hxz[512];
    path_in(src, sizeof src, "zeros.bin");
    path_in(hxz, sizeof hxz, "zeros.hxz");
    size_t n = 24u << 20; /* 1 MiB of data, 22 MiB of zeros, 1 MiB of data */
    unsigned char *data = calloc(n, 1);
    uint64_t x = 0x2545F4914F6CDD1Du;
    for (size_t i = 0; i < n; i++) {
        if (i == (1u << 20)) i = n - (1u << 20);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    write_file(src, data, n);
    CHECK(hexz_store(src, hxz, NULL, NULL) == HEXZ_STATUS_OK);
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(hxz, NULL, &a) == HEXZ_STATUS_OK);
    int fd = -1;
    CHECK(a != NULL && hexz_memfd(a, &fd) == HEXZ_STATUS_OK);
    if (fd >= 0) {
        struct stat st;
        CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == n);
        /* Pages for the 2 MiB of data (and a block edge or two), not for the zeros. */
        CHECK((uint64_t)st.st_blocks * 512 < (8u << 20));
        unsigned char *back = malloc(n);
        size_t done = 0;
        while (done < n) {
            ssize_t r = pread(fd, back + done, n - done, (off_t)done);
            if (r <= 0) break;
            done += (size_t)r;
        }
        CHECK(done == n && memcmp(back, data, n) == 0);
        free(back);
        close(fd);
    }
    hexz_close(a);
    free(data);
}

/* 7, 8, 10. A failed read zeroes what it covered; empty views are NULL; ranges past the end fail. */
static void check_outputs(const char *gemma) {
    size_t len = 0;
    unsigned char *hxz = read_file(gemma, &len);
    unsigned char *bad = malloc(len);
    memcpy(bad, hxz, len);
    /* The middle of the data region: token_embd's blocks, after the GGUF header's. */
    for (size_t at = len * 3 / 10; at < len * 8 / 10; at += 100000) bad[at] ^= 0x5a;
    hexz_archive *a = NULL;
    CHECK(hexz_open_memory(bad, len, NULL, &a) == HEXZ_STATUS_OK);
    if (a) {
        size_t index = 0;
        CHECK(hexz_find_tensor(a, "token_embd.weight", &index) == HEXZ_STATUS_OK);
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        hexz_tensor_get_info(a, index, &t);
        unsigned char *buf = malloc(t.length);
        memset(buf, 0xAA, t.length);
        size_t got = 0;
        hexz_status s = hexz_read_tensor(a, index, buf, t.length, &got);
        CHECK(s == HEXZ_STATUS_HASH_MISMATCH || s == HEXZ_STATUS_DECODE);
        size_t leftover = 0;
        for (size_t i = 0; i < t.length; i++) leftover += buf[i] != 0;
        CHECK(leftover == 0);
        free(buf);
        uint8_t small[8];
        CHECK(hexz_read_range(a, UINT64_MAX, NULL, 0) == HEXZ_STATUS_OUT_OF_RANGE);
        CHECK(hexz_read_range(a, t.offset, small, 0) == HEXZ_STATUS_OK);
        hexz_close(a);
    }
    free(bad);
    free(hxz);
    /* A raw archive has no source header: NULL and 0. */
    char src[512], dst[512];
    path_in(src, sizeof src, "raw.bin");
    path_in(dst, sizeof dst, "raw.hxz");
    unsigned char raw[5000];
    memset(raw, 3, sizeof raw);
    write_file(src, raw, sizeof raw);
    CHECK(hexz_store(src, dst, NULL, NULL) == HEXZ_STATUS_OK);
    CHECK(hexz_open_path(dst, NULL, &a) == HEXZ_STATUS_OK);
    const uint8_t *view = (const uint8_t *)1;
    size_t view_len = 99;
    CHECK(hexz_source_header(a, &view, &view_len) == HEXZ_STATUS_OK);
    CHECK(view == NULL && view_len == 0);
    hexz_close(a);
}

/* 9. The read callback is never asked for zero bytes. */
struct cb_file {
    const unsigned char *data;
    size_t len;
    int zero_length_calls;
};
static int read_cb(void *user, uint64_t offset, uint8_t *buf, size_t len) {
    struct cb_file *f = user;
    if (len == 0) __atomic_add_fetch(&f->zero_length_calls, 1, __ATOMIC_RELAXED);
    if (offset > f->len || len > f->len - offset) return -1;
    memcpy(buf, f->data + offset, len);
    return 0;
}
static void check_callback_contract(const char *gemma) {
    size_t len = 0;
    unsigned char *hxz = read_file(gemma, &len);
    struct cb_file f = {hxz, len, 0};
    hexz_archive *a = NULL;
    CHECK(hexz_open_callbacks(read_cb, len, &f, NULL, &a) == HEXZ_STATUS_OK);
    size_t count = 0;
    hexz_tensor_count(a, &count);
    unsigned char *buf = malloc(200u << 20);
    for (size_t i = 0; i < count; i++) {
        size_t got = 0;
        CHECK(hexz_read_tensor(a, i, buf, 200u << 20, &got) == HEXZ_STATUS_OK);
    }
    uint8_t none[1];
    hexz_read_range(a, 0, none, 0);
    CHECK(f.zero_length_calls == 0);
    /* A callback that fails gives IO and names no wrong file. */
    f.len = 0;
    size_t got = 0;
    size_t index = 0;
    hexz_find_tensor(a, "token_embd.weight", &index);
    CHECK(hexz_read_tensor(a, index, buf, 200u << 20, &got) == HEXZ_STATUS_IO);
    hexz_close(a);
    free(buf);
    free(hxz);
}

/* 11. Absurd options: a status, no panic, nothing printed on the host's stderr. */
static void check_quiet_validation(void) {
    char src[512], dst[512], err_path[512];
    path_in(src, sizeof src, "raw.bin");
    path_in(dst, sizeof dst, "threads.hxz");
    path_in(err_path, sizeof err_path, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    int err_fd = open(err_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(err_fd, 2);
    hexz_store_options opts = HEXZ_STORE_OPTIONS_INIT;
    opts.threads = 100000;
    hexz_status s1 = hexz_store(src, dst, &opts, NULL);
    opts.threads = 0;
    opts.block_size = 7;
    hexz_status s2 = hexz_store(src, dst, &opts, NULL);
    opts.block_size = 0;
    opts.compression = HEXZ_COMPRESSION_LZ4;
    opts.level = 9;
    hexz_status s3 = hexz_store(src, dst, &opts, NULL);
    hexz_open_options oo = HEXZ_OPEN_OPTIONS_INIT;
    oo.read_slots = 100000;
    hexz_archive *a = NULL;
    hexz_status s4 = hexz_open_path(src, &oo, &a);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(err_fd);
    CHECK(s1 == HEXZ_STATUS_INVALID_ARGUMENT && s2 == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(s3 == HEXZ_STATUS_INVALID_ARGUMENT && s4 == HEXZ_STATUS_INVALID_ARGUMENT);
    struct stat st;
    CHECK(stat(err_path, &st) == 0 && st.st_size == 0);
    CHECK(access(dst, F_OK) != 0);
}

/* 8 (errors). Errors name the file at fault. */
static void check_error_names(void) {
    char src[512], dst[512], base_hxz[512], child_hxz[512];
    path_in(src, sizeof src, "raw.bin");
    path_in(dst, sizeof dst, "no/such/dir/x.hxz");
    CHECK(hexz_store(src, dst, NULL, NULL) == HEXZ_STATUS_IO);
    CHECK(strstr(hexz_last_error(), "no/such/dir/x.hxz") != NULL && strstr(hexz_last_error(), "raw.bin") == NULL);
    hexz_store_options opts = HEXZ_STORE_OPTIONS_INIT;
    char missing_base[512];
    path_in(missing_base, sizeof missing_base, "missing-base.hxz");
    opts.base = missing_base;
    path_in(dst, sizeof dst, "y.hxz");
    CHECK(hexz_store(src, dst, &opts, NULL) == HEXZ_STATUS_IO);
    CHECK(strstr(hexz_last_error(), "missing-base.hxz") != NULL);
    size_t problems = 0;
    CHECK(hexz_verify("/nonexistent/z.hxz", true, &problems) == HEXZ_STATUS_IO);
    /* A corrupt parent at its recorded path reports its own error, naming it. */
    unsigned char *expected = NULL;
    make_chain(base_hxz, child_hxz, &expected);
    free(expected);
    size_t len = 0;
    unsigned char *b = read_file(base_hxz, &len);
    b[len - 30] ^= 1; /* inside the footer */
    write_file(base_hxz, b, len);
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(child_hxz, NULL, &a) == HEXZ_STATUS_CHECKSUM);
    CHECK(strstr(hexz_last_error(), "base.hxz") != NULL);
    /* A block of the parent corrupted: the read error names the parent. */
    b[len - 30] ^= 1;
    b[64 + 65536 + 100] ^= 0x77; /* block 1, stored raw; the child refers to it */
    write_file(base_hxz, b, len);
    CHECK(hexz_open_path(child_hxz, NULL, &a) == HEXZ_STATUS_OK);
    if (a) {
        unsigned char *back = malloc(400000);
        hexz_status s = hexz_read_range(a, 0, back, 400000);
        CHECK(s == HEXZ_STATUS_HASH_MISMATCH || s == HEXZ_STATUS_DECODE);
        CHECK(strstr(hexz_last_error(), "base.hxz") != NULL);
        free(back);
        hexz_close(a);
    }
    free(b);
}

/* Folder archives: list files, read one by path, find a tensor across shards. */
static void check_folder(const char *archive, const char *dir) {
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(archive, NULL, &a) == HEXZ_STATUS_OK);
    if (!a) return;
    hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
    hexz_archive_get_info(a, &info);
    CHECK(info.source_format == HEXZ_SOURCE_FOLDER);
    size_t count = 0, index = 0;
    CHECK(hexz_file_count(a, &count) == HEXZ_STATUS_OK && count >= 10);
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_file_info f = HEXZ_FILE_INFO_INIT;
        CHECK(hexz_file_get_info(a, i, &f) == HEXZ_STATUS_OK);
        if (f.kind == HEXZ_FILE_REGULAR) total += f.length;
        if (i > 0) {
            hexz_file_info prev = HEXZ_FILE_INFO_INIT;
            hexz_file_get_info(a, i - 1, &prev);
            CHECK(strcmp(prev.path, f.path) < 0);
        }
    }
    CHECK(total == info.original_size);
    CHECK(hexz_find_file(a, "config.json", &index) == HEXZ_STATUS_OK);
    hexz_file_info f = HEXZ_FILE_INFO_INIT;
    hexz_file_get_info(a, index, &f);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len = 0;
    unsigned char *want = read_file(path, &len);
    CHECK(want != NULL && len == f.length);
    unsigned char *got = malloc(len);
    CHECK(hexz_read_file_range(a, index, 0, got, len) == HEXZ_STATUS_OK);
    CHECK(want && memcmp(got, want, len) == 0);
    CHECK(hexz_read_file_range(a, index, 1, got, len) == HEXZ_STATUS_OUT_OF_RANGE);
    CHECK(hexz_find_file(a, "no/such/file", &index) == HEXZ_STATUS_NOT_FOUND);
    free(got);
    free(want);
    /* A tensor by name, whichever shard holds it: its bytes are that shard's bytes. */
    CHECK(hexz_find_tensor(a, "pooler.dense.weight", &index) == HEXZ_STATUS_OK);
    hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
    hexz_tensor_get_info(a, index, &t);
    for (size_t i = 0; i < count; i++) {
        hexz_file_get_info(a, i, &f);
        if (f.kind != HEXZ_FILE_REGULAR || t.offset < f.offset || t.offset + t.length > f.offset + f.length) continue;
        CHECK(f.source_format == HEXZ_SOURCE_SAFETENSORS);
        snprintf(path, sizeof path, "%s/%s", dir, f.path);
        unsigned char *shard = read_file(path, &len);
        unsigned char *tensor = malloc(t.length);
        size_t n = 0;
        CHECK(hexz_read_tensor(a, index, tensor, t.length, &n) == HEXZ_STATUS_OK);
        CHECK(shard && memcmp(tensor, shard + (t.offset - f.offset), t.length) == 0);
        free(shard);
        free(tensor);
    }
    hexz_close(a);
}

/* Issue #32: checkpoint-500/ and checkpoint-1000/ hold the same tensor
   names. hexz_find_tensor refuses the shared name (INVALID_ARGUMENT, the
   message naming both files); hexz_tensor_find_in_file finds each file's. */
static void check_runs(const char *archive, const char *dir) {
    const char *name = "encoder.layer.4.attention.self.query.weight";
    hexz_archive *a = NULL;
    CHECK(hexz_open_path(archive, NULL, &a) == HEXZ_STATUS_OK);
    if (!a) return;
    size_t index = 99, first = 0, last = 0;
    CHECK(hexz_find_tensor(a, name, &index) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hexz_last_error(), "checkpoint-500/model.safetensors") != NULL);
    CHECK(strstr(hexz_last_error(), "checkpoint-1000/model.safetensors") != NULL);
    CHECK(hexz_tensor_find_in_file(a, NULL, name, &index) == HEXZ_STATUS_INVALID_ARGUMENT);
    CHECK(hexz_tensor_find_in_file(a, "checkpoint-500/model.safetensors", name, &first) == HEXZ_STATUS_OK);
    CHECK(hexz_tensor_find_in_file(a, "checkpoint-1000/model.safetensors", name, &last) == HEXZ_STATUS_OK);
    CHECK(first != last);
    CHECK(hexz_tensor_find_in_file(a, "checkpoint-500/model.safetensors", "no.such", &index) == HEXZ_STATUS_NOT_FOUND);
    CHECK(hexz_tensor_find_in_file(a, "checkpoint-9/model.safetensors", name, &index) == HEXZ_STATUS_NOT_FOUND);
    CHECK(hexz_tensor_find_in_file(a, "checkpoint-500/model.safetensors", NULL, &index) == HEXZ_STATUS_NULL_ARGUMENT);
    CHECK(hexz_tensor_find_in_file(NULL, NULL, name, &index) == HEXZ_STATUS_NULL_ARGUMENT);
    /* Each index reads its own file's bytes. */
    const char *files[2] = {"checkpoint-500/model.safetensors", "checkpoint-1000/model.safetensors"};
    size_t found[2] = {first, last};
    for (int k = 0; k < 2; k++) {
        size_t fi = 0;
        CHECK(hexz_find_file(a, files[k], &fi) == HEXZ_STATUS_OK);
        hexz_file_info f = HEXZ_FILE_INFO_INIT;
        hexz_tensor_info t = HEXZ_TENSOR_INFO_INIT;
        CHECK(hexz_file_get_info(a, fi, &f) == HEXZ_STATUS_OK);
        CHECK(hexz_tensor_get_info(a, found[k], &t) == HEXZ_STATUS_OK);
        CHECK(t.offset >= f.offset && t.offset + t.length <= f.offset + f.length);
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        size_t len = 0;
        unsigned char *shard = read_file(path, &len);
        unsigned char *tensor = malloc(t.length);
        size_t n = 0;
        CHECK(hexz_read_tensor(a, found[k], tensor, t.length, &n) == HEXZ_STATUS_OK && n == t.length);
        CHECK(shard && memcmp(tensor, shard + (t.offset - f.offset), t.length) == 0);
        free(shard);
        free(tensor);
    }
    hexz_close(a);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s GEMMA.hxz WORKDIR FOLDER.hxz FOLDER_DIR RUNS.hxz RUNS_DIR\n", argv[0]);
        return 2;
    }
    snprintf(workdir, sizeof workdir, "%s", argv[2]);
    check_option_layouts(argv[1]);
    check_output_layouts(argv[1], argv[3]);
    check_memfd(argv[1]);
    check_memfd_holes();
    check_outputs(argv[1]);
    check_callback_contract(argv[1]);
    check_fifo();
    check_attached_parents();
    check_quiet_validation();
    check_error_names();
    check_metadata_cap();
    check_folder(argv[3], argv[4]);
    check_runs(argv[5], argv[6]);
    check_out_of_memory(argv[1]);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_faults: all checks passed\n");
    return 0;
}
