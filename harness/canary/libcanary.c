/* The canary library. Two versions whose code really differs, plus padding
 * in mapped read-only data so the library can be made as large as a real
 * one. Built by the harness with: -DCANARY_VERSION=N -DCANARY_PAD="file". */
#include <stdint.h>

#define CANARY_STR2(x) #x
#define CANARY_STR(x) CANARY_STR2(x)

__asm__(".section .rodata.canary_pad,\"a\"\n"
        ".balign 64\n"
        ".globl canary_pad\n"
        "canary_pad:\n"
        ".incbin \"" CANARY_PAD "\"\n"
        ".globl canary_pad_end\n"
        "canary_pad_end:\n"
        ".previous\n");

extern const unsigned char canary_pad[];
extern const unsigned char canary_pad_end[];

#if CANARY_VERSION == 1
int canary_version(void) { return 1; }
#else
/* Version 2 computes its answer, so its code bytes differ from version 1's. */
static volatile int canary_seed = 7;
int canary_version(void) { return (canary_seed * 6 + 2) / 22; }
#endif

/* Touches the padding so a mapping that changed under the process is read. */
uint64_t canary_pad_sum(void) {
    uint64_t sum = 0;
    const uint64_t *p = (const uint64_t *)canary_pad;
    const uint64_t *end = (const uint64_t *)canary_pad_end;
    while (p < end) sum = (sum << 1 | sum >> 63) ^ *p++;
    return sum;
}
