/* loadgen: a closed-loop HTTP/1.1 load generator for bench/harness.py.
 *
 * Usage: loadgen HOST PORT CONNECTIONS SECONDS REQUEST_FILE [REQUEST_FILE...]
 *
 * Opens CONNECTIONS persistent connections, one thread each, and for SECONDS sends the
 * request in REQUEST_FILE (complete bytes: request line, headers with a SigV4 signature
 * made by the harness, body) over each, waiting for every response before sending the
 * next. With several request files, connection i sends file i mod their number (e.g. one
 * log stream per client). Prints one JSON object: completed requests, errors (status other than 200 or an
 * X-Amz-Function-Error header), throughput, latency percentiles in microseconds, and the
 * CPU this process used, so the harness can say how much of the machine the client took.
 * C rather than Python so that the client costs a few microseconds per request. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port;
static double seconds;
static char **reqs;
static size_t *req_lens;
static int nreqs;
static pthread_barrier_t barrier;
static volatile double t_start, t_stop;

struct worker {
    pthread_t th;
    const char *req;
    size_t req_len;
    uint32_t *lat; /* microseconds */
    size_t n, cap;
    uint64_t errors;
    int failed;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        close(s);
        return -1;
    }
    return s;
}

/* One request/response exchange. Returns 1 on a good answer, 0 on an error answer,
 * -1 when the connection failed. */
static int exchange(int s, const char *req, size_t req_len, char *buf, size_t cap) {
    size_t off = 0;
    while (off < req_len) {
        ssize_t w = write(s, req + off, req_len - off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have + 1 >= cap) return -1;
        ssize_t r = read(s, buf + have, cap - 1 - have);
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = (size_t)(end - buf) + 4;
    int status = atoi(buf + 9);
    long body = 0;
    int fn_error = 0;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
        if (strncasecmp(line, "x-amz-function-error:", 21) == 0) fn_error = 1;
    }
    size_t got = have - head;
    while ((long)got < body) {
        ssize_t r = read(s, buf, cap - 1);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return (status == 200 && !fn_error) ? 1 : 0;
}

static void *run(void *arg) {
    struct worker *w = arg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    int s = connect_to();
    if (s < 0) w->failed = 1;
    pthread_barrier_wait(&barrier); /* every connection is open */
    pthread_barrier_wait(&barrier); /* the window is set */
    while (s >= 0) {
        double t0 = now();
        if (t0 >= t_stop) break;
        int ok = exchange(s, w->req, w->req_len, buf, cap);
        double t1 = now();
        if (ok < 0) {
            w->failed = 1;
            break;
        }
        if (t1 > t_stop) break; /* finished after the window: not counted */
        if (!ok) w->errors++;
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 65536;
            w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        }
        w->lat[w->n++] = (uint32_t)((t1 - t0) * 1e6 + 0.5);
    }
    if (s >= 0) close(s);
    free(buf);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu(const struct rusage *r, int sys) {
    const struct timeval *t = sys ? &r->ru_stime : &r->ru_utime;
    return t->tv_sec + t->tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: loadgen HOST PORT CONNECTIONS SECONDS REQUEST_FILE [REQUEST_FILE...]\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int conns = atoi(argv[3]);
    seconds = atof(argv[4]);
    nreqs = argc - 5;
    reqs = calloc((size_t)nreqs, sizeof *reqs);
    req_lens = calloc((size_t)nreqs, sizeof *req_lens);
    for (int k = 0; k < nreqs; k++) {
        FILE *f = fopen(argv[5 + k], "rb");
        if (!f) {
            perror(argv[5 + k]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        req_lens[k] = (size_t)ftell(f);
        rewind(f);
        reqs[k] = malloc(req_lens[k]);
        if (fread(reqs[k], 1, req_lens[k], f) != req_lens[k]) return 2;
        fclose(f);
    }

    struct worker *ws = calloc((size_t)conns, sizeof *ws);
    pthread_barrier_init(&barrier, NULL, (unsigned)conns + 1);
    t_stop = 1e300;
    for (int i = 0; i < conns; i++) {
        ws[i].req = reqs[i % nreqs];
        ws[i].req_len = req_lens[i % nreqs];
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    struct rusage r0, r1;
    pthread_barrier_wait(&barrier);
    t_start = now();
    t_stop = t_start + seconds;
    getrusage(RUSAGE_SELF, &r0);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < conns; i++) pthread_join(ws[i].th, NULL);
    double wall = now() - t_start;
    getrusage(RUSAGE_SELF, &r1);

    size_t total = 0;
    uint64_t errors = 0;
    int failed = 0;
    for (int i = 0; i < conns; i++) {
        total += ws[i].n;
        errors += ws[i].errors;
        failed += ws[i].failed;
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    double sum = 0;
    for (int i = 0; i < conns; i++)
        for (size_t j = 0; j < ws[i].n; j++) {
            all[k++] = ws[i].lat[j];
            sum += ws[i].lat[j];
        }
    qsort(all, total, sizeof *all, cmp);
#define PCT(p) (total ? all[(size_t)((p) / 100.0 * (double)(total - 1) + 0.5)] : 0)
    printf("{\"connections\": %d, \"seconds\": %.6f, \"requests\": %zu, \"errors\": %llu, "
           "\"failed_connections\": %d, \"rps\": %.1f, "
           "\"lat_us\": {\"p50\": %u, \"p90\": %u, \"p99\": %u, \"p999\": %u, \"max\": %u, "
           "\"mean\": %.1f}, \"cpu_user\": %.4f, \"cpu_sys\": %.4f}\n",
           conns, wall, total, (unsigned long long)errors, failed, total / seconds, PCT(50),
           PCT(90), PCT(99), PCT(99.9), total ? all[total - 1] : 0,
           total ? sum / (double)total : 0.0, cpu(&r1, 0) - cpu(&r0, 0),
           cpu(&r1, 1) - cpu(&r0, 1));
    return failed ? 1 : 0;
}
