/*
 * loop.c: the core event loop.
 *
 * Owns the epoll instance, the table of watched fds, the timer heap, the
 * before-sleep hooks and the queue through which other threads hand work
 * back to the loop.  It does not own the fds it watches (their owners close
 * them) and knows nothing of what the callbacks do.  Everything here runs on
 * the loop thread except sb_loop_post() and sb_loop_stop().
 *
 * Deliberately depends on nothing but loop.h and libc, so that it can be
 * unit-tested alone; allocation failures are returned, not fatal.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "loop.h"

#define MAX_EVENTS	128	/* per epoll_wait; level-triggered, the rest wait */
#define NO_INDEX	SIZE_MAX	/* sb_timer.idx when not in the heap */

/* sb_loop_stop() relies on this to be safe in a signal handler. */
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "atomic_bool must be lock-free");

/*
 * One slot per watched fd, indexed by the fd itself.  gen is bumped each
 * time the slot is (re)registered and travels in the epoll event, so an
 * event collected for an earlier registration of the same fd number can be
 * recognised and dropped.
 */
struct fdslot {
	sb_fd_fn *fn;		/* NULL: not watched */
	void     *ud;
	unsigned  mask;
	uint32_t  gen;
	unsigned  paused;	/* sb_loop_pause_fd: the mask to restore (0: none) */
	uint64_t  resume_at;	/* ... at this sb_now_ms() */
};

struct sb_timer {
	uint64_t     when;	/* deadline, on the sb_now_ms() clock */
	uint64_t     seq;	/* breaks ties: equal deadlines fire in arming order */
	sb_timer_fn *fn;
	void        *ud;
	size_t       idx;	/* position in the heap, or NO_INDEX */
	bool         running;	/* its callback is on the stack */
	bool         cancelled;	/* deleted while running: free on return */
};

struct hook {
	sb_hook_fn *fn;		/* NULL: deleted during a run, compacted after */
	void       *ud;
};

struct task {
	struct task *next;
	sb_task_fn  *fn;
	void        *ud;
};

struct sb_loop {
	int             epfd;
	int             wakefd;		/* eventfd: posts and stops wake the loop */
	atomic_bool     stopping;
	bool            in_once;

	struct fdslot  *fds;
	size_t          nfds;		/* slots allocated, not fds watched */

	struct sb_timer **heap;		/* binary min-heap on (when, seq) */
	size_t          nheap, heapcap;
	uint64_t        timer_seq;

	struct sb_timer *resume;	/* for the paused fds */

	struct hook    *hooks;
	size_t          nhooks, hookcap;
	bool            in_hooks, hooks_dirty;

	pthread_mutex_t lock;		/* guards head and tail only */
	struct task    *head, *tail;

	/* Held by the loop thread inside sb_loop_once() except while it
	 * waits in epoll_wait(), when sleeping says so: then another thread
	 * may run a task itself (sb_loop_try_run). */
	pthread_mutex_t core;
	bool            sleeping;
	bool            elsewhere;	/* a task runs on another thread now */
	uint64_t        slept_at;	/* us, when it last went to sleep */

