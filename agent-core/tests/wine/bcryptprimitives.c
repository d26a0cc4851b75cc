/*
 * Test-only stand-in for bcryptprimitives.dll under Wine 8.
 *
 * Rust's standard library (1.78+) gets its randomness on Windows from
 * ProcessPrng in bcryptprimitives.dll, which every Windows 10/11 ships.
 * Wine 8.0 (Debian 12) has no such DLL, so a Rust program cannot even start
 * there. This shim exports ProcessPrng and forwards to SystemFunction036
 * (RtlGenRandom) from advapi32, which Wine implements.
 *
 * Built by the Wine tests with
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 * and copied beside botmox-agent.exe in the test's temp dir only. It is
 * never shipped: the installer and release builds do not contain it.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
