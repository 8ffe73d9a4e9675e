// The header compiles as C++17 and its declarations link.
#include <hexz.h>

#include <cstdio>
#include <string>

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
    // The output structs' initializers, and the FILE * entry points.
    hexz_archive_info info = HEXZ_ARCHIVE_INFO_INIT;
    hexz_tensor_info tensor = HEXZ_TENSOR_INFO_INIT;
    hexz_file_info file = HEXZ_FILE_INFO_INIT;
    hexz_store_report report = HEXZ_STORE_REPORT_INIT;
    if (info.struct_size != sizeof info || tensor.struct_size != sizeof tensor || file.struct_size != sizeof file ||
        report.struct_size != sizeof report || tensor.name != nullptr)
        return 1;
    FILE *stream = nullptr;
    if (hexz_fopen(nullptr, &stream) != HEXZ_STATUS_NULL_ARGUMENT || stream) return 1;
    if (std::string(hexz_version_string()) != HEXZ_VERSION_STRING) return 1;
    std::printf("header_cpp: version %s, open of a missing file: %s\n", hexz_version_string(), hexz_status_str(s));
    hexz_close(archive);
    return s == HEXZ_STATUS_IO && hexz_version() == HEXZ_VERSION_NUMBER ? 0 : 1;
}
