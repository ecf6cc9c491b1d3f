/*
 * swapfault's init for a strategy: the first process of a PID namespace of
 * its own (swapfault starts it so), it runs COMMAND, so that everything the
 * strategy starts stays inside the namespace, whatever it does (setsid,
 * setpgid, double fork, daemons).
 *
 *   sandbox-init COMMAND [ARG...]
 *
 * Its stdout is a report to swapfault, one line each, once COMMAND ended:
 *   exit N          COMMAND exited with N
 *   signal N        COMMAND was killed by signal N
 *   left PID COMM   a process COMMAND started was still running then
 *   error TEXT      the sandbox could not be made
 * COMMAND gets stdin and stderr as given, stdout on /dev/null.
 *
 *   sandbox-init --read FILE
 *
 * copies FILE to stdout, as cat would: the read probe. It is here because
 * this program starts several times faster than a dynamically linked cat,
 * and a probe runs at every stalled op.
 *
 * When COMMAND ends, this init reports and exits, and the kernel kills every
 * process left in the namespace; killing the init (SIGKILL) kills them all
 * at once, and so does the death of the thread that started it.
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
#include <sys/wait.h>
#include <unistd.h>

/* Enough to name what was left; a bound keeps the report within a pipe's
 * buffer, so swapfault can read it after the init has exited. */
#define MAX_LEFT 64

static void report_left(FILE *report) {
    /* Orphans are reparented to us: our children now are what was left.
     * One that is on its way out (its pipes closed, not yet reaped) gets a
     * moment to finish; what still runs after it was left running. */
    for (int waited = 0; waited < 50; waited++) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) {
            return;
        }
        usleep(1000);
    }
    FILE *children = fopen("/proc/thread-self/children", "r");
    if (!children) {
        return;
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
        fprintf(report, "left %d %s\n", pid, comm);
        left++;
    }
    fclose(children);
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

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--read") == 0) {
        /* A name that says what it is, in ps and in swapfault's own checks. */
        prctl(PR_SET_NAME, "swapfault-read");
        return read_probe(argv[2]);
    }
    /* Whatever ends swapfault ends this, and so the namespace. (Should it
     * end before this line, the strategy's gate on stdin sees EOF and the
     * strategy runs nothing.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *report = fdopen(dup(STDOUT_FILENO), "w");
    int devnull = open("/dev/null", O_RDWR);
    if (!report || devnull < 0) {
        return 125;
    }
    dup2(devnull, STDOUT_FILENO);
    close(devnull);
    if (argc < 2) {
        fprintf(report, "error usage: sandbox-init COMMAND [ARG...]\n");
        return 125;
    }
    if (getpid() != 1) {
        fprintf(report, "error not the first process of a PID namespace\n");
        return 125;
    }
    /* posix_spawn (a vfork, then exec): no copy of our pages to make. The
     * report's descriptor is close-on-exec, so the command does not get it. */
    fcntl(fileno(report), F_SETFD, FD_CLOEXEC);
    pid_t command;
    int failed = posix_spawnp(&command, argv[1], NULL, NULL, argv + 1, environ);
    if (failed) {
        fprintf(stderr, "swapfault: cannot run %s: %s\n", argv[1], strerror(failed));
        fprintf(report, "exit 127\n");
        fclose(report);
        return 0;
    }
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
    if (WIFEXITED(status)) {
        fprintf(report, "exit %d\n", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        fprintf(report, "signal %d\n", WTERMSIG(status));
    }
    report_left(report);
    fclose(report);
    return 0;
}
