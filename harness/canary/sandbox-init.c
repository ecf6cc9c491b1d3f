/*
 * swapfault's init for the strategies of one worker: the first process of a
 * PID namespace of its own (swapfault starts it so), it runs each strategy
 * it is sent, so that everything the strategy starts stays inside the
 * namespace, whatever it does (setsid, setpgid, double fork, daemons). One
 * init serves every run of a worker: starting it and its namespace once
 * keeps an exec and a namespace off the path of every crash point.
 *
 *   sandbox-init --serve [RUNDIR]
 *
 * The init also makes a mount namespace of its own, where the strategy
 * sees a /proc of its own PID namespace (a tool that looks up its own
 * children by pid finds them) and a /tmp of its own: an overlay whose
 * lower layer is the host's /tmp, so the user's files there stay readable,
 * and whose upper layer is a tmpfs, so what the strategy writes there
 * stays there, apart from every other worker, until the next reset.
 * RUNDIR is swapfault's run dir; when it is in /tmp it is bound back into
 * that /tmp with the mounts in it. The copy of the mount table the new
 * namespace starts with holds every other worker's fault-fs mounts too:
 * they are detached from it, or they would outlive their unmount by
 * swapfault (a copy in another namespace keeps a FUSE connection open,
 * and the worker that unmounts waits for its end forever).
 *
 * Its stdin is a SOCK_SEQPACKET socket. Each request is one message of
 * NUL-terminated fields, a tag letter each:
 *   dDIR           the working directory
 *   aARG           the next argument (the first names the program, on PATH)
 *   eKEY=VALUE     set in the environment (the init's own, plus these)
 *   uKEY           removed from it
 *   t              give the strategy a fresh /tmp first (a new crash point)
 * with two descriptors attached: the command's stdin and stderr (its
 * stdout is /dev/null). When the command ends, the init says so at once
 * in a message of one line:
 *   first exit N    COMMAND exited with N
 *   first signal N  COMMAND was killed by signal N
 * then waits for every process the command left (a helper that finishes
 * the work once its parent is gone) until none is left, or until SIGUSR2
 * says to stop waiting. Then it answers with one message of lines:
 *   exit N          COMMAND exited with N
 *   signal N        COMMAND was killed by signal N
 *   outlived        a process COMMAND started ran on after it ended
 *   left PID COMM   a process COMMAND started was still running at SIGUSR2
 *   error TEXT      the request could not be run
 * and kills and reaps what was left. SIGUSR1 kills every process of the
 * namespace but the init: the end of a run at its deadline. The init ends
 * when the socket closes, or with the thread that started it; the kernel
 * then kills what is left in the namespace.
 *
 * The "ready" message carries a descriptor: the listener of a seccomp
 * filter the init installs on itself, and so on everything it starts,
 * that hands each sync(2) and syncfs(2) to swapfault (they never reach a
 * FUSE file system, yet they are barriers: swapfault makes its model
 * durable as the real call would, and answers). Where the kernel refuses
 * the filter, "ready" comes without one, with a notice saying why.
 *
 *   sandbox-init --read FILE
 *
 * copies FILE to stdout, as cat would: the read probe. It is here because
 * this program starts several times faster than a dynamically linked cat,
 * and a probe runs at every stalled op.
 *
 *   sandbox-init --exec DIR PROGRAM [ARG...]
 *
 * changes to DIR and execs PROGRAM: how swapfault starts anything whose
 * program or working directory is on its own FUSE mount (the live canary,
 * the exec probe, live commands). A child forked from swapfault holds a
 * copy of the mount's /dev/fuse descriptor until its exec completes, and
 * the exec looks the program up first: were swapfault killed then, the
 * child would wait for an answer forever on a connection it keeps open
 * itself. This program, exec'd from outside the mount, holds no such copy.
 * Where the change or the exec fails, it writes "exec-failed ERRNO" to its
 * stdout and exits 127, so that swapfault can say why, as if its own spawn
 * had failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Enough to name what was left; a bound keeps the report within a pipe's
 * buffer, so swapfault can read it after the init has exited. */
#define MAX_LEFT 64
/* A path in /tmp, through /proc/self/fd. */
#define PATH_MAX_LEN 4096
/* A request's size and fields; swapfault sends a few of each. */
#define MAX_REQUEST (1 << 16)
#define MAX_FIELDS 256

