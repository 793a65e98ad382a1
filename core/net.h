/*
 * net.h: what the channels' listening sockets share.
 */
#ifndef SB_NET_H
#define SB_NET_H

#include <errno.h>
#include <sys/socket.h>

struct sb_loop;

/* accept4() on listening socket lfd, which loop watches: non-blocking,
 * close-on-exec.  Out of descriptors (or of kernel memory for one), the
 * connection stays in the backlog and lfd stays readable: the loop stops
 * watching it for SB_ACCEPT_PAUSE_MS (sb_loop_pause_fd), and who (with
 * name, if not NULL) is named in a warning at most once a minute.  Returns the new descriptor, or -1
 * with errno set; SB_ACCEPT_STARVED(errno) when it paused. */
#define SB_ACCEPT_PAUSE_MS	100
#define SB_ACCEPT_STARVED(e)	((e) == EMFILE || (e) == ENFILE || (e) == ENOBUFS || (e) == ENOMEM)
int sb_accept(struct sb_loop *, int lfd, struct sockaddr *, socklen_t *, const char *who,
              const char *name);

#endif
