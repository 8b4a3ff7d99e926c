/* fdlisten: the network hand-off the namespace and container peers need.
 *
 * Usage: fdlisten FD PROGRAM [ARG...]
 *
 * Runs inside a fresh network namespace (unshare --net, runc, podman --network none):
 * brings `lo` up if it is down, listens on 127.0.0.1:9001 there, sends the listening
 * socket over the Unix socket FD (SCM_RIGHTS) to the benchmark harness outside, closes FD
 * and execs PROGRAM. The harness then serves the Lambda Runtime API on that listener, the
 * way Stratus serves it on a listener its helper creates inside each sandbox. Written for
 * bench/harness.py; built static so it runs in a rootfs holding nothing else. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "fdlisten: %s: %s\n", what, strerror(errno));
    exit(111);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fdlisten FD PROGRAM [ARG...]\n");
        return 2;
    }
    int chan = atoi(argv[1]);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS lo");
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("bringing lo up");
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(9001);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind 127.0.0.1:9001");
    if (listen(s, 64) < 0) die("listen");

    char byte = 'L';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &s, sizeof(int));
    if (sendmsg(chan, &m, 0) < 0) die("sendmsg");
    close(chan);
    close(s);
    execv(argv[2], argv + 2);
    die("execv");
    return 111;
}
