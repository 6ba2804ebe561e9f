// SPDX-License-Identifier: GPL-2.0
/*
 * mmuvisor helper module: the interval notifier callback and the event
 * stream it feeds (read/poll).
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include "mmv.h"

static u32 mmv_event_kind(enum mmu_notifier_event ev)
{
	switch (ev) {
	case MMU_NOTIFY_UNMAP:		return MMUVISOR_EV_UNMAP;
	case MMU_NOTIFY_CLEAR:		return MMUVISOR_EV_CLEAR;
	case MMU_NOTIFY_PROTECTION_VMA:	return MMUVISOR_EV_PROTECTION_VMA;
	case MMU_NOTIFY_PROTECTION_PAGE: return MMUVISOR_EV_PROTECTION_PAGE;
	case MMU_NOTIFY_SOFT_DIRTY:	return MMUVISOR_EV_SOFT_DIRTY;
	case MMU_NOTIFY_RELEASE:	return MMUVISOR_EV_RELEASE;
	case MMU_NOTIFY_MIGRATE:	return MMUVISOR_EV_MIGRATE;
	case MMU_NOTIFY_EXCLUSIVE:	return MMUVISOR_EV_EXCLUSIVE;
	default:			return MMUVISOR_EV_OTHER;
	}
}

#define MMV_RING_MASK (MMUVISOR_RING_CAPACITY - 1)

static struct mmuvisor_event *mmv_slot(struct mmv_ctx *ctx, u64 idx)
{
	return &ctx->ring[idx & MMV_RING_MASK];
}

static bool mmv_own_exclusive(const struct mmuvisor_event *ev)
{
	return ev->event == MMUVISOR_EV_EXCLUSIVE && (ev->flags & MMUVISOR_EVENT_F_OWNER_SELF);
}

/*
 * Queue one record under ev_lock; never blocks. Records fill the ring up to
 * one slot short of full; that last slot takes the OVERFLOW record that
 * counts what did not fit, so the loss is always in the stream. Returns
 * the poll bits to wake readers with, 0 for none.
 */
static __poll_t mmv_event_queue(struct mmv_ctx *ctx, struct mmuvisor_event *ev)
{
	u64 used = ctx->ev_tail - ctx->ev_head;
	struct mmuvisor_event *last = used ? mmv_slot(ctx, ctx->ev_tail - 1) : NULL;

	ctx->ev_seen++;
	if (mmv_own_exclusive(ev)) {
		if (ctx->ev_flags & MMUVISOR_ATTACH_OMIT_OWN)
			return 0;
		if ((ctx->ev_flags & MMUVISOR_ATTACH_COALESCE_OWN) && last &&
		    mmv_own_exclusive(last) && last->end == ev->start &&
		    last->count < U32_MAX) {
			last->end = ev->end;
			last->count++;
			ctx->ev_seq++;
			return EPOLLIN | EPOLLRDNORM;
		}
	}
	/* Timestamps taken in the lock that orders seq never go backwards. */
	ev->time_ns = ktime_get_ns();
	if (used >= MMUVISOR_RING_CAPACITY - 1) {
		ctx->ev_dropped++;
		ctx->ev_seq++;
		if (last && last->event == MMUVISOR_EV_OVERFLOW && last->count < U32_MAX) {
			last->count++;
			return 0;
		}
		if (used == MMUVISOR_RING_CAPACITY)
			return 0;	/* cannot happen: the last slot is a marker */
		ev->event = MMUVISOR_EV_OVERFLOW;
		ev->flags = 0;
		ev->start = ev->end = 0;
		ev->revoked = 0;
		ev->seq = ctx->ev_seq - 1;
		ev->count = 1;
		*mmv_slot(ctx, ctx->ev_tail++) = *ev;
		ctx->ev_marker = ctx->ev_tail;
		return EPOLLIN | EPOLLRDNORM | EPOLLPRI | EPOLLRDBAND;
	}
	ev->seq = ctx->ev_seq++;
	ev->count = 1;
	*mmv_slot(ctx, ctx->ev_tail++) = *ev;
	return EPOLLIN | EPOLLRDNORM;
}

static void mmv_event_push(struct mmv_ctx *ctx, struct mmuvisor_event *ev, bool eof)
{
	__poll_t wake;

	spin_lock(&ctx->ev_lock);
	wake = ctx->ring ? mmv_event_queue(ctx, ev) : 0;
	if (eof) {
		ctx->ev_eof = true;
		wake |= EPOLLHUP;
	}
	spin_unlock(&ctx->ev_lock);
	if (wake)
		wake_up_interruptible_poll(&ctx->ev_wait, wake);
}

static void mmv_note_duration(struct mmv_ctx *ctx, u64 t0)
{
	u64 dt = ktime_get_ns() - t0;
	s64 max = atomic64_read(&ctx->revoke_max_ns);

	while (dt > max && !atomic64_try_cmpxchg(&ctx->revoke_max_ns, &max, dt))
		;
}

/*
 * Called for every invalidation intersecting the attached range, possibly
 * non-blockable (OOM reaper): takes only spinlocks, so it always succeeds.
 * Our own MMU_NOTIFY_EXCLUSIVE (the conversion make_device_exclusive() does
 * for this context) is recorded but neither revokes nor bumps the sequence:
 * doing so would make every install retry forever.
 */