/* Lists the processes still running: orphans are reparented to us, so our
 * children now are what the command left. */
static int report_left(char *report, int used, int size) {
    FILE *children = fopen("/proc/thread-self/children", "r");
    if (!children) {
        return used;
    }
    int pid, left = 0;
    while (left < MAX_LEFT && fscanf(children, "%d", &pid) == 1) {
        char path[64], comm[64] = "?";
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f)) {
                comm[strcspn(comm, "\n")] = 0;
            }
            fclose(f);
        }
        used += snprintf(report + used, size - used, "left %d %s\n", pid, comm);
        if (used >= size) {
            used = size - 1;
        }
        left++;
    }
    fclose(children);
    return used;
}

/* The host's /tmp, opened before the strategy's own covers it; -1 when the
 * strategy shares the host's (no private /tmp could be made). */
static int host_tmp = -1;
/* swapfault's run dir (an absolute path), or NULL. */
static const char *run_dir;

/* `path` with mountinfo's octal escapes (\040 for a space) decoded, in place. */
static void unescape(char *path) {
    char *out = path;
    for (char *in = path; *in; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = 0;
}

/* Detaches, in this mount namespace only, up to MAX_LEFT fault-fs mounts
 * (source "swapfault") that are not in `own` (see the head of this file);
 * returns how many. */
static int detach_some_runs(const char *own) {
    FILE *mounts = fopen("/proc/self/mountinfo", "re");
    if (!mounts) {
        return 0;
    }
    size_t own_len = own ? strlen(own) : 0;
    static char line[8192];
    static char points[MAX_LEFT][PATH_MAX_LEN];
    int found = 0;
    while (found < MAX_LEFT && fgets(line, sizeof line, mounts)) {
        /* ID PARENT DEV ROOT POINT OPTIONS [TAGS...] - TYPE SOURCE OPTIONS */
        char *dash = strstr(line, " - ");
        if (!dash) {
            continue;
        }
        char type[64], source[64];
        if (sscanf(dash + 3, "%63s %63s", type, source) != 2 || strcmp(source, "swapfault") != 0) {
            continue;
        }
        char point[PATH_MAX_LEN];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1) {
            continue;
        }
        unescape(point);
        int ours = own && strncmp(point, own, own_len) == 0 &&
                   (point[own_len] == '/' || point[own_len] == 0);
        if (!ours) {
            snprintf(points[found++], PATH_MAX_LEN, "%s", point);
        }
    }
    fclose(mounts);
    int detached = 0;
    for (int i = 0; i < found; i++) {
        detached += umount2(points[i], MNT_DETACH) == 0;
    }
    return detached;
}

/* Detaches them all, MAX_LEFT at a time (a fuzz run keeps a stage per
 * size on each worker). */
static void detach_other_runs(const char *own) {
    while (detach_some_runs(own) > 0) {
    }
}

/* The run dir's name in /tmp, or NULL when it is elsewhere. */
static const char *run_dir_in_tmp(void) {
    if (!run_dir || strncmp(run_dir, "/tmp/", 5) != 0 || !run_dir[5]) {
        return NULL;
    }
    return run_dir + 5;
}
/* Whether /tmp is the strategy's own now. */
static int private_tmp;

/* Gives the strategy a fresh /tmp of its own (see the head of this file);
 * what a strategy left in the one before goes with it. On failure /tmp is
 * the host's, and the reason is in `why`. */
static int fresh_tmp(char *why, size_t size) {
    if (private_tmp) {
        /* The overlay (and the run dir bound in it), then its tmpfs. */
        umount2("/tmp", MNT_DETACH);
        umount2("/tmp", MNT_DETACH);
        private_tmp = 0;
    }
    if (host_tmp < 0) {
        snprintf(why, size, "the host's /tmp cannot be opened");
        return -1;
    }
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=01777") < 0) {
        snprintf(why, size, "tmpfs on /tmp: %s", strerror(errno));
        return -1;
    }
    int scratch = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    mkdir("/tmp/upper", 01777);
    chmod("/tmp/upper", 01777);
    mkdir("/tmp/work", 0700);
    char options[256];
    snprintf(options, sizeof options,
             "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d/upper,workdir=/proc/self/fd/%d/work",
             host_tmp, scratch, scratch);
    int failed = mount("overlay", "/tmp", "overlay", 0, options);
    int saved = errno;
    close(scratch);
    if (failed < 0) {
        snprintf(why, size, "an overlay on /tmp: %s", strerror(saved));
        umount2("/tmp", MNT_DETACH);
        return -1;
    }
    private_tmp = 1;
    const char *in_tmp = run_dir_in_tmp();
    if (in_tmp) {
        char from[PATH_MAX_LEN], to[PATH_MAX_LEN];
        snprintf(from, sizeof from, "/proc/self/fd/%d/%s", host_tmp, in_tmp);
        snprintf(to, sizeof to, "/tmp/%s", in_tmp);
        if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0) {
            snprintf(why, size, "binding %.100s back: %s", to, strerror(errno));
            umount2("/tmp", MNT_DETACH);
            umount2("/tmp", MNT_DETACH);
            private_tmp = 0;
            return -1;
        }
    }
    return 0;
}

