// The header compiles as C++17 and its declarations link.
#include <hexz.h>

#include <cstdio>

int main() {
    static_assert(sizeof(hexz_status) == 4, "hexz_status is 32 bits");
    hexz_archive *archive = nullptr;
    hexz_status s = hexz_open_path("/nonexistent.hxz", nullptr, &archive);
    std::printf("header_cpp: version %s, open of a missing file: %s\n", hexz_version_string(), hexz_status_str(s));
    hexz_close(archive);
    return s == HEXZ_STATUS_IO && hexz_version() == HEXZ_VERSION_NUMBER ? 0 : 1;
}
