/*
 * swapfault's init for the strategies of one worker: the first process of a
 * PID namespace of its own (swapfault starts it so), it runs each strategy
 * it is sent, so that everything the strategy starts stays inside the
 * namespace, whatever it does (setsid, setpgid, double fork, daemons). One
 * init serves every run of a worker: starting it and its namespace once
 * keeps an exec and a namespace off the path of every crash point.
 *
 *   sandbox-init --serve
 *
 * Its stdin is a SOCK_SEQPACKET socket. Each request is one message of
 * NUL-terminated fields, a tag letter each:
 *   dDIR           the working directory
 *   aARG           the next argument (the first names the program, on PATH)
 *   eKEY=VALUE     set in the environment (the init's own, plus these)
 *   uKEY           removed from it
 * with two descriptors attached: the command's stdin and stderr (its
 * stdout is /dev/null). Once the command has ended, and every process it
 * left has been listed, killed and reaped, the init answers with one
 * message of lines:
 *   exit N          COMMAND exited with N
 *   signal N        COMMAND was killed by signal N
 *   left PID COMM   a process COMMAND started was still running then
 *   error TEXT      the request could not be run
 * SIGUSR1 kills every process of the namespace but the init: the end of a
 * run, at its deadline or when it is over. The init ends when the socket
 * closes, or with the thread that started it; the kernel then kills what
 * is left in the namespace.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Enough to name what was left; a bound keeps the report within a pipe's
 * buffer, so swapfault can read it after the init has exited. */
#define MAX_LEFT 64
/* A request's size and fields; swapfault sends a few of each. */
#define MAX_REQUEST (1 << 16)
#define MAX_FIELDS 256

static int report_left(char *report, int used, int size) {
    /* Orphans are reparented to us: our children now are what was left.
     * One that is on its way out (its pipes closed, not yet reaped) gets a
     * moment to finish; what still runs after it was left running. */
    for (int waited = 0; waited < 50; waited++) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) {
            return used;
        }
        usleep(1000);
    }
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

/* Whether environment entry `entry` sets `key` (up to '=' or the end). */
static int same_key(const char *entry, const char *key) {
    size_t n = strcspn(key, "=");
    return strncmp(entry, key, n) == 0 && entry[n] == '=';
}

/* Runs one request (fields in `request`, `length` bytes) with stdin and
 * stderr `in` and `err` (closed, and `*closed` set, once the command has
 * them); writes the report into `report`. */
static int run(char *request, size_t length, int in, int err, int *closed, int devnull,
               char *report, int size) {
    static char *argv[MAX_FIELDS + 1], *changes[MAX_FIELDS + 1];
    static char *envp[4096 + MAX_FIELDS + 1];
    const char *dir = NULL;
    int args = 0, nchanges = 0;
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
        default: return snprintf(report, size, "error unknown field %.20s\n", field);
        }
    }
    if (args == 0) {
        return snprintf(report, size, "error no command\n");
    }
    argv[args] = NULL;
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
    used = report_left(report, used, size);
    /* Nothing of this run may meet the next: kill what is left, reap it. */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
    }
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
            used = run(request, n, fds[0], fds[1], &closed, devnull, report, sizeof report);
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
    if (argc == 2 && strcmp(argv[1], "--serve") == 0) {
        /* Whatever ends swapfault ends this, and so the namespace. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        return serve();
    }
    if (argc >= 4 && strcmp(argv[1], "--exec") == 0) {
        if (chdir(argv[2]) == 0) {
            execvp(argv[3], argv + 3);
        }
        printf("exec-failed %d\n", errno);
        return 127;
    }
    fprintf(stderr, "usage: sandbox-init --serve | --read FILE | --exec DIR PROGRAM [ARG...]\n");
    return 2;
}
