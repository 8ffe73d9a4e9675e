/* ProcessPrng for wine 8 (Debian 12), which lacks bcryptprimitives.dll:
   Rust's std for Windows imports it for random numbers. Built and placed in
   the wine prefix by scripts/cross-test.sh; RtlGenRandom does the work. */
#include <windows.h>
#include <ntsecapi.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
