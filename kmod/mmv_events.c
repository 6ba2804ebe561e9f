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
	}
	return MMUVISOR_EV_OTHER;
}

/* Queue one record; never blocks, counts what does not fit. */
static void mmv_event_push(struct mmv_ctx *ctx, const struct mmuvisor_event *ev)
{
	struct mmuvisor_event *slot;

	spin_lock(&ctx->ev_lock);
	if (ctx->ev_tail - ctx->ev_head >= MMUVISOR_RING_CAPACITY) {
		ctx->ev_seq++;
		ctx->ev_dropped++;
		spin_unlock(&ctx->ev_lock);
		return;
	}
	slot = &ctx->ring[ctx->ev_tail & (MMUVISOR_RING_CAPACITY - 1)];
	*slot = *ev;
	slot->seq = ctx->ev_seq++;
	ctx->ev_tail++;
	spin_unlock(&ctx->ev_lock);
	wake_up_interruptible_poll(&ctx->ev_wait, EPOLLIN | EPOLLRDNORM);
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
		.time_ns = ktime_get_ns(),
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
		spin_lock(&ctx->dev_lock);
		mmu_interval_set_seq(mni, cur_seq);
		ev.revoked = mmv_revoke_locked(ctx, max(range->start, ctx->start),
					       min(range->end, ctx->end));
		spin_unlock(&ctx->dev_lock);
	}
	mmv_event_push(ctx, &ev);
	return true;
}

const struct mmu_interval_notifier_ops mmv_mni_ops = {
	.invalidate = mmv_invalidate,
};

int mmv_events_init(struct mmv_ctx *ctx)
{
	spin_lock_init(&ctx->ev_lock);
	mutex_init(&ctx->read_mutex);
	init_waitqueue_head(&ctx->ev_wait);
	ctx->ring = kvcalloc(MMUVISOR_RING_CAPACITY, sizeof(*ctx->ring),
			     GFP_KERNEL);
	return ctx->ring ? 0 : -ENOMEM;
}

void mmv_events_fini(struct mmv_ctx *ctx)
{
	kvfree(ctx->ring);
	ctx->ring = NULL;
}

void mmv_events_stats(struct mmv_ctx *ctx, struct mmuvisor_stats *st)
{
	spin_lock(&ctx->ev_lock);
	st->events_seen = ctx->ev_seq;
	st->events_dropped = ctx->ev_dropped;
	st->events_queued = ctx->ev_tail - ctx->ev_head;
	spin_unlock(&ctx->ev_lock);
}

static u64 mmv_events_ready(struct mmv_ctx *ctx)
{
	u64 n;

	spin_lock(&ctx->ev_lock);
	n = ctx->ev_tail - ctx->ev_head;
	spin_unlock(&ctx->ev_lock);
	return n;
}

/*
 * Whole records only. Records in [head, tail) are never written by
 * producers, so the single reader copies them out without the ring lock
 * (a fault in copy_to_user may itself invalidate and push an event).
 */
ssize_t mmv_read(struct file *file, char __user *buf, size_t count, loff_t *pos)
{
	struct mmv_ctx *ctx = file->private_data;
	const size_t rec = sizeof(struct mmuvisor_event);
	size_t want = count / rec, done = 0;
	u64 avail, head;
	ssize_t ret;

	if (!want)
		return -EINVAL;
	if (mutex_lock_interruptible(&ctx->read_mutex))
		return -ERESTARTSYS;
	while (!(avail = mmv_events_ready(ctx))) {
		if (file->f_flags & O_NONBLOCK) {
			ret = -EAGAIN;
			goto out;
		}
		mutex_unlock(&ctx->read_mutex);
		if (wait_event_interruptible(ctx->ev_wait, mmv_events_ready(ctx)))
			return -ERESTARTSYS;
		if (mutex_lock_interruptible(&ctx->read_mutex))
			return -ERESTARTSYS;
	}
	spin_lock(&ctx->ev_lock);
	head = ctx->ev_head;
	spin_unlock(&ctx->ev_lock);
	want = min_t(u64, want, avail);
	while (done < want) {
		u64 idx = (head + done) & (MMUVISOR_RING_CAPACITY - 1);
		/* Contiguous records up to the end of the ring. */
		size_t n = min_t(u64, want - done, MMUVISOR_RING_CAPACITY - idx);

		if (copy_to_user(buf + done * rec, &ctx->ring[idx], n * rec))
			break;
		done += n;
	}
	spin_lock(&ctx->ev_lock);
	ctx->ev_head += done;
	spin_unlock(&ctx->ev_lock);
	ret = done ? (ssize_t)(done * rec) : -EFAULT;
out:
	mutex_unlock(&ctx->read_mutex);
	return ret;
}

__poll_t mmv_poll(struct file *file, struct poll_table_struct *wait)
{
	struct mmv_ctx *ctx = file->private_data;

	poll_wait(file, &ctx->ev_wait, wait);
	return mmv_events_ready(ctx) ? (EPOLLIN | EPOLLRDNORM) : 0;
}
