/* relay: the floor of a warm invoke, for bench/harness.py.
 *
 * Usage: relay FUNCTIONS
 *
 * A warm invoke is four messages over loopback TCP through three processes: the client's
 * request to the server, the event from the server to the function's process (which was
 * waiting for it), the function's answer back to the server, and the response to the
 * client. relay does exactly that and nothing else: one single-threaded epoll process in
 * the server's place and FUNCTIONS forked function processes, each connected to it over
 * loopback TCP and answering every event at once. Each client connection is paired with a
 * function process of its own while it stays open, as a warm environment serves one
 * invocation at a time. Requests are HTTP/1.1 (request line and headers read up to the blank
 * line, then Content-Length bytes of body, which is what is passed on); the response is
 * `200 OK` with the function's answer as the body, so bench/c/loadgen.c measures relay the
 * way it measures Stratus. Prints the port it listens on (127.0.0.1), then serves until it
 * is killed. The Runtime API adds two messages per invoke that a floor does not need (the
 * server's 202 to the posted response and the runtime's next GET /next); they are off the
 * path of a sequential invoke's latency. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define BUF 65536

static void die(const char *what) {
    fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
    exit(111);
}

static int listen_on(int backlog, int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(s, backlog) < 0) die("listen");
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

static void nodelay(int s) {
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int write_all(int s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(s, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int s, char *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(s, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* A function process: frames are a 4-byte length and that many bytes, both ways. */
static void function(int port) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    nodelay(s);
    static char event[BUF];
    static const char answer[] = "\x04\0\0\0\"ok\"";
    for (;;) {
        uint32_t n;
        if (read_all(s, (char *)&n, 4) < 0 || n > BUF || read_all(s, event, n) < 0) _exit(0);
        if (write_all(s, answer, sizeof answer - 1) < 0) _exit(0);
    }
}

struct conn {
    int peer;      /* client ↔ function */
    int client;    /* 1 for a client connection */
    int owed;      /* a function: an event is out and its answer not read yet */
    size_t have;   /* bytes buffered */
    char *buf;
};

static struct conn conns[MAX_FD];
static int idle[MAX_FD], n_idle;

/* A client's request is whole once its headers and Content-Length bytes of body are in:
 * returns its length, -1 while it is not, -2 for a request no floor needs to serve. */
static long request_end(const char *buf, size_t have, size_t *body_at, size_t *body_len) {
    const char *end = memmem(buf, have, "\r\n\r\n", 4);
    if (!end) return -1;
    size_t head = (size_t)(end - buf) + 4;
    long len = 0;
    for (const char *line = memchr(buf, '\n', head); line && line < end;
         line = memchr(line + 1, '\n', (size_t)(end - line))) {
        if (strncasecmp(line + 1, "content-length:", 15) == 0) len = atol(line + 16);
    }
    if (len < 0 || (size_t)len > BUF - 4 - head) return -2;
    if (have < head + (size_t)len) return -1;
    *body_at = head;
    *body_len = (size_t)len;
    return (long)(head + (size_t)len);
}

static void drop_client(int ep, int fd) {
    struct conn *c = &conns[fd];
    if (c->peer >= 0) {
        /* A function still owing an answer goes back to the idle ones once it has given it. */
        conns[c->peer].peer = -1;
        if (!conns[c->peer].owed) idle[n_idle++] = c->peer;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->peer = -1;
    c->have = 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: relay FUNCTIONS\n");
        return 2;
    }
    int functions = atoi(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    int fport, port;
    int fl = listen_on(functions, &fport);
    for (int i = 0; i < functions; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) function(fport);
    }
    for (int i = 0; i < functions; i++) {
        int f = accept(fl, NULL, NULL);
        if (f < 0 || f >= MAX_FD) die("accept function");
        nodelay(f);
        conns[f] = (struct conn){.peer = -1, .client = 0, .buf = malloc(BUF)};
        idle[n_idle++] = f;
    }
    close(fl);
    int l = listen_on(1024, &port);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    for (int i = 0; i < n_idle; i++) {
        ev.data.fd = idle[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, idle[i], &ev);
    }
    printf("%d\n", port);
    fflush(stdout);
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: ";
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                /* Non-blocking: an event for a descriptor closed and reused within one batch
                 * finds nothing to read instead of stalling the relay. */
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) continue;
                if (c >= MAX_FD || n_idle == 0) { /* no function free: refuse */
                    close(c);
                    continue;
                }
                nodelay(c);
                int f = idle[--n_idle];
                if (!conns[c].buf) conns[c].buf = malloc(BUF);
                conns[c].peer = f;
                conns[c].client = 1;
                conns[c].have = 0;
                conns[f].peer = c;
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            struct conn *c = &conns[fd];
            ssize_t r = read(fd, c->buf + c->have, BUF - c->have);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                if (c->client) drop_client(ep, fd);
                else die("a function process went away");
                continue;
            }
            c->have += (size_t)r;
            if (c->client) {
                size_t at, len;
                long end = request_end(c->buf, c->have, &at, &len);
                if (end == -2 || (end == -1 && c->have == BUF)) {
                    drop_client(ep, fd); /* not a request a floor needs to serve */
                    continue;
                }
                if (end < 0) continue;
                /* The event, framed, in one write (the body moves down over the length). */
                uint32_t n32 = (uint32_t)len;
                memmove(c->buf + 4, c->buf + at, len);
                memcpy(c->buf, &n32, 4);
                if (write_all(c->peer, c->buf, len + 4) < 0) die("write to a function");
                conns[c->peer].owed = 1;
                c->have = 0; /* a closed loop: the next request waits for this response */
            } else {
                uint32_t len;
                if (c->have < 4) continue;
                memcpy(&len, c->buf, 4);
                if (c->have < 4 + (size_t)len) continue;
                c->owed = 0;
                if (c->peer >= 0) {
                    char out[512];
                    int k = snprintf(out, sizeof out, "%s%u\r\n\r\n", head, len);
                    if (len > sizeof out - (size_t)k) {
                        errno = EMSGSIZE;
                        die("a function's answer");
                    }
                    memcpy(out + k, c->buf + 4, len);
                    if (write_all(c->peer, out, (size_t)k + len) < 0) drop_client(ep, c->peer);
                } else {
                    idle[n_idle++] = fd; /* its client left while it worked */
                }
                c->have = 0;
            }
        }
    }
}
