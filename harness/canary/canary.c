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
 *   canary --self-update SPEC
 *                     a program that replaces its own file and re-executes
 *                     itself, as self-updating programs do (see self_update).
 *   canary --self-updated
 *                     what the re-executed image runs: reports its versions.
 *
 * Built with -DCANARY_VERSION=N and padding like the library. Built with
 * -DCANARY_SET=1, it is one of a set of files that must change together:
 * with a library of another version it refuses to run (exit 4), as a
 * program does whose library changed its ABI; --once still prints both. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
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

/* SIGUSR1 and SIGUSR2 are blocked but during the pause (ppoll), so they
 * are counted only between two beats: a beat reports every wake-up that
 * came before it. SIGUSR2 asks only that it be alive: the harness saw that
 * no file it maps changed, so the beat repeats the last checksum instead of
 * scanning every mapping again (64 MiB is a scan of about 11 ms). */
static volatile sig_atomic_t wakes, quick;
static void wake(int signal) {
    if (signal == SIGUSR2) quick++;
    wakes++;
}

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

/* Four lanes, folded at the end: one multiply chain would wait on each
 * multiply, and a 64 MiB library is scanned at every beat. */
static uint64_t checksum(const struct range *ranges, int n) {
    const uint64_t prime = 1099511628211ULL;
    uint64_t lane[4] = {1469598103934665603ULL, 1, 2, 3};
    for (int i = 0; i < n; i++) {
        const uint64_t *p = (const uint64_t *)ranges[i].start;
        const uint64_t *end = (const uint64_t *)ranges[i].end;
        /* Reading a page whose file was truncated raises SIGBUS: that is a finding. */
        for (; p + 4 <= end; p += 4) {
            lane[0] = (lane[0] ^ p[0]) * prime;
            lane[1] = (lane[1] ^ p[1]) * prime;
            lane[2] = (lane[2] ^ p[2]) * prime;
            lane[3] = (lane[3] ^ p[3]) * prime;
        }
        for (; p < end; p++) lane[0] = (lane[0] ^ *p) * prime;
    }
    return ((lane[0] * prime ^ lane[1]) * prime ^ lane[2]) * prime ^ lane[3];
}

static uint64_t nanos(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
}

/* ---- Self-update: the program is its own updater. ----
 *
 * Modelled on a real updater's flow: make a staging directory next to the
 * program, "download" the new version into it (a copy of $SWAPFAULT_NEW),
 * replace the target ($SWAPFAULT_TARGET: the program's own executable, or
 * its library) by the chosen method, remove the staging directory, then
 * re-execute its own executable ($CANARY_SELF) to run the new version.
 * Each step is a line appended to $CANARY_REPORT, for the harness:
 *
 *   start EXE LIB           started, running these versions' code
 *   failed STEP ERRNO       gave up at STEP (exit 1)
 *   replaced                the replacement is done, as far as it knows
 *   reexec                  about to execute $CANARY_SELF again
 *   reexec-failed ERRNO     that exec failed (exit 126)
 *   running EXE LIB         the re-executed image runs these versions
 *
 * SPEC is METHOD[+OPTION...]. Methods: in-place (open the target with
 * O_TRUNC and copy over it: the updater of the seed), rename (a sibling temp
 * file renamed over the target), rename-aside (the target renamed to
 * TARGET.old, the staged file renamed in, the old one removed). Options:
 * fsync (the new bytes, then the directory), copy-meta (the temp file gets
 * the target's mode and xattrs), clear-staging (a staging directory left by
 * an interrupted run is removed first: without it, mkdir fails with EEXIST
 * and so does every retry), ignore-errors (a failed step is not fatal and
 * the exit says success: an untruthful updater). */

struct spec { const char *method; int fsync, copy_meta, clear_staging, ignore_errors; };

static FILE *report;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    if (!report) return;
    va_list args;
    va_start(args, fmt);
    vfprintf(report, fmt, args);
    va_end(args);
    fputc('\n', report);
    fflush(report);
}