/* The strategy's own mounts: a /proc of its PID namespace, a /tmp of its
 * own. Anything it cannot have is said in `why` (and the host's stays). */
static void own_mounts(char *why, size_t size) {
    why[0] = 0;
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        snprintf(why, size, "no mount namespace of its own: %s", strerror(errno));
        return;
    }
    detach_other_runs(run_dir);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        snprintf(why, size, "no /proc of its own: %s", strerror(errno));
    }
    host_tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char tmp_why[200];
    if (fresh_tmp(tmp_why, sizeof tmp_why) < 0 && !why[0]) {
        snprintf(why, size, "no /tmp of its own: %s", tmp_why);
    }
}

/* The kernel's seccomp and classic BPF interface, spelled out here: musl's
 * headers (the static build) carry no <linux/...> ones. */
struct bpf_insn {
    unsigned short code;
    unsigned char jt, jf;
    unsigned int k;
};
struct bpf_prog {
    unsigned short len;
    struct bpf_insn *insns;
};
#define LOAD_WORD 0x20  /* BPF_LD | BPF_W | BPF_ABS */
#define JUMP_IF_EQ 0x15 /* BPF_JMP | BPF_JEQ | BPF_K */
#define RETURN 0x06     /* BPF_RET | BPF_K */
#define RET_ALLOW 0x7fff0000u
#define RET_USER_NOTIF 0x7fc00000u
#define SET_MODE_FILTER 1
#define FLAG_NEW_LISTENER (1u << 3)
/* struct seccomp_data: int nr; __u32 arch; ... */
#define DATA_NR 0
#define DATA_ARCH 4
#if defined(__x86_64__)
#define OWN_ARCH 0xc000003eu /* AUDIT_ARCH_X86_64 */
#elif defined(__aarch64__)
#define OWN_ARCH 0xc00000b7u /* AUDIT_ARCH_AARCH64 */
#endif

/* Installs the filter that hands sync(2) and syncfs(2) to swapfault and
 * returns its listener, or -1 with the reason in `why`. Calls of another
 * architecture's table (a 32-bit program) pass unseen. */
static int watch_syncs(char *why, size_t size) {
#if defined(OWN_ARCH) && defined(SYS_seccomp)
    struct bpf_insn filter[] = {
        {LOAD_WORD, 0, 0, DATA_ARCH},
        {JUMP_IF_EQ, 1, 0, OWN_ARCH},
        {RETURN, 0, 0, RET_ALLOW},
        {LOAD_WORD, 0, 0, DATA_NR},
        {JUMP_IF_EQ, 2, 0, SYS_sync},
        {JUMP_IF_EQ, 1, 0, SYS_syncfs},
        {RETURN, 0, 0, RET_ALLOW},
        {RETURN, 0, 0, RET_USER_NOTIF},
    };
    struct bpf_prog prog = {sizeof filter / sizeof filter[0], filter};
    int listener = syscall(SYS_seccomp, SET_MODE_FILTER, FLAG_NEW_LISTENER, &prog);
    if (listener < 0) {
        snprintf(why, size, "no view of sync(2): seccomp: %s", strerror(errno));
    }
    return listener;
#else
    snprintf(why, size, "no view of sync(2) on this architecture");
    return -1;
#endif
}

/* The read probe: FILE to stdout; exit 1 with the reason if it fails. */
static int read_probe(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 1;
    }
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return 1;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + done, n - done);
            if (w < 0 && errno != EINTR) {
                return 1;
            }
            done += w > 0 ? w : 0;
        }
    }
}

