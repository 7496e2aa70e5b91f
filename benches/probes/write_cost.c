/*
 * write_cost: what one small write() to a loopback TCP socket costs on this machine, the kernel floor under
 * every broadcast server measured by bench-compare. Bench-only; not part of the daemon.
 *
 * One thread (pinned to core 0) holds N_SOCKETS accepted loopback connections with TCP_NODELAY and writes
 * MSG_BYTES to each in turn, ROUNDS_PER_S rounds a second; a reader thread (pinned to core 1) drains them with
 * epoll, sleeping in epoll_wait as a real client does. It prints the mean time the writer spends inside one
 * write(), for a few message sizes, plus the cost of a null system call for scale.
 *
 * Build and run: make -C benches/probes && benches/probes/write_cost   (or `make bench-write-cost`)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define N_SOCKETS 100
#define ROUNDS_PER_S 2000
#define SECONDS 2.0

static int server_side[N_SOCKETS], client_side[N_SOCKETS];

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *unused) {
    (void)unused;
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < N_SOCKETS; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, client_side[i], &e);
    }
    static char buf[65536];
    struct epoll_event events[N_SOCKETS];
    for (;;) {
        int n = epoll_wait(ep, events, N_SOCKETS, -1);
        for (int j = 0; j < n; j++)
            while (read(client_side[events[j].data.u32], buf, sizeof buf) == (ssize_t)sizeof buf) {
            }
    }
    return NULL;
}

/* Mean microseconds inside one write() of `bytes`, paced at ROUNDS_PER_S rounds over all sockets. */
static double measure(size_t bytes) {
    static char msg[16384];
    memset(msg, 'x', sizeof msg);
    double start = now(), inside = 0;
    long rounds = 0;
    while (now() - start < SECONDS) {
        double due = (now() - start) * ROUNDS_PER_S;
        while (rounds < due) {
            double t = now();
            for (int i = 0; i < N_SOCKETS; i++)
                if (write(server_side[i], msg, bytes) < 0) {
                    perror("write");
                    exit(1);
                }
            inside += now() - t;
            rounds++;
        }
    }
    return inside / ((double)rounds * N_SOCKETS) * 1e6;
}

int main(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, (void *)&addr, sizeof addr) || listen(listener, N_SOCKETS) ||
        getsockname(listener, (void *)&addr, &len)) {
        perror("listen");
        return 1;
    }
    for (int i = 0; i < N_SOCKETS; i++) {
        int one = 1;
        client_side[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client_side[i], (void *)&addr, sizeof addr)) {
            perror("connect");
            return 1;
        }
        server_side[i] = accept(listener, NULL, NULL);
        setsockopt(server_side[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    pin(0);
    double t0 = now();
    for (int i = 0; i < 1000000; i++)
        syscall(SYS_getppid);
    printf("null system call: %.2f us\n", (now() - t0));
    printf("write() to one of %d loopback sockets, %d rounds/s, reader on the other core:\n", N_SOCKETS,
           ROUNDS_PER_S);
    size_t sizes[] = {150, 1500, 15000};
    for (int i = 0; i < 3; i++)
        printf("  %5zu bytes: %.2f us per write\n", sizes[i], measure(sizes[i]));
    return 0;
}