static int failed_step(const struct spec *spec, const char *step, const char *path) {
    int err = errno;
    say("failed %s %d", step, err);
    fprintf(stderr, "%s %s: %s\n", step, path, strerror(err));
    if (spec->ignore_errors) return 0;
    exit(1);
}

/* Copies the file at `from` to the open `to`; 0 or -1 with errno set. */
static int copy_into(const char *from, int to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    static char buf[128 * 1024];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) { int err = errno; close(in); errno = err; return -1; }
        if (n == 0) break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(to, buf + done, (size_t)(n - done));
            if (w < 0) { int err = errno; close(in); errno = err; return -1; }
            done += w;
        }
    }
    close(in);
    return 0;
}

static void fsync_dir(const char *dir_path) {
    int dir = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) { fsync(dir); close(dir); }
}

/* The target's mode and xattrs onto `fd`. */
static int copy_meta(const char *target, int fd) {
    struct stat st;
    if (stat(target, &st) < 0 || fchmod(fd, st.st_mode & 07777) < 0) return -1;
    char names[4096];
    ssize_t len = listxattr(target, names, sizeof names);
    for (ssize_t at = 0; len > 0 && at < len; at += (ssize_t)strlen(names + at) + 1) {
        char value[4096];
        ssize_t n = getxattr(target, names + at, value, sizeof value);
        if (n < 0 || fsetxattr(fd, names + at, value, (size_t)n, 0) < 0) return -1;
    }
    return 0;
}

/* Removes a staging directory and the files in it. */
static void remove_staging(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int parse_spec(const char *text, struct spec *spec) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    memset(spec, 0, sizeof *spec);
    char *save = NULL;
    spec->method = strtok_r(buf, "+", &save);
    if (!spec->method) return -1;
    if (strcmp(spec->method, "in-place") && strcmp(spec->method, "rename") &&
        strcmp(spec->method, "rename-aside"))
        return -1;
    for (char *opt; (opt = strtok_r(NULL, "+", &save));) {
        if (!strcmp(opt, "fsync")) spec->fsync = 1;
        else if (!strcmp(opt, "copy-meta")) spec->copy_meta = 1;
        else if (!strcmp(opt, "clear-staging")) spec->clear_staging = 1;
        else if (!strcmp(opt, "ignore-errors")) spec->ignore_errors = 1;
        else return -1;
    }
    return 0;
}

