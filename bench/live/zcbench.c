// zcbench: the minimal UDP sendmsg loop zcdoctor's live probe is measured against.
//
// One connected UDP socket with SO_ZEROCOPY, bound to a device, sending the same buffer for a
// fixed time, with or without MSG_ZEROCOPY (and optionally UDP_SEGMENT). Same policy as the
// probe, so the comparison measures the implementation, not the strategy: page-aligned buffer
// filled once, the clock read every 16 sends, the error queue read every 32 zerocopy sends
// (only while a completion is outstanding), ENOBUFS answered by reading completions, a 200 ms
// grace period for the last completions.
//
// Build: gcc -O2 -Wall -Wextra -o /tmp/zcbench zcbench.c
// Usage: zcbench -D 198.18.0.2 [-p 9] -i ifbz -s 1472 [-g 1472] [-z] [-t 2]
// Prints one line of key=value pairs.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define CHECK_EVERY 16
#define DRAIN_EVERY 32

static uint64_t completions, copied, records;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 + ru.ru_utime.tv_sec +
	       ru.ru_utime.tv_usec / 1e6;
}

// Reads one error-queue record; 0 when the queue is empty.
static int read_one(int fd)
{
	char control[128] __attribute__((aligned(8)));
	struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
	struct cmsghdr *cm;

	if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
		return 0;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		struct sock_extended_err ee;
		if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
		      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
			continue;
		memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
		if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee.ee_errno)
			continue;
		uint64_t n = (uint64_t)(ee.ee_data - ee.ee_info) + 1;
		completions += n;
		if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
			copied += n;
		records++;
	}
	return 1;
}

static int drain(int fd, uint64_t sent)
{
	int any = 0;
	while (completions < sent && read_one(fd))
		any = 1;
	return any;
}

static void wait_err(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = 0 };
	poll(&pfd, 1, ms);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s -D addr [-p port] -i iface -s size [-g gso] [-z] [-t seconds]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dst = NULL, *iface = NULL;
	int port = 9, size = 0, gso = 0, zerocopy = 0, c;
	double seconds = 2;

	while ((c = getopt(argc, argv, "D:p:i:s:g:zt:")) != -1) {
		switch (c) {
		case 'D': dst = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'i': iface = optarg; break;
		case 's': size = atoi(optarg); break;
		case 'g': gso = atoi(optarg); break;
		case 'z': zerocopy = 1; break;
		case 't': seconds = atof(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (!dst || !iface || size <= 0)
		usage(argv[0]);

	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, dst, &sin.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", dst);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
		perror("socket/SO_ZEROCOPY");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, strlen(iface))) {
		perror("SO_BINDTODEVICE");
		return 1;
	}
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		perror("connect");
		return 1;
	}
	if (gso && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso, sizeof(gso))) {
		perror("UDP_SEGMENT");
		return 1;
	}
	void *buf;
	if (posix_memalign(&buf, 4096, size)) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	memset(buf, 0x5a, size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int flags = MSG_NOSIGNAL | (zerocopy ? MSG_ZEROCOPY : 0);

	uint64_t sends = 0, bytes = 0, enobufs = 0, errors = 0;
	unsigned tick = 0, drain_tick = 0;
	double cpu0 = cpu_s(), start = now_s(), stop = start + seconds, end;
	for (;;) {
		ssize_t n = sendmsg(fd, &msg, flags);
		if (n >= 0) {
			sends++;
			bytes += n;
		} else if (errno == ENOBUFS && zerocopy) {
			enobufs++;
			if (!drain(fd, sends)) {
				wait_err(fd, 10);
				drain(fd, sends);
			}
		} else {
			errors++;
		}
		if (zerocopy && ++drain_tick >= DRAIN_EVERY) {
			drain_tick = 0;
			drain(fd, sends);
		}
		if (++tick >= CHECK_EVERY) {
			tick = 0;
			if ((end = now_s()) >= stop)
				break;
		}
	}
	double elapsed = end - start, cpu = cpu_s() - cpu0;
	if (zerocopy) {
		double grace = now_s() + 0.2;
		while (completions < sends && now_s() < grace) {
			drain(fd, sends);
			if (completions < sends)
				wait_err(fd, 10);
		}
	}
	printf("mode=%s size=%d gso=%d seconds=%.3f sends=%llu bytes=%llu sends_per_s=%.0f "
	       "bytes_per_s=%.0f cpu_s=%.3f completions=%llu copied=%llu records=%llu "
	       "enobufs=%llu errors=%llu\n",
	       zerocopy ? "zerocopy" : "copy", size, gso, elapsed, (unsigned long long)sends,
	       (unsigned long long)bytes, sends / elapsed, bytes / elapsed, cpu,
	       (unsigned long long)completions, (unsigned long long)copied,
	       (unsigned long long)records, (unsigned long long)enobufs,
	       (unsigned long long)errors);
	return 0;
}
