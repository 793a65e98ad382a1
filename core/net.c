/*
 * net.c: accepting on a listening socket the loop watches (see net.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "loop.h"
#include "net.h"

int
sb_accept(struct sb_loop *loop, int lfd, struct sockaddr *sa, socklen_t *len, const char *who,
          const char *name)
{
	static time_t said;	/* the loop thread's alone */
	int cfd = accept4(lfd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC), err = errno;
	time_t now;

	if (cfd >= 0 || !SB_ACCEPT_STARVED(err))
		return cfd;
	if ((now = time(NULL)) - said >= 60) {
		sb_warnx("%s%s%s: cannot accept a connection: %s; not accepting for %d ms "
		    "(said once a minute while it lasts)", who, name ? " " : "", name ? name : "",
		    strerror(err), SB_ACCEPT_PAUSE_MS);
		said = now;
	}
	sb_loop_pause_fd(loop, lfd, SB_ACCEPT_PAUSE_MS);
	errno = err;
	return -1;
}
