/*
 * file-server.c: the C baseline for the file protocol, the way one writes it by hand: a blocking
 * thread per connection. A request is "NAME\n" (a file directly in DIR: no '/', not ".."); the
 * answer is the file's length as an 8-byte big-endian signed integer, then its bytes, or -1 and
 * nothing when there is no such file. Several requests may follow one another on a connection.
 *
 * usage: file-server PORT DIR sendfile|copy
 *   sendfile: the body goes out with sendfile(2), from the page cache straight to the socket;
 *   copy:     read(2) into a 256 KiB buffer, write(2) out: the copy loop a framework must beat.
 * Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int root_fd;
static int use_sendfile;

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_body(int sock, int file, off_t len) {
    if (use_sendfile) {
        off_t off = 0;
        while (off < len) {
            ssize_t k = sendfile(sock, file, &off, (size_t)(len - off));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) return -1;
        }
        return 0;
    }
    static __thread char buf[256 * 1024];
    off_t left = len;
    while (left > 0) {
        ssize_t k = read(file, buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        if (write_all(sock, buf, (size_t)k) < 0) return -1;
        left -= k;
    }
    return 0;
}

static void answer(int sock, const char *name) {
    int64_t len = -1;
    int file = -1;
    struct stat st;
    if (name[0] && !strchr(name, '/') && strcmp(name, "..") && strcmp(name, ".")) {
        file = openat(root_fd, name, O_RDONLY | O_CLOEXEC);
        if (file >= 0 && (fstat(file, &st) < 0 || !S_ISREG(st.st_mode))) {
            close(file);
            file = -1;
        }
    }
    if (file >= 0) len = st.st_size;
    unsigned char hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    if (write_all(sock, (const char *)hdr, 8) == 0 && file >= 0) send_body(sock, file, len);
    if (file >= 0) close(file);
}

static void *connection(void *arg) {
    int sock = (int)(intptr_t)arg;
    char line[4096];
    size_t have = 0;
    for (;;) {
        char *nl = memchr(line, '\n', have);
        if (nl) {
            *nl = 0;
            answer(sock, line);
            size_t used = (size_t)(nl - line) + 1;
            memmove(line, line + used, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof line) break; /* a name too long: hang up */
        ssize_t k = read(sock, line + have, sizeof line - have);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        have += (size_t)k;
    }
    close(sock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[3], "sendfile") && strcmp(argv[3], "copy"))) {
        fprintf(stderr, "usage: %s PORT DIR sendfile|copy\n", argv[0]);
        return 2;
    }
    use_sendfile = !strcmp(argv[3], "sendfile");
    root_fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) { perror(argv[2]); return 1; }
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1024) < 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) continue;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t t;
        if (pthread_create(&t, NULL, connection, (void *)(intptr_t)s) == 0) pthread_detach(t);
        else close(s);
    }
}