static int self_update(const char *text) {
    struct spec spec;
    if (parse_spec(text, &spec) < 0) {
        fprintf(stderr, "bad self-update spec `%s`\n", text);
        return 2;
    }
    const char *target = getenv("SWAPFAULT_TARGET");
    const char *new = getenv("SWAPFAULT_NEW");
    const char *self = getenv("CANARY_SELF");
    if (!target || !new || !self) {
        fprintf(stderr, "self-update needs SWAPFAULT_TARGET, SWAPFAULT_NEW and CANARY_SELF\n");
        return 2;
    }
    say("start %d %d", CANARY_VERSION, canary_version());
    char dir[4096], name[1024], staging[4200], staged[5300], temp[5300];
    const char *slash = strrchr(target, '/');
    if (!slash || slash == target) {
        fprintf(stderr, "self-update: SWAPFAULT_TARGET must be an absolute path in a directory\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - target), target);
    snprintf(name, sizeof name, "%s", slash + 1);
    snprintf(staging, sizeof staging, "%s/update-staging", dir);
    snprintf(staged, sizeof staged, "%s/%s", staging, name);
    if (spec.clear_staging) remove_staging(staging);
    if (mkdir(staging, 0755) < 0) failed_step(&spec, "mkdir", staging);
    /* The download. */
    int fd = open(staged, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0 || copy_into(new, fd) < 0) failed_step(&spec, "download", staged);
    if (fd >= 0) close(fd);
    if (!strcmp(spec.method, "in-place")) {
        fd = open(target, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) {
            failed_step(&spec, "open", target);
        } else {
            if (copy_into(staged, fd) < 0) failed_step(&spec, "copy", target);
            if (spec.fsync && fsync(fd) < 0) failed_step(&spec, "fsync", target);
            close(fd);
        }
    } else if (!strcmp(spec.method, "rename")) {
        snprintf(temp, sizeof temp, "%s/.%s.tmp-%d", dir, name, (int)getpid());
        fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        if (fd < 0) failed_step(&spec, "create", temp);
        if (fd >= 0) {
            if (copy_into(staged, fd) < 0) failed_step(&spec, "copy", temp);
            if (spec.copy_meta && copy_meta(target, fd) < 0) failed_step(&spec, "copy-meta", temp);
            if (spec.fsync && fsync(fd) < 0) failed_step(&spec, "fsync", temp);
            close(fd);
        }
        if (rename(temp, target) < 0) failed_step(&spec, "rename", target);
    } else {
        snprintf(temp, sizeof temp, "%s.old", target);
        if (spec.copy_meta) {
            fd = open(staged, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || copy_meta(target, fd) < 0) failed_step(&spec, "copy-meta", staged);
            if (spec.fsync && fd >= 0 && fsync(fd) < 0) failed_step(&spec, "fsync", staged);
            if (fd >= 0) close(fd);
        } else if (spec.fsync) {
            fd = open(staged, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || fsync(fd) < 0) failed_step(&spec, "fsync", staged);
            if (fd >= 0) close(fd);
        }
        if (rename(target, temp) < 0) failed_step(&spec, "rename", target);
        if (rename(staged, target) < 0) failed_step(&spec, "rename", staged);
        unlink(temp);
    }
    if (spec.fsync) fsync_dir(dir);
    remove_staging(staging);
    say("replaced");
    say("reexec");
    char *again[] = {(char *)self, "--self-updated", NULL};
    execv(self, again);
    int err = errno;
    say("reexec-failed %d", err);
    fprintf(stderr, "exec %s: %s\n", self, strerror(err));
    return 126;
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
    if (argc >= 2 && !strncmp(argv[1], "--self-update", 13)) {
        const char *path = getenv("CANARY_REPORT");
        report = path ? fopen(path, "ae") : NULL;
        if (!strcmp(argv[1], "--self-updated")) {
            say("running %d %d", CANARY_VERSION, canary_version());
            return mixed ? 4 : 0;
        }
        if (mixed) return 4;
        if (argc == 3 && !strcmp(argv[1], "--self-update")) return self_update(argv[2]);
        fprintf(stderr, "usage: canary --self-update SPEC\n");
        return 2;
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
    sigaction(SIGUSR2, &on_wake, NULL);
    sigset_t usr, open_mask;
    sigemptyset(&usr);
    sigaddset(&usr, SIGUSR1);
    sigaddset(&usr, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr, &open_mask);
    sigdelset(&open_mask, SIGUSR1);
    sigdelset(&open_mask, SIGUSR2);
    int last_wakes = 0, last_quick = 0, scanned = 0;
    uint64_t sum = 0, scan = 0; /* the last scan's time paces the next */
    for (;;) {
        char beat[128];
        int asked = wakes, asked_quick = quick;
        uint64_t began = nanos();
        /* Scanned unless every request since the last beat was a quick one. */
        int only_quick = asked > last_wakes && asked - last_wakes == asked_quick - last_quick;
        if (!scanned || !only_quick) {
            sum = checksum(ranges, n);
            scan = nanos() - began;
        }
        scanned = 1;
        last_wakes = asked;
        last_quick = asked_quick;
        int len = snprintf(beat, sizeof beat, "alive %d %d %016llx %d\n", CANARY_VERSION,
                           canary_version(), (unsigned long long)sum, asked);
        if (write(fd, beat, len) != len) return 0; /* the harness went away */
        /* A large mapping's scan is paced to a twentieth of the time,
         * so it does not take a core from the strategy it watches; the
         * harness asks for a beat (SIGUSR1) whenever it needs a fresh one. */
        uint64_t rest = 20 * 1000 * 1000;
        if (scan * 20 > rest) rest = scan * 20;
        pause.tv_sec = (time_t)(rest / 1000000000ULL);
        pause.tv_nsec = (long)(rest % 1000000000ULL);
        ppoll(NULL, 0, &pause, &open_mask); /* SIGUSR1 ends it early */
    }
}
