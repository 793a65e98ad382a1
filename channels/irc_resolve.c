/*
 * irc_resolve.c: a host name lookup off the loop, for the IRC channel.
 *
 * libircclient resolves a host name with a blocking gethostbyname() inside
 * irc_connect(), which would stall the whole daemon on a slow DNS server.
 * So chan_irc.c hands the library numeric addresses only, and a name goes
 * through here first: a detached thread runs getaddrinfo() and posts the
 * answer back to the loop with sb_loop_post().
 *
 * A lookup cannot be cancelled, only abandoned: the thread then finishes
 * on its own and posts nothing.  The flag is read and the post made under
 * one lock, so that once sb_irc_resolve_abandon() returns nothing reaches
 * the loop for that lookup.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "chan_irc.h"
#include "core.h"
#include "loop.h"
#include "util.h"

struct sb_irc_resolve {
	pthread_mutex_t lock;
	atomic_int refs;	/* the caller's and the thread's */
	int     abandoned;	/* under lock */
	sb_irc_resolved_fn *done;
	void   *ud;
	char   *host;
	char    addr[INET6_ADDRSTRLEN];
	int     family;		/* AF_INET, AF_INET6; 0: failed */
	char    err[160];
};

static void
unref(struct sb_irc_resolve *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->host);
	free(r);
}

/* On the loop: hand the answer over unless the caller gave up. */
static void
deliver(void *arg)
{
	struct sb_irc_resolve *r = arg;
	int abandoned;

	pthread_mutex_lock(&r->lock);
	abandoned = r->abandoned;
	pthread_mutex_unlock(&r->lock);
	if (!abandoned) {
		r->done(r->ud, r->addr, r->family, r->err);
		unref(r);	/* the caller's: its handle ended with done() */
	}
	unref(r);		/* the thread's */
}

static void *
lookup(void *arg)
{
	struct sb_irc_resolve *r = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	int rc, posted = 0;

	sb_thread_name("irc resolve");
	rc = getaddrinfo(r->host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(r->err, sizeof(r->err), "%s: %s", r->host, gai_strerror(rc));
	} else {
		/* IPv4 first: libircclient's IPv6 support is a build option. */
		for (int pass = 0; pass < 2 && r->family == 0; pass++) {
			int fam = pass == 0 ? AF_INET : AF_INET6;

			for (struct addrinfo *a = res; a && r->family == 0; a = a->ai_next) {
				const void *src = fam == AF_INET ?
				    (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr :
				    (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;

				if (a->ai_family == fam && inet_ntop(fam, src, r->addr, sizeof(r->addr)))
					r->family = fam;
			}
		}
		freeaddrinfo(res);
		if (r->family == 0)
			snprintf(r->err, sizeof(r->err), "%s: no address", r->host);
	}
	pthread_mutex_lock(&r->lock);
	if (!r->abandoned)
		posted = sb_loop_post(sb_core.loop, deliver, r) == 0;
	pthread_mutex_unlock(&r->lock);
	if (!posted)
		unref(r);
	return NULL;
}

struct sb_irc_resolve *
sb_irc_resolve(const char *host, sb_irc_resolved_fn *done, void *ud)
{
	struct sb_irc_resolve *r = sb_calloc(1, sizeof(*r));
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int rc;

	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->refs, 2);
	r->done = done;
	r->ud = ud;
	r->host = sb_strdup(host);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The thread takes no signals: the loop's signalfd gets them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, lookup, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		unref(r);
		unref(r);
		return NULL;
	}
	return r;
}

void
sb_irc_resolve_abandon(struct sb_irc_resolve *r)
{
	pthread_mutex_lock(&r->lock);
	r->abandoned = 1;
	pthread_mutex_unlock(&r->lock);
	unref(r);
}
