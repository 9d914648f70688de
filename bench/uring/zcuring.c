/* bench/uring/zcuring.c: the minimal liburing loop zcdoctor's io_uring probe is held against.
 * UDP to DST:PORT bound to IFACE, SIZE-byte sends (UDP_SEGMENT GSO when -g), IORING_OP_SEND
 * (copy) or IORING_OP_SEND_ZC with IORING_SEND_ZC_REPORT_USAGE (-z), optionally from a
 * registered buffer (-F). Same shape as the probe: up to DEPTH sends in flight, one
 * io_uring_submit_and_wait_timeout per batch, every CQE read, notifications counted and
 * COPIED ones too, ring set up with SINGLE_ISSUER | DEFER_TASKRUN and a 1024-entry CQ.
 *
 * Build: gcc -O2 -Wall -o zcuring zcuring.c -luring
 * Prints one line: mode=... size=... sends_per_s=... cpu_s=... completions=... copied=...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* include/uapi/linux/io_uring.h (6.2); older liburing headers lack them. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
#define DEPTH 64
#define MAX_PENDING 512

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	const char *dst = NULL, *iface = NULL;
	int port = 9, size = 1472, gso = 0, zerocopy = 0, fixed = 0, opt;
	double seconds = 1;
	while ((opt = getopt(argc, argv, "D:p:i:s:g:zFt:")) != -1) {
		switch (opt) {
		case 'D': dst = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'i': iface = optarg; break;
		case 's': size = atoi(optarg); break;
		case 'g': gso = atoi(optarg); break;
		case 'z': zerocopy = 1; break;
		case 'F': fixed = 1; break;
		case 't': seconds = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!dst || !iface || size <= 0) {
usage:
		fprintf(stderr, "usage: %s -D addr [-p port] -i iface -s size [-g gso] [-z] [-F] [-t s]\n",
			argv[0]);
		return 2;
	}
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, dst, &sin.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", dst);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, strlen(iface)) ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		perror("socket");
		return 1;
	}
	if (gso && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso, sizeof(gso))) {
		perror("UDP_SEGMENT");
		return 1;
	}
	char *buf = aligned_alloc(4096, ((size_t)size + 4095) / 4096 * 4096);
	if (!buf) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	memset(buf, 0x5a, size);
	struct io_uring ring;
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
					     IORING_SETUP_DEFER_TASKRUN,
				    .cq_entries = 1024};
	int ret = io_uring_queue_init_params(DEPTH, &ring, &p);
	if (ret == -EINVAL) {
		p.flags = IORING_SETUP_CQSIZE;
		ret = io_uring_queue_init_params(DEPTH, &ring, &p);
	}
	if (ret) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	if (fixed) {
		struct iovec iov = {.iov_base = buf, .iov_len = size};
		ret = io_uring_register_buffers(&ring, &iov, 1);
		if (ret) {
			fprintf(stderr, "io_uring_register_buffers: %s\n", strerror(-ret));
			return 1;
		}
	}
	unsigned long long sends = 0, bytes = 0, inflight = 0, expected = 0, notifs = 0,
			   copied = 0, errors = 0;
	struct __kernel_timespec wait = {.tv_sec = 0, .tv_nsec = 100000000};
	double cpu0 = cpu_s(), start = now_s(), end = start + seconds, t;
	for (;;) {
		unsigned long long pending = inflight + (zerocopy ? expected - notifs : 0);
		while (inflight < DEPTH && pending < MAX_PENDING) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (!sqe)
				break;
			if (zerocopy && fixed)
				io_uring_prep_send_zc_fixed(sqe, fd, buf, size, MSG_NOSIGNAL,
							    IORING_SEND_ZC_REPORT_USAGE, 0);
			else if (zerocopy)
				io_uring_prep_send_zc(sqe, fd, buf, size, MSG_NOSIGNAL,
						      IORING_SEND_ZC_REPORT_USAGE);
			else
				io_uring_prep_send(sqe, fd, buf, size, MSG_NOSIGNAL);
			sqe->user_data = 1;
			inflight++;
			pending++;
		}
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &wait, NULL);
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			if (cqe->flags & IORING_CQE_F_NOTIF) {
				notifs++;
				if ((unsigned)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
					copied++;
				continue;
			}
			inflight--;
			if (cqe->flags & IORING_CQE_F_MORE)
				expected++;
			if (cqe->res >= 0) {
				sends++;
				bytes += cqe->res;
			} else {
				errors++;
			}
		}
		io_uring_cq_advance(&ring, n);
		if ((t = now_s()) >= end)
			break;
	}
	/* The sends in flight belong to the phase. */
	while (inflight > 0 && now_s() < t + 1) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe_timeout(&ring, &cqe, &wait))
			continue;
		if (!(cqe->flags & IORING_CQE_F_NOTIF)) {
			inflight--;
			if (cqe->flags & IORING_CQE_F_MORE)
				expected++;
			if (cqe->res >= 0) {
				sends++;
				bytes += cqe->res;
			}
		} else {
			notifs++;
			if ((unsigned)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
				copied++;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	double elapsed = now_s() - start, cpu = cpu_s() - cpu0;
	double grace = now_s() + 0.2;
	while (notifs < expected && now_s() < grace) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe_timeout(&ring, &cqe, &wait))
			continue;
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			notifs++;
			if ((unsigned)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
				copied++;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	printf("mode=%s size=%d gso=%d seconds=%.3f sends=%llu bytes=%llu sends_per_s=%.0f "
	       "bytes_per_s=%.0f cpu_s=%.3f completions=%llu copied=%llu records=%llu "
	       "enobufs=0 errors=%llu\n",
	       zerocopy ? "zerocopy" : "copy", size, gso, elapsed, sends, bytes, sends / elapsed,
	       bytes / elapsed, cpu, notifs, copied, notifs, errors);
	io_uring_queue_exit(&ring);
	return 0;
}