static bool mmv_invalidate(struct mmu_interval_notifier *mni,
			   const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	struct mmv_ctx *ctx = container_of(mni, struct mmv_ctx, notifier);
	struct mmuvisor_event ev = {
		.start = range->start,
		.end = range->end,
		.event = mmv_event_kind(range->event),
	};
	bool own = range->owner == ctx;

	if (own)
		ev.flags |= MMUVISOR_EVENT_F_OWNER_SELF;
	if (range->owner)
		ev.flags |= MMUVISOR_EVENT_F_OWNER_SET;
	if (mmu_notifier_range_blockable(range))
		ev.flags |= MMUVISOR_EVENT_F_BLOCKABLE;

	if (!(own && range->event == MMU_NOTIFY_EXCLUSIVE)) {
		u64 t0;

		mmv_dev_lock(ctx);
		t0 = ktime_get_ns();
		mmu_interval_set_seq(mni, cur_seq);
		ev.revoked = mmv_revoke_locked(ctx, max(range->start, ctx->start),
					       min(range->end, ctx->end));
		mmv_note_duration(ctx, t0);
		mmv_dev_unlock(ctx);
	}
	/* The mm is going away: nothing more will come after this record. */
	mmv_event_push(ctx, &ev, range->event == MMU_NOTIFY_RELEASE);
	return true;
}

const struct mmu_interval_notifier_ops mmv_mni_ops = {
	.invalidate = mmv_invalidate,
};

void mmv_events_init(struct mmv_ctx *ctx)
{
	spin_lock_init(&ctx->ev_lock);
	init_waitqueue_head(&ctx->ev_wait);
}

/* At ATTACH (attach_sem held for write): the ring, charged to the caller. */
int mmv_events_attach(struct mmv_ctx *ctx, u32 flags)
{
	struct mmuvisor_event *ring = NULL;

	if (!ctx->ring) {
		/* vmalloc: kmalloc would round 192 KiB up to 256 KiB. */
		ring = __vmalloc(array_size(MMUVISOR_RING_CAPACITY, sizeof(*ring)),
				 GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		if (!ring)
			return -ENOMEM;
	}
	spin_lock(&ctx->ev_lock);
	if (ring)
		ctx->ring = ring;
	ctx->ev_flags = flags;
	ctx->ev_eof = false;
	spin_unlock(&ctx->ev_lock);
	return 0;
}

/* At DETACH: readers get the rest, then end of file. */
void mmv_events_detach(struct mmv_ctx *ctx)
{
	spin_lock(&ctx->ev_lock);
	ctx->ev_eof = true;
	spin_unlock(&ctx->ev_lock);
	wake_up_interruptible_poll(&ctx->ev_wait, EPOLLHUP);
}

void mmv_events_fini(struct mmv_ctx *ctx)
{
	vfree(ctx->ring);
	ctx->ring = NULL;
}

void mmv_events_stats(struct mmv_ctx *ctx, struct mmuvisor_stats *st)
{
	spin_lock(&ctx->ev_lock);
	st->events_seen = ctx->ev_seen;
	st->events_dropped = ctx->ev_dropped;
	st->events_queued = ctx->ev_tail - ctx->ev_head;
	spin_unlock(&ctx->ev_lock);
	st->revoke_max_ns = atomic64_read(&ctx->revoke_max_ns);
}

/* Records a reader takes per ev_lock hold (copied out after unlocking). */
#define MMV_READ_BATCH 8

/*
 * Whole records only. A reader takes records out of the ring into a
 * bounce buffer under ev_lock and copies them to user space after
 * unlocking (a fault in copy_to_user may itself invalidate and queue an
 * event). No mutex: an O_NONBLOCK reader never sleeps.
 */
ssize_t mmv_read(struct file *file, char __user *buf, size_t count, loff_t *pos)
{
	struct mmuvisor_event bounce[MMV_READ_BATCH];
	struct mmv_ctx *ctx = file->private_data;
	const size_t rec = sizeof(struct mmuvisor_event);
	size_t want = count / rec, done = 0;
	bool eof;
	u64 n, i;
	int ret;

	if (!want)
		return -EINVAL;
	for (;;) {
		spin_lock(&ctx->ev_lock);
		n = ctx->ev_tail - ctx->ev_head;
		eof = ctx->ev_eof;
		spin_unlock(&ctx->ev_lock);
		if (n)
			break;
		if (eof)
			return 0;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(ctx->ev_wait,
					       READ_ONCE(ctx->ev_tail) != READ_ONCE(ctx->ev_head) ||
					       READ_ONCE(ctx->ev_eof));
		if (ret)
			return ret;
	}
	while (done < want) {
		spin_lock(&ctx->ev_lock);
		n = min3((u64)(want - done), ctx->ev_tail - ctx->ev_head,
			 (u64)MMV_READ_BATCH);
		for (i = 0; i < n; i++)
			bounce[i] = *mmv_slot(ctx, ctx->ev_head + i);
		ctx->ev_head += n;
		spin_unlock(&ctx->ev_lock);
		if (!n)
			break;
		if (copy_to_user(buf + done * rec, bounce, n * rec)) {
			spin_lock(&ctx->ev_lock);
			ctx->ev_dropped += n;
			spin_unlock(&ctx->ev_lock);
			return done ? (ssize_t)(done * rec) : -EFAULT;
		}
		done += n;
	}
	return done * rec;
}

__poll_t mmv_poll(struct file *file, struct poll_table_struct *wait)
{
	struct mmv_ctx *ctx = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &ctx->ev_wait, wait);
	spin_lock(&ctx->ev_lock);
	if (ctx->ev_tail != ctx->ev_head)
		mask |= EPOLLIN | EPOLLRDNORM;
	else if (ctx->ev_eof)
		mask |= EPOLLHUP;
	if (ctx->ev_marker > ctx->ev_head)
		mask |= EPOLLPRI | EPOLLRDBAND;
	spin_unlock(&ctx->ev_lock);
	return mask;
}
