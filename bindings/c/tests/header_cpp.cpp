// The header compiles as C++17 and its declarations link.
#include <hexz.h>

#include <cstdio>

int main() {
    static_assert(sizeof(hexz_status) == 4, "hexz_status is 32 bits");
    hexz_archive *archive = nullptr;
    hexz_open_options opts = HEXZ_OPEN_OPTIONS_INIT;
    hexz_store_options store = HEXZ_STORE_OPTIONS_INIT;
    hexz_url_options url = HEXZ_URL_OPTIONS_INIT;
    url.open = &opts;
    hexz_archive *remote = nullptr;
    // A URL scheme no build reads: UNSUPPORTED, and nothing written.
    if (hexz_open_url("ftp://example.invalid/m.hxz", &url, &remote) != HEXZ_STATUS_UNSUPPORTED || remote) return 1;
    static_assert(sizeof(opts.struct_size) == sizeof(size_t), "struct_size leads");
    hexz_status s = hexz_open_path("/nonexistent.hxz", &opts, &archive);
    if (store.struct_size != sizeof store || url.struct_size != sizeof url || opts.read_slots != 0) return 1;
    std::printf("header_cpp: version %s, open of a missing file: %s\n", hexz_version_string(), hexz_status_str(s));
    hexz_close(archive);
    return s == HEXZ_STATUS_IO && hexz_version() == HEXZ_VERSION_NUMBER ? 0 : 1;
}
