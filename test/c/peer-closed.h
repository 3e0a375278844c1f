/*
 * peer-closed.h -- for the test programs that speak to a server's setup
 * socket without libqb (hostile.c, fuzz.c): has the server closed it?
 */
#ifndef QBIPC_TEST_PEER_CLOSED_H
#define QBIPC_TEST_PEER_CLOSED_H

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * 1 when the peer has closed fd (EOF, reset or HUP), waiting up to wait_ms
 * for something to happen; 0 while it is open. Drains what is readable (the
 * server's doorbell bytes), so a later call sees only what came since.
 */
static int peer_closed(int fd, int wait_ms)
{
	struct pollfd p = { fd, POLLIN | POLLRDHUP, 0 };
	char junk[4096];

	if (poll(&p, 1, wait_ms) <= 0) {
		return 0;
	}
	if (p.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP)) {
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);

		if (n == 0) {
			return 1;
		}
		if (n < 0) {
			return errno != EAGAIN && errno != EINTR;
		}
	}
}

#endif
