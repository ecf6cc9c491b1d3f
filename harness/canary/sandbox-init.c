/*
 * swapfault's init for a strategy: runs COMMAND as the first process of a
 * PID namespace of its own, so that everything the strategy starts stays
 * inside it, whatever it does (setsid, setpgid, double fork, daemons).
 *
 *   sandbox-init COMMAND [ARG...]
 *
 * Its stdout is a report to swapfault, one line each:
 *   ready PID       the namespace exists; PID is its init, as swapfault sees it
 *   exit N          COMMAND exited with N
 *   signal N        COMMAND was killed by signal N
 *   left PID COMM   a process COMMAND started was still running when it ended
 *   error TEXT      the namespace could not be made
 * COMMAND gets stdin and stderr as given, stdout on /dev/null.
 *
 * When COMMAND ends, this init reports and exits, and the kernel kills every
 * process left in the namespace; killing the init (SIGKILL) kills them all
 * at once, and so does the death of the process that started it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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
    int pid;
    while (fscanf(children, "%d", &pid) == 1) {
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
    }
    fclose(children);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
        return 125;
    }
    FILE *report = fdopen(dup(STDOUT_FILENO), "w");
    int devnull = open("/dev/null", O_RDWR);
    if (!report || devnull < 0) {
        return 125;
    }
    setvbuf(report, NULL, _IOLBF, 0);
    dup2(devnull, STDOUT_FILENO);
    /* Whatever ends swapfault ends this, and so the namespace. */
    pid_t starter = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != starter) {
        return 125;
    }
    /* The init cannot ask for its parent's pid (it is outside the namespace,
     * so getppid() says 0): a pipe whose write end only the parent holds
     * tells it whether the parent is still there. */
    int alive[2];
    if (pipe(alive) != 0) {
        return 125;
    }
    if (unshare(CLONE_NEWPID) != 0) {
        fprintf(report, "error cannot make a PID namespace: %s\n", strerror(errno));
        return 125;
    }
    pid_t init = fork();
    if (init < 0) {
        fprintf(report, "error cannot fork: %s\n", strerror(errno));
        return 125;
    }
    if (init > 0) {
        /* Outside: say where the namespace is, then end when it does. */
        close(alive[0]);
        fprintf(report, "ready %d\n", init);
        fclose(report);
        int status;
        while (waitpid(init, &status, 0) < 0 && errno == EINTR) {
        }
        return 0;
    }
    /* The namespace's init. Its parent's death ends it, and with it all. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(alive[1]);
    struct pollfd gone = {.fd = alive[0], .events = POLLIN};
    if (poll(&gone, 1, 0) != 0) {
        return 125; /* the parent died before the death signal was set */
    }
    close(alive[0]);
    pid_t command = fork();
    if (command < 0) {
        fprintf(report, "error cannot fork: %s\n", strerror(errno));
        return 125;
    }
    if (command == 0) {
        fclose(report);
        close(devnull);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "swapfault: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    close(devnull);
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
