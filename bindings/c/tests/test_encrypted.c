/*
 * Encrypted archives (libhexz 1.3, format 1.5) through the C ABI.
 *
 * test_encrypted ENC.hxz SOURCE.safetensors IDENTITY OTHER_IDENTITY PASSPHRASE
 *
 * ENC.hxz is SOURCE stored with PASSPHRASE and IDENTITY's recipient.
 * Opened with the passphrase (its bytes, no NUL) and with the identity
 * file, every tensor and the whole virtual space equal the source file's
 * bytes; no key gives HEXZ_STATUS_KEY_REQUIRED, a wrong passphrase or
 * OTHER_IDENTITY HEXZ_STATUS_WRONG_KEY (category KEY); a recipient file
 * given as identity, a NULL identity array, an overlong passphrase are
 * INVALID_ARGUMENT or NULL_ARGUMENT; a copy with one flipped ciphertext
 * byte in a tensor block reads as HEXZ_STATUS_DECRYPT (category CORRUPT).
 */
#include "check.h"

#include <string.h>

/* Every tensor and [0, size) equal the source's bytes at the same offsets. */
static void check_contents(hexz_archive *a, const unsigned char *src, size_t src_len) {
    size_t count = 0;
    CHECK(hexz_tensor_count(a, &count) == HEXZ_STATUS_OK);
    CHECK(count > 50);
    size_t checked = 0;
    for (size_t i = 0; i < count; i++) {
        hexz_tensor_info info = HEXZ_TENSOR_INFO_INIT;
        if (hexz_tensor_get_info(a, i, &info) != HEXZ_STATUS_OK) { CHECK(0); continue; }
        CHECK(info.offset + info.length <= src_len);
        unsigned char *buf = malloc(info.length ? (size_t)info.length : 1);
        size_t got = 0;
        CHECK(hexz_read_tensor(a, i, buf, (size_t)info.length, &got) == HEXZ_STATUS_OK);
        CHECK(got == info.length);
        if (info.offset + info.length <= src_len && memcmp(buf, src + info.offset, (size_t)info.length) == 0)
            checked++;
        free(buf);
    }
    CHECK(checked == count);
    unsigned char *all = malloc(src_len);
    CHECK(hexz_read_range(a, 0, all, src_len) == HEXZ_STATUS_OK);
    CHECK(memcmp(all, src, src_len) == 0);
    free(all);
}

static hexz_status open_with(const char *path, const char *const *ids, size_t n_ids, const char *pass,
                             size_t pass_len, hexz_archive **out) {
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    opts.identity_files = ids;
    opts.identity_file_count = n_ids;
    opts.passphrase = (const uint8_t *)pass;
    opts.passphrase_len = pass_len;
    return hexz_open_path(path, &opts, out);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: test_encrypted ENC.hxz SOURCE IDENTITY OTHER_IDENTITY PASSPHRASE\n");
        return 2;
    }
    const char *enc = argv[1], *identity = argv[3], *other = argv[4], *pass = argv[5];
    size_t src_len = 0;
    unsigned char *src = read_file(argv[2], &src_len);
    CHECK(src != NULL);
    if (!src) return 1;
    CHECK(hexz_version() >= ((1u << 16) | (3u << 8)));

    /* The passphrase: its bytes, without a NUL; the caller's buffer is not kept. */
    hexz_archive *a = NULL;
    char *copy = malloc(strlen(pass));
    memcpy(copy, pass, strlen(pass));
    CHECK(open_with(enc, NULL, 0, copy, strlen(pass), &a) == HEXZ_STATUS_OK);
    memset(copy, 0, strlen(pass));
    free(copy);
    if (a) {
        check_contents(a, src, src_len);
        hexz_close(a);
        a = NULL;
    }

    /* An identity file; with another identity before it. */
    const char *ids[2] = {other, identity};
    CHECK(open_with(enc, ids + 1, 1, NULL, 0, &a) == HEXZ_STATUS_OK);
    if (a) {
        check_contents(a, src, src_len);
        hexz_close(a);
        a = NULL;
    }
    CHECK(open_with(enc, ids, 2, "wrong", 5, &a) == HEXZ_STATUS_OK);
    hexz_close(a);
    a = NULL;

    /* No key; wrong keys. *out is not written on failure. */
    hexz_archive *untouched = (hexz_archive *)&a;
    a = untouched;
    hexz_status s = hexz_open_path(enc, NULL, &a);
    CHECK(s == HEXZ_STATUS_KEY_REQUIRED);
    CHECK(hexz_status_category(s) == HEXZ_CATEGORY_KEY);
    CHECK(strlen(hexz_last_error()) > 0);
    CHECK(a == untouched);
    s = open_with(enc, NULL, 0, "not the passphrase", 18, &a);
    CHECK(s == HEXZ_STATUS_WRONG_KEY);
    CHECK(hexz_status_category(s) == HEXZ_CATEGORY_KEY);
    CHECK(open_with(enc, ids, 1, NULL, 0, &a) == HEXZ_STATUS_WRONG_KEY);
    CHECK(a == untouched);
    CHECK(strcmp(hexz_status_str(HEXZ_STATUS_DECRYPT), "unknown status") != 0);
    CHECK(hexz_status_category(HEXZ_STATUS_DECRYPT) == HEXZ_CATEGORY_CORRUPT);

    /* Bad key arguments. */
    CHECK(open_with(enc, NULL, 1, NULL, 0, &a) == HEXZ_STATUS_NULL_ARGUMENT);
    CHECK(open_with(enc, NULL, 0, NULL, 4, &a) == HEXZ_STATUS_NULL_ARGUMENT);
    const char *missing[1] = {"/nonexistent/identity.txt"};
    CHECK(open_with(enc, missing, 1, NULL, 0, &a) == HEXZ_STATUS_IO);
    const char *src_as_identity[1] = {argv[2]};
    s = open_with(enc, src_as_identity, 1, NULL, 0, &a);
    CHECK(s == HEXZ_STATUS_INVALID_ARGUMENT || s == HEXZ_STATUS_IO);
    char *huge = calloc(65537, 1);
    CHECK(open_with(enc, NULL, 0, huge, 65537, &a) == HEXZ_STATUS_INVALID_ARGUMENT);
    free(huge);
    CHECK(a == untouched);

    /* One flipped byte in the middle of the file (inside a tensor's stored
       block): the tag no longer matches, with hash checks on or off. */
    size_t enc_len = 0;
    unsigned char *bytes = read_file(enc, &enc_len);
    CHECK(bytes != NULL && enc_len > 1024);
    if (bytes) {
        bytes[enc_len / 2] ^= 0x10;
        for (int skip = 0; skip < 2; skip++) {
            hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
            opts.passphrase = (const uint8_t *)pass;
            opts.passphrase_len = strlen(pass);
            opts.skip_hash_check = (uint32_t)skip;
            hexz_archive *m = NULL;
            CHECK(hexz_open_memory(bytes, enc_len, &opts, &m) == HEXZ_STATUS_OK);
            if (!m) continue;
            unsigned char *all = malloc(src_len);
            s = hexz_read_range(m, 0, all, src_len);
            CHECK(s == HEXZ_STATUS_DECRYPT);
            CHECK(hexz_status_category(s) == HEXZ_CATEGORY_CORRUPT);
            free(all);
            hexz_close(m);
        }
        free(bytes);
    }
    free(src);
    if (failures) {
        fprintf(stderr, "test_encrypted: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_encrypted: passphrase and identity opens read every tensor equal to the source; "
           "KEY_REQUIRED, WRONG_KEY, DECRYPT as expected\n");
    return 0;
}
