/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mmuvisor helper module: internal definitions shared by its files.
 */
#ifndef _MMV_H
#define _MMV_H

#include <linux/mmu_notifier.h>
#include <linux/atomic.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include <linux/mmuvisor.h>

#if !IS_ENABLED(CONFIG_MMU_NOTIFIER)
#error "mmuvisor needs CONFIG_MMU_NOTIFIER"
#endif
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "mmuvisor needs Linux 6.1 or later"
#endif

/*
 * Which device-exclusive API the module uses (chosen at build time):
 *  MMV_API_FOLIO: make_device_exclusive(mm, addr, owner, &folio), 6.15+
 *  MMV_API_RANGE: make_device_exclusive_range(mm, start, end, pages, owner)
 *  neither:       no CONFIG_DEVICE_PRIVATE: MAKE_EXCLUSIVE gives EOPNOTSUPP
 * MMUVISOR_FORCE_RANGE_API (make MMUVISOR_API=range) builds the pre-6.15
 * path on a newer kernel over a test shim, MMUVISOR_FORCE_NO_EXCLUSIVE
 * (make MMUVISOR_API=none) the path of a kernel without DEVICE_PRIVATE.
 */
#if IS_ENABLED(CONFIG_DEVICE_PRIVATE) && !defined(MMUVISOR_FORCE_NO_EXCLUSIVE)
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0) && !defined(MMUVISOR_FORCE_RANGE_API)
#define MMV_API_FOLIO 1
#else
#define MMV_API_RANGE 1
#endif
#endif

/* Give up installing one page after this long of invalidation races. */
#define MMV_RETRY_TIMEOUT_MS 1000

/*
 * The device's page table: ctx->pages maps (addr - start) >> PAGE_SHIFT to
 * one xarray value entry per page the device holds or once held (no entry:
 * MMUVISOR_PAGE_NONE, never converted). Bits 0-1 state, 2-22 revocations
 * (saturating), 23-62 PFN while HELD. Held pages also carry MMV_HELD, so
 * that revocation walks only them. Nodes are charged to the caller's
 * memory cgroup (XA_FLAGS_ACCOUNT).
 */
#define MMV_HELD		XA_MARK_0
#define MMV_REC_STATE_BITS	2
#define MMV_REC_REVS_BITS	21
#define MMV_REC_PFN_SHIFT	(MMV_REC_STATE_BITS + MMV_REC_REVS_BITS)
#define MMV_REC_PFN_MAX		((1UL << (BITS_PER_LONG - 1 - MMV_REC_PFN_SHIFT)) - 1)

static_assert(BITS_PER_LONG == 64, "mmuvisor packs PFNs into 64-bit xarray values");
static_assert(MMUVISOR_MAX_REVOCATIONS == (1U << MMV_REC_REVS_BITS) - 1);

static inline void *mmv_rec(u32 state, u32 revs, unsigned long pfn)
{
	return xa_mk_value(state | (unsigned long)revs << MMV_REC_STATE_BITS |
			   pfn << MMV_REC_PFN_SHIFT);
}

static inline u32 mmv_rec_state(void *e)
{
	return e ? xa_to_value(e) & ((1U << MMV_REC_STATE_BITS) - 1) : MMUVISOR_PAGE_NONE;
}

static inline u32 mmv_rec_revs(void *e)
{
	return e ? (xa_to_value(e) >> MMV_REC_STATE_BITS) & MMUVISOR_MAX_REVOCATIONS : 0;
}

static inline unsigned long mmv_rec_pfn(void *e)
{
	return e ? xa_to_value(e) >> MMV_REC_PFN_SHIFT : 0;
}

/* One open file of /dev/mmuvisor: one simulated device. */
struct mmv_ctx {
	/*
	 * Held for write by ATTACH/DETACH/release, for read by the other
	 * ioctls: the attach fields stay valid under it. Never taken by the
	 * notifier callback. A conversion gives way to a waiting writer.
	 */
	struct rw_semaphore attach_sem;
	bool attached;
	struct mm_struct *mm;	/* pinned by the interval notifier (mmgrab) */
	unsigned long start, end;
	struct mmu_interval_notifier notifier;

	/*
	 * The device lock is the xarray's own spinlock (xa_lock(&pages)): it
	 * guards the device page table and the counters below, and pairs
	 * with mmu_interval_set_seq()/mmu_interval_read_retry(). A spinlock,
	 * so that non-blockable invalidations never fail.
	 */
	struct xarray pages;
	u64 conversions, revocations, retries, pages_held;
	atomic64_t revoke_max_ns;

	/* Event ring (allocated at ATTACH): producers never overwrite. */
	spinlock_t ev_lock;
	wait_queue_head_t ev_wait;
	struct mmuvisor_event *ring;
	u64 ev_head, ev_tail;		/* ring indexes, tail - head <= capacity */
	u64 ev_seq;			/* seq of the next record */
	u64 ev_seen, ev_dropped;
	u64 ev_marker;			/* index + 1 of the last OVERFLOW record */
	u32 ev_flags;			/* MMUVISOR_ATTACH_* of the stream */
	bool ev_eof;			/* detached, or the mm went away */
};

static inline void mmv_dev_lock(struct mmv_ctx *ctx)
{
	xa_lock(&ctx->pages);
}

static inline void mmv_dev_unlock(struct mmv_ctx *ctx)
{
	xa_unlock(&ctx->pages);
}

/* mmv_events.c */
extern const struct mmu_interval_notifier_ops mmv_mni_ops;
/* Test mode: private hugetlb VMAs reach make_device_exclusive(). */
extern bool mmv_test_hugetlb;
void mmv_events_init(struct mmv_ctx *ctx);
int mmv_events_attach(struct mmv_ctx *ctx, u32 flags);
void mmv_events_detach(struct mmv_ctx *ctx);
void mmv_events_fini(struct mmv_ctx *ctx);
ssize_t mmv_read(struct file *file, char __user *buf, size_t count, loff_t *pos);
__poll_t mmv_poll(struct file *file, struct poll_table_struct *wait);
void mmv_events_stats(struct mmv_ctx *ctx, struct mmuvisor_stats *st);

/* mmv_device.c: the device page table, called with attach_sem held. */
int mmv_check_range(struct mmv_ctx *ctx, u64 addr, u64 npages);
int mmv_make_exclusive(struct mmv_ctx *ctx, struct mmuvisor_range *r);
int mmv_device_access(struct mmv_ctx *ctx, struct mmuvisor_access *a);
int mmv_query(struct mmv_ctx *ctx, struct mmuvisor_query *q, bool show_pfn);
int mmv_release_range(struct mmv_ctx *ctx, struct mmuvisor_range *r);
unsigned long mmv_revoke_locked(struct mmv_ctx *ctx, unsigned long start,
				unsigned long end);
void mmv_free_pages(struct mmv_ctx *ctx);
bool mmv_have_exclusive(void);

#ifdef MMV_API_RANGE
/* mmv_range.c: the pre-6.15 make_device_exclusive_range() path. */
struct page *mmv_range_exclusive(struct mm_struct *mm, unsigned long addr,
				 unsigned long limit, void *owner,
				 struct folio **foliop, unsigned long *nrp);
#endif

#endif /* _MMV_H */
