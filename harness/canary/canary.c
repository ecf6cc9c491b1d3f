/* The canary executable: a live process that maps the old target.
 *
 *   canary            loop: call into libcanary, checksum every file-backed
 *                     mapping of the canary executable and library, and
 *                     write "alive EXE LIB SUM WAKES" to fd $CANARY_FD
 *                     (default 1) every 20 ms, until killed. SIGUSR1 asks
 *                     for a beat at once; WAKES counts the SIGUSR1s received
 *                     before the beat's checksum began, so the harness knows
 *                     which beat saw the files after its request.
 *   canary --once     print "version EXE LIB" and exit (the exec probe).
 *   canary --load P   dlopen P, print "version 0 LIB" and exit (the load probe).
 *
 * Built with -DCANARY_VERSION=N and padding like the library. Built with
 * -DCANARY_SET=1, it is one of a set of files that must change together:
 * with a library of another version it refuses to run (exit 4), as a
 * program does whose library changed its ABI; --once still prints both. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CANARY_STR2(x) #x
#define CANARY_STR(x) CANARY_STR2(x)

__asm__(".section .rodata.canary_pad,\"a\"\n"
        ".balign 64\n"
        ".globl canary_exe_pad\n"
        "canary_exe_pad:\n"
        ".incbin \"" CANARY_PAD "\"\n"
        ".previous\n");

extern int canary_version(void);

struct range { uintptr_t start, end; };

/* SIGUSR1 is blocked but during the pause (ppoll), so it is counted only
 * between two beats: a beat reports every wake-up that came before it. */
static volatile sig_atomic_t wakes;
static void wake(int signal) { (void)signal; wakes++; }

/* The address ranges of file-backed mappings of files named *canary*. */
static int canary_mappings(struct range *out, int max) {
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int n = 0;
    if (!maps) return 0;
    while (n < max && fgets(line, sizeof line, maps)) {
        uintptr_t start, end;
        char perms[8], path[4000] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %3999[^\n]", &start, &end, perms, path) < 3)
            continue;
        /* Read-only mappings only: data pages change as the program runs. */
        if (perms[0] != 'r' || perms[1] == 'w' || !strstr(path, "canary")) continue;
        out[n].start = start;
        out[n].end = end;
        n++;
    }
    fclose(maps);
    return n;
}

static uint64_t checksum(const struct range *ranges, int n) {
    uint64_t sum = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        const uint64_t *p = (const uint64_t *)ranges[i].start;
        const uint64_t *end = (const uint64_t *)ranges[i].end;
        /* Reading a page whose file was truncated raises SIGBUS: that is a finding. */
        while (p < end) sum = (sum ^ *p++) * 1099511628211ULL;
    }
    return sum;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--load") == 0) {
        void *lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 3; }
        int (*version)(void) = (int (*)(void))dlsym(lib, "canary_version");
        if (!version) { fprintf(stderr, "no canary_version\n"); return 3; }
        printf("version 0 %d\n", version());
        return 0;
    }
    int mixed = 0;
#if CANARY_SET
    mixed = canary_version() != CANARY_VERSION;
    if (mixed) fprintf(stderr, "mixed versions: canary v%d, libcanary v%d\n", CANARY_VERSION, canary_version());
#endif
    if (argc == 2 && strcmp(argv[1], "--once") == 0) {
        printf("version %d %d\n", CANARY_VERSION, canary_version());
        return mixed ? 4 : 0;
    }
    if (mixed) return 4;
    const char *fd_text = getenv("CANARY_FD");
    int fd = fd_text ? atoi(fd_text) : 1;
    struct range ranges[64];
    int n = canary_mappings(ranges, 64);
    struct timespec pause = {0, 20 * 1000 * 1000};
    struct sigaction on_wake;
    memset(&on_wake, 0, sizeof on_wake);
    on_wake.sa_handler = wake;
    sigaction(SIGUSR1, &on_wake, NULL);
    sigset_t usr1, open_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &open_mask);
    sigdelset(&open_mask, SIGUSR1);
    for (;;) {
        char beat[128];
        int asked = wakes;
        int len = snprintf(beat, sizeof beat, "alive %d %d %016llx %d\n", CANARY_VERSION,
                           canary_version(), (unsigned long long)checksum(ranges, n), asked);
        if (write(fd, beat, len) != len) return 0; /* the harness went away */
        ppoll(NULL, 0, &pause, &open_mask); /* SIGUSR1 ends it early */
    }
}