/* SIGUSR1: every process of the namespace but this one dies. */
static void kill_all(int signal) {
    (void)signal;
    int saved = errno;
    kill(-1, SIGKILL);
    errno = saved;
}

/* SIGUSR2: stop waiting for what the command left. */
static volatile sig_atomic_t stop_waiting;

static void stop_wait(int signal) {
    (void)signal;
    stop_waiting = 1;
}

/* Whether environment entry `entry` sets `key` (up to '=' or the end). */
static int same_key(const char *entry, const char *key) {
    size_t n = strcspn(key, "=");
    return strncmp(entry, key, n) == 0 && entry[n] == '=';
}

/* Runs one request (fields in `request`, `length` bytes) with stdin and
 * stderr `in` and `err` (closed, and `*closed` set, once the command has
 * them); writes the report into `report`. */
static int run(char *request, size_t length, int in, int err, int *closed, int devnull,
               char *report, int size, int sock) {
    static char *argv[MAX_FIELDS + 1], *changes[MAX_FIELDS + 1];
    static char *envp[4096 + MAX_FIELDS + 1];
    const char *dir = NULL;
    int args = 0, nchanges = 0, fresh = 0;
    for (size_t at = 0; at < length;) {
        char *field = request + at;
        size_t n = strnlen(field, length - at);
        if (n == length - at) {
            return snprintf(report, size, "error a field without its end\n");
        }
        at += n + 1;
        if (args == MAX_FIELDS || nchanges == MAX_FIELDS) {
            return snprintf(report, size, "error too many fields\n");
        }
        switch (field[0]) {
        case 'd': dir = field + 1; break;
        case 'a': argv[args++] = field + 1; break;
        case 'e': case 'u': changes[nchanges++] = field; break;
        case 't': fresh = 1; break;
        default: return snprintf(report, size, "error unknown field %.20s\n", field);
        }
    }
    if (args == 0) {
        return snprintf(report, size, "error no command\n");
    }
    argv[args] = NULL;
    if (fresh && host_tmp >= 0) {
        /* Seen rootless beside other swapfaults: the overlay failed with
         * EINVAL ("overlayfs: failed to clone lowerpath" in the kernel log:
         * a mount under /tmp that came from the host is locked in a user
         * namespace, and overlayfs will not take /tmp as a lower layer).
         * Tried again; failing that, the run shares the host's /tmp, as
         * when none could be made at the start, rather than failing. */
        char why[200];
        for (int attempt = 0; attempt < 3 && fresh_tmp(why, sizeof why) < 0; attempt++) {
            usleep(10000);
        }
    }
    /* The init's environment (swapfault's), less what a change names. */
    int nenv = 0;
    for (char **e = environ; *e && nenv < 4096; e++) {
        int changed = 0;
        for (int i = 0; i < nchanges && !changed; i++) {
            changed = same_key(*e, changes[i] + 1);
        }
        if (!changed) {
            envp[nenv++] = *e;
        }
    }
    for (int i = 0; i < nchanges; i++) {
        if (changes[i][0] == 'e') {
            envp[nenv++] = changes[i] + 1;
        }
    }
    envp[nenv] = NULL;

    /* posix_spawn (a vfork, then exec): no copy of our pages to make. */
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, devnull, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
    if (dir) {
        posix_spawn_file_actions_addchdir_np(&actions, dir);
    }
    pid_t command;
    int failed = posix_spawnp(&command, argv[0], &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    if (failed) {
        dprintf(err, "swapfault: cannot run %s%s%s: %s\n", argv[0], dir ? " in " : "",
                dir ? dir : "", strerror(failed));
        return snprintf(report, size, "exit 127\n");
    }
    /* The command's copies are its own now: its pipes end with it. */
    close(in);
    close(err);
    *closed = 1;
    int status = 0;
    for (;;) {
        int st;
        pid_t done = waitpid(-1, &st, 0);
        if (done == command) {
            status = st;
            break;
        }
        if (done < 0 && errno != EINTR) {
            break;
        }
    }
    int used = 0;
    if (WIFEXITED(status)) {
        used = snprintf(report, size, "exit %d\n", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        used = snprintf(report, size, "signal %d\n", WTERMSIG(status));
    }
    /* Said at once: swapfault decides how long the rest may take. */
    char first[64];
    int n = snprintf(first, sizeof first, "first %s", report);
    send(sock, first, n, MSG_NOSIGNAL);
    /* What the command left goes on, until it has all ended or SIGUSR2. */
    for (int looked = 0;; looked++) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) {
            break;
        }
        if (looked == 0) {
            used += snprintf(report + used, size - used, "outlived\n");
        }
        if (stop_waiting) {
            used = report_left(report, used, size);
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
    /* Nothing of this run may meet the next: kill what is left, reap it. */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
    }
    stop_waiting = 0;
    return used;
}

/* Serves requests on stdin until it closes. */
static int serve(void) {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        return 125;
    }
    dup2(devnull, STDOUT_FILENO);
    if (getpid() != 1) {
        static const char error[] = "error not the first process of a PID namespace\n";
        send(STDIN_FILENO, error, sizeof error - 1, 0);
        return 125;
    }
    struct sigaction action = {.sa_handler = kill_all, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &action, NULL);
    struct sigaction stop = {.sa_handler = stop_wait, .sa_flags = SA_RESTART};
    sigaction(SIGUSR2, &stop, NULL);
    char why[256], sync_why[200] = "";
    own_mounts(why, sizeof why);
    int listener = watch_syncs(sync_why, sizeof sync_why);
    /* Ready, with what the strategy could not have of its own (not fatal:
     * it shares the host's, as it did before), and the listener. */
    char ready[600];
    int n = snprintf(ready, sizeof ready, "ready\n");
    if (why[0]) {
        n += snprintf(ready + n, sizeof ready - n, "notice %s\n", why);
    }
    if (sync_why[0]) {
        n += snprintf(ready + n, sizeof ready - n, "notice %s\n", sync_why);
    }
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } passed;
    struct iovec said = {.iov_base = ready, .iov_len = n};
    struct msghdr hello = {.msg_iov = &said, .msg_iovlen = 1};
    if (listener >= 0) {
        hello.msg_control = passed.space;
        hello.msg_controllen = sizeof passed.space;
        struct cmsghdr *c = CMSG_FIRSTHDR(&hello);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &listener, sizeof listener);
    }
    sendmsg(STDIN_FILENO, &hello, MSG_NOSIGNAL);
    /* swapfault holds it now: were it gone, a sync would fail with ENOSYS
     * rather than wait for an answer. */
    if (listener >= 0) {
        close(listener);
    }
    static char request[MAX_REQUEST], report[4096 + MAX_LEFT * 32];
    for (;;) {
        union {
            struct cmsghdr header;
            char space[CMSG_SPACE(2 * sizeof(int))];
        } control;
        struct iovec iov = {.iov_base = request, .iov_len = sizeof request};
        struct msghdr message = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = control.space,
            .msg_controllen = sizeof control.space,
        };
        ssize_t n = recvmsg(STDIN_FILENO, &message, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return 0;
        }
        int fds[2] = {-1, -1}, nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (int i = 0; i < count; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                    if (nfds < 2) {
                        fds[nfds++] = fd;
                    } else {
                        close(fd);
                    }
                }
            }
        }
        int used, closed = 0;
        if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
            used = snprintf(report, sizeof report, "error request too large\n");
        } else if (nfds != 2) {
            used = snprintf(report, sizeof report, "error a request needs stdin and stderr\n");
        } else {
            used = run(request, n, fds[0], fds[1], &closed, devnull, report, sizeof report,
                       STDIN_FILENO);
        }
        for (int i = 0; i < nfds && !closed; i++) {
            close(fds[i]);
        }
        if (send(STDIN_FILENO, report, used, MSG_NOSIGNAL) < 0) {
            return 0;
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--read") == 0) {
        /* A name that says what it is, in ps and in swapfault's own checks. */
        prctl(PR_SET_NAME, "swapfault-read");
        return read_probe(argv[2]);
    }
    if ((argc == 2 || argc == 3) && strcmp(argv[1], "--serve") == 0) {
        /* Whatever ends swapfault ends this, and so the namespace. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        run_dir = argc == 3 ? argv[2] : NULL;
        return serve();
    }
    if (argc >= 4 && strcmp(argv[1], "--exec") == 0) {
        if (chdir(argv[2]) == 0) {
            execvp(argv[3], argv + 3);
        }
        printf("exec-failed %d\n", errno);
        return 127;
    }
    fprintf(stderr,
            "usage: sandbox-init --serve [RUNDIR] | --read FILE | --exec DIR PROGRAM [ARG...]\n");
    return 2;
}