	struct epoll_event events[MAX_EVENTS];
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
sb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- file descriptors ---- */

static int
grow_fds(struct sb_loop *loop, int fd)
{
	size_t n = loop->nfds ? loop->nfds : 64;
	struct fdslot *p;

	if ((size_t)fd < loop->nfds)
		return 0;
	while (n <= (size_t)fd)
		n *= 2;
	p = realloc(loop->fds, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + loop->nfds, 0, (n - loop->nfds) * sizeof(*p));
	loop->fds = p;
	loop->nfds = n;
	return 0;
}

/* Tell epoll about the slot's current mask and generation. */
static int
ctl(struct sb_loop *loop, int op, int fd)
{
	const struct fdslot *s = &loop->fds[fd];
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	if (s->mask & SB_READ)
		ev.events |= EPOLLIN;
	if (s->mask & SB_WRITE)
		ev.events |= EPOLLOUT;
	ev.data.u64 = (uint64_t)s->gen << 32 | (uint32_t)fd;
	return epoll_ctl(loop->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int
sb_loop_add_fd(struct sb_loop *loop, int fd, unsigned mask, sb_fd_fn *fn, void *ud)
{
	struct fdslot *s;
	int err;

	if (fd < 0)
		return -EBADF;
	if (!fn || (mask & ~(SB_READ | SB_WRITE)))
		return -EINVAL;
	if ((err = grow_fds(loop, fd)))
		return err;
	s = &loop->fds[fd];
	if (s->fn)
		return -EEXIST;
	s->mask = mask;
	s->paused = 0;
	s->gen++;
	if ((err = ctl(loop, EPOLL_CTL_ADD, fd)))
		return err;	/* slot stays free: fn is still NULL */
	s->fn = fn;
	s->ud = ud;
	return 0;
}

/* The slot of a watched fd, or NULL. */
static struct fdslot *
watched(struct sb_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].fn)
		return NULL;
	return &loop->fds[fd];
}

/* Give the slot of fd a new mask and tell epoll; 0, or the error with the
 * old mask kept. */
static int
set_mask(struct sb_loop *loop, struct fdslot *s, int fd, unsigned mask)
{
	unsigned old = s->mask;
	int err;

	s->mask = mask;
	if ((err = ctl(loop, EPOLL_CTL_MOD, fd)))
		s->mask = old;
	return err;
}

int
sb_loop_mod_fd(struct sb_loop *loop, int fd, unsigned mask)
{
	struct fdslot *s = watched(loop, fd);
	int err;

	if (s == NULL)
		return -ENOENT;
	if (mask & ~(SB_READ | SB_WRITE))
		return -EINVAL;
	if ((err = set_mask(loop, s, fd, mask)) == 0)
		s->paused = 0;	/* the owner's say ends a pause */
	return err;
}

static long
resume_fds(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	uint64_t now = sb_now_ms(), next = 0;

	(void)t;
	(void)ud;
	for (size_t fd = 0; fd < loop->nfds; fd++) {
		struct fdslot *s = &loop->fds[fd];

		if (!s->fn || !s->paused)
			continue;
		if (s->resume_at > now) {
			if (next == 0 || s->resume_at < next)
				next = s->resume_at;
			continue;
		}
		/* A watched fd's MOD cannot fail; if it did, it stays quiet. */
		(void)set_mask(loop, s, (int)fd, s->paused);
		s->paused = 0;
	}
	if (next)
		return (long)(next - now);
	loop->resume = NULL;
	return SB_TIMER_STOP;
}

int
sb_loop_pause_fd(struct sb_loop *loop, int fd, long ms)
{
	struct fdslot *s = watched(loop, fd);
	unsigned mask;
	int err;

	if (s == NULL)
		return -ENOENT;
	if (s->paused || s->mask == 0)
		return 0;	/* paused already, or nothing to pause */
	if (loop->resume == NULL &&
	    (loop->resume = sb_loop_add_timer(loop, ms, resume_fds, NULL)) == NULL)
		return -ENOMEM;
	mask = s->mask;
	if ((err = set_mask(loop, s, fd, 0)))
		return err;
	s->paused = mask;
	s->resume_at = sb_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
	return 0;
}

void
sb_loop_del_fd(struct sb_loop *loop, int fd)
{
	struct fdslot *s = watched(loop, fd);

	if (s == NULL)
		return;
	/* Errors are ignored: if the owner already closed the fd, the kernel
	 * dropped it from the epoll set with its last reference. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	s->fn = NULL;
	s->ud = NULL;
	s->mask = 0;
	s->paused = 0;
}

static void
dispatch_fd(struct sb_loop *loop, const struct epoll_event *ev)
{
	int fd = (int)(uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	const struct fdslot *s;
	unsigned mask = 0;

	if ((size_t)fd >= loop->nfds)
		return;
	s = &loop->fds[fd];
	/* An earlier callback in this batch may have deleted the fd, or
	 * deleted it and added it again with another callback: either way
	 * this event belongs to a registration that no longer exists. */
	if (!s->fn || s->gen != gen)
		return;
	/* The mask may also have been narrowed by sb_loop_mod_fd since. */
	if ((ev->events & EPOLLIN) && (s->mask & SB_READ))
		mask |= SB_READ;
	if ((ev->events & EPOLLOUT) && (s->mask & SB_WRITE))
		mask |= SB_WRITE;
	/* Errors are reported whatever the interest: epoll reports them
	 * regardless, and a callback that never heard of one would leave a
	 * level-triggered fd spinning the loop. */
	if (ev->events & (EPOLLERR | EPOLLHUP))
		mask |= SB_READ;
	if (mask)
		s->fn(loop, fd, mask, s->ud);
}

/* ---- timers ---- */

static bool
before(const struct sb_timer *a, const struct sb_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
heap_set(struct sb_loop *loop, size_t i, struct sb_timer *t)
{
	loop->heap[i] = t;
	t->idx = i;
}

static void
sift_up(struct sb_loop *loop, size_t i)
{
	struct sb_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!before(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void
sift_down(struct sb_loop *loop, size_t i)
{
	struct sb_timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!before(loop->heap[c], t))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

static void
heap_remove(struct sb_loop *loop, struct sb_timer *t)
{
	size_t i = t->idx;
	struct sb_timer *last = loop->heap[--loop->nheap];

	t->idx = NO_INDEX;
	if (last == t)
		return;
	/* The last element may belong above or below the hole. */
	heap_set(loop, i, last);
	if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
		sift_up(loop, i);
	else
		sift_down(loop, i);
}

static void
arm(struct sb_loop *loop, struct sb_timer *t, long ms)
{
	t->when = sb_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
	t->seq = loop->timer_seq++;
}

struct sb_timer *
sb_loop_add_timer(struct sb_loop *loop, long ms, sb_timer_fn *fn, void *ud)
{
	struct sb_timer *t;

	if (!fn)
		return NULL;
	if (loop->nheap == loop->heapcap) {
		size_t cap = loop->heapcap ? 2 * loop->heapcap : 16;
		struct sb_timer **h = realloc(loop->heap, cap * sizeof(*h));

		if (!h)
			return NULL;
		loop->heap = h;
		loop->heapcap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->fn = fn;
	t->ud = ud;
	arm(loop, t, ms);
	heap_set(loop, loop->nheap++, t);
	sift_up(loop, t->idx);
	return t;
}

void
sb_loop_del_timer(struct sb_loop *loop, struct sb_timer *t)
{
	if (!t || t->cancelled)
		return;
	if (t->idx != NO_INDEX)
		heap_remove(loop, t);
	if (t->running)
		t->cancelled = true;	/* run_timers frees it on return */
	else
		free(t);
}

/*
 * Fire the timers that were due when this pass began.  A running timer
 * stays in the heap (at the top: nothing armed during its callback can sort
 * before it), so re-arming it needs no allocation and cannot fail.
 *
 * The pass ends at the first timer armed after it began (seq >= limit):
 * otherwise a timer that keeps returning 0, or a callback that keeps adding
 * 0 ms timers, would keep the loop here forever and starve the fds.  Such a
 * timer always sorts after every timer that was already due, since it was
 * armed no earlier than now.
 */
static void
run_timers(struct sb_loop *loop)
{
	uint64_t now = sb_now_ms();
	uint64_t limit = loop->timer_seq;

	while (loop->nheap > 0) {
		struct sb_timer *t = loop->heap[0];
		long next;

		if (t->when > now || t->seq >= limit)
			break;
		t->running = true;
		next = t->fn(loop, t, t->ud);
		t->running = false;
		if (t->cancelled) {
			free(t);	/* already out of the heap */
		} else if (next < 0) {
			heap_remove(loop, t);
			free(t);
		} else {
			arm(loop, t, next);
			sift_down(loop, t->idx);	/* its key only grew */
		}
	}
}

/* ms until the earliest timer, capped by timeout_ms (-1: no cap). */
static int
wait_ms(struct sb_loop *loop, long timeout_ms)
{
	long wait = timeout_ms < 0 ? -1 : timeout_ms;

	if (loop->nheap > 0) {
		uint64_t now = sb_now_ms(), when = loop->heap[0]->when;
		uint64_t left = when > now ? when - now : 0;

		if (wait < 0 || left < (uint64_t)wait)
			wait = left > INT_MAX ? INT_MAX : (long)left;
	}
	return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* ---- before-sleep hooks ---- */

int
sb_loop_add_before_sleep(struct sb_loop *loop, sb_hook_fn *fn, void *ud)
{
	if (!fn)
		return -EINVAL;
	if (loop->nhooks == loop->hookcap) {
		size_t cap = loop->hookcap ? 2 * loop->hookcap : 4;
		struct hook *h = realloc(loop->hooks, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		loop->hooks = h;
		loop->hookcap = cap;
	}
	loop->hooks[loop->nhooks].fn = fn;
	loop->hooks[loop->nhooks].ud = ud;
	loop->nhooks++;
	return 0;
}

static void
compact_hooks(struct sb_loop *loop)
{
	size_t i, n = 0;

	for (i = 0; i < loop->nhooks; i++)
		if (loop->hooks[i].fn)
			loop->hooks[n++] = loop->hooks[i];
	loop->nhooks = n;
	loop->hooks_dirty = false;
}

/* Removes the first hook added with this fn and ud. */
void
sb_loop_del_before_sleep(struct sb_loop *loop, sb_hook_fn *fn, void *ud)
{
	size_t i;

	for (i = 0; i < loop->nhooks; i++) {
		struct hook *h = &loop->hooks[i];

		if (h->fn != fn || h->ud != ud)
			continue;
		/* While the hooks run, shifting the array would make the
		 * runner skip one; leave a hole and close it afterwards. */
		h->fn = NULL;
		h->ud = NULL;
		if (loop->in_hooks)
			loop->hooks_dirty = true;
		else
			compact_hooks(loop);
		return;
	}
}

static void
run_hooks(struct sb_loop *loop)
{
	size_t i, n = loop->nhooks;	/* hooks added now first run next time */

	loop->in_hooks = true;
	for (i = 0; i < n; i++) {
		/* Re-read each time: a hook may grow (move) the array. */
		sb_hook_fn *fn = loop->hooks[i].fn;

		if (fn)
			fn(loop, loop->hooks[i].ud);
	}
	loop->in_hooks = false;
	if (loop->hooks_dirty)
		compact_hooks(loop);
}

/* ---- hand-off queue ---- */

/* Async-signal-safe, so that sb_loop_stop() may be called from a handler. */
static void
wake(struct sb_loop *loop)
{
	uint64_t one = 1;
	int saved = errno;
	ssize_t n;

	/* EAGAIN means the counter is full: the loop is awake anyway. */
	n = write(loop->wakefd, &one, sizeof(one));
	(void)n;
	errno = saved;
}

int
sb_loop_post(struct sb_loop *loop, sb_task_fn *fn, void *ud)
{
	struct task *t;
	bool was_empty;

	if (!fn)
		return -EINVAL;
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->next = NULL;
	t->fn = fn;
	t->ud = ud;
	pthread_mutex_lock(&loop->lock);
	was_empty = !loop->head;
	if (loop->tail)
		loop->tail->next = t;
	else
		loop->head = t;
	loop->tail = t;
	pthread_mutex_unlock(&loop->lock);
	/* A non-empty queue has a wake-up on its way already: whoever made
	 * it non-empty wrote one, and the loop empties it only after reading
	 * the eventfd (see drain_tasks). */
	if (was_empty)
		wake(loop);
	return 0;
}

/*
 * The eventfd's callback.  The counter is read before the list is taken:
 * a post that lands after the swap finds the list empty and writes the
 * eventfd again, so no task is left waiting for a wake-up already consumed.
 * Tasks posted by these tasks run on the next iteration, not in this one.
 */
static void
drain_tasks(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	struct task *t, *next;
	uint64_t count;
	ssize_t n;

	(void)mask;
	(void)ud;
	do
		n = read(fd, &count, sizeof(count));
	while (n < 0 && errno == EINTR);

	pthread_mutex_lock(&loop->lock);
	t = loop->head;
	loop->head = loop->tail = NULL;
	pthread_mutex_unlock(&loop->lock);

	for (; t; t = next) {
		sb_task_fn *fn = t->fn;
		void *tud = t->ud;

		next = t->next;
		free(t);
		fn(tud);
	}
}

/*
 * Run fn(ud) here and now if the loop thread is asleep in epoll_wait() with
 * nothing posted: what it would have done after a wake-up, without the two
 * thread switches a round trip through the loop costs (a chat command's
 * answer waits for both).  The loop thread, should it wake meanwhile,
 * waits for the lock.  Anything posted earlier and not yet run keeps its
 * turn: then nothing runs here; so does a loop asleep for less than
 * min_idle_us (in a burst, the two threads working side by side do more
 * than one doing both).  Returns 1 if fn ran; then the caller calls
 * sb_loop_wake() once it has done its own urgent work, so that the loop
 * runs its before-sleep hooks and sees the timers fn may have added.
 */
int
sb_loop_try_run(struct sb_loop *loop, long min_idle_us, sb_task_fn *fn, void *ud)
{
	bool idle;

	if (pthread_mutex_trylock(&loop->core) != 0)
		return 0;
	pthread_mutex_lock(&loop->lock);
	idle = loop->sleeping && loop->head == NULL && !atomic_load(&loop->stopping) &&
	    now_us() - loop->slept_at >= (uint64_t)min_idle_us;
	pthread_mutex_unlock(&loop->lock);
	if (idle) {
		loop->elsewhere = true;
		fn(ud);
		loop->elsewhere = false;
	}
	pthread_mutex_unlock(&loop->core);
	return idle;
}

bool
sb_loop_elsewhere(struct sb_loop *loop)
{
	return loop->elsewhere;
}

void
sb_loop_wake(struct sb_loop *loop)
{
	wake(loop);
}

void
sb_loop_run_posted(struct sb_loop *loop)
{
	drain_tasks(loop, loop->wakefd, SB_READ, NULL);
}

void
sb_loop_run_due(struct sb_loop *loop)
{
	if (loop->in_once)
		return;
	pthread_mutex_lock(&loop->core);
	loop->in_once = true;
	run_timers(loop);
	loop->in_once = false;
	pthread_mutex_unlock(&loop->core);
}

/* ---- the loop ---- */

struct sb_loop *
sb_loop_new(void)
{
	struct sb_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = loop->wakefd = -1;
	atomic_init(&loop->stopping, false);
	if (pthread_mutex_init(&loop->lock, NULL)) {
		free(loop);
		return NULL;
	}
	if (pthread_mutex_init(&loop->core, NULL)) {
		pthread_mutex_destroy(&loop->lock);
		free(loop);
		return NULL;
	}
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wakefd < 0 ||
	    sb_loop_add_fd(loop, loop->wakefd, SB_READ, drain_tasks, NULL)) {
		sb_loop_free(loop);
		return NULL;
	}
	return loop;
}

/* Not from inside a callback of this loop. */
void
sb_loop_free(struct sb_loop *loop)
{
	struct task *t, *next;
	size_t i;

	if (!loop)
		return;
	for (i = 0; i < loop->nheap; i++)
		free(loop->heap[i]);
	free(loop->heap);
	free(loop->hooks);
	free(loop->fds);
	for (t = loop->head; t; t = next) {
		next = t->next;
		free(t);	/* never run: its ud is the poster's to reclaim */
	}
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->lock);
	pthread_mutex_destroy(&loop->core);
	free(loop);
}

/*
 * Returns 0, or a negative errno if epoll_wait failed for a reason other
 * than a signal (which means a bug), or -EBUSY if called from inside one of
 * this loop's callbacks: the loop is not re-entrant.
 */
int
sb_loop_once(struct sb_loop *loop, long timeout_ms)
{
	int i, n;
	long wait;

	if (loop->in_once)
		return -EBUSY;
	pthread_mutex_lock(&loop->core);
	loop->in_once = true;
	run_hooks(loop);
	/* Computed after the hooks, which may add timers. */
	wait = wait_ms(loop, timeout_ms);
	loop->slept_at = now_us();
	loop->sleeping = true;
	pthread_mutex_unlock(&loop->core);
	n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, wait);
	pthread_mutex_lock(&loop->core);
	loop->sleeping = false;
	if (n < 0) {
		if (errno != EINTR) {
			int err = -errno;

			loop->in_once = false;
			pthread_mutex_unlock(&loop->core);
			return err;
		}
		n = 0;	/* a signal: still fire whatever timers are due */
	}
	for (i = 0; i < n; i++)
		dispatch_fd(loop, &loop->events[i]);
	run_timers(loop);
	loop->in_once = false;
	pthread_mutex_unlock(&loop->core);
	return 0;
}

/*
 * Returns 0 once stopped; an error from sb_loop_once ends it early.  A stop
 * requested while the loop was not running ends the next run at once, so a
 * signal that arrives during start-up is not lost.
 */
int
sb_loop_run(struct sb_loop *loop)
{
	int err = 0;

	while (!err && !atomic_exchange(&loop->stopping, false))
		err = sb_loop_once(loop, -1);
	return err;
}

/*
 * Safe from any callback, from another thread and from a signal handler:
 * it only sets a lock-free flag and writes the eventfd, so a loop asleep in
 * epoll_wait wakes up to see the flag.
 */
void
sb_loop_stop(struct sb_loop *loop)
{
	atomic_store(&loop->stopping, true);
	wake(loop);
}
