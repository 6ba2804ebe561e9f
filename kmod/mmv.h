/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mmuvisor helper module: internal definitions shared by its files.
 */
#ifndef _MMV_H
#define _MMV_H

#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
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

/* One page of the device's own page table. */
struct mmv_page {
	struct page *page;	/* set only while state == MMUVISOR_PAGE_HELD */
	u32 state;		/* MMUVISOR_PAGE_* */
	u32 revocations;
};

/* One open file of /dev/mmuvisor: one simulated device. */
struct mmv_ctx {
	/*
	 * Held for write by ATTACH/DETACH/release, for read by the other
	 * ioctls: the attach fields and the records of @pages stay valid
	 * under it. Never taken by the notifier callback.
	 */
	struct rw_semaphore attach_sem;
	bool attached;
	struct mm_struct *mm;	/* pinned by the interval notifier (mmgrab) */
	unsigned long start, end;
	struct mmu_interval_notifier notifier;

	/*
	 * The device lock: guards the device page table (state and page of
	 * every record), the counters below, and pairs with
	 * mmu_interval_set_seq()/mmu_interval_read_retry(). A spinlock, so
	 * that non-blockable invalidations never fail.
	 */
	spinlock_t dev_lock;
	struct xarray pages;	/* (addr - start) >> PAGE_SHIFT -> mmv_page */
	u64 conversions, revocations, retries, pages_held;

	/* Event ring: producers never overwrite, they count drops. */
	spinlock_t ev_lock;
	struct mutex read_mutex;	/* one reader at a time */
	wait_queue_head_t ev_wait;
	struct mmuvisor_event *ring;
	u64 ev_head, ev_tail;		/* ring indexes, tail - head <= capacity */
	u64 ev_seq, ev_dropped;
};

/* mmv_events.c */
extern const struct mmu_interval_notifier_ops mmv_mni_ops;
/* Test mode: private hugetlb VMAs reach make_device_exclusive(). */
extern bool mmv_test_hugetlb;
int mmv_events_init(struct mmv_ctx *ctx);
void mmv_events_fini(struct mmv_ctx *ctx);
ssize_t mmv_read(struct file *file, char __user *buf, size_t count, loff_t *pos);
__poll_t mmv_poll(struct file *file, struct poll_table_struct *wait);
void mmv_events_stats(struct mmv_ctx *ctx, struct mmuvisor_stats *st);

/* mmv_device.c: the device page table, called with attach_sem held. */
int mmv_check_range(struct mmv_ctx *ctx, u64 addr, u64 npages);
int mmv_make_exclusive(struct mmv_ctx *ctx, struct mmuvisor_range *r);
int mmv_device_access(struct mmv_ctx *ctx, struct mmuvisor_access *a);
int mmv_query(struct mmv_ctx *ctx, struct mmuvisor_query *q);
int mmv_release_range(struct mmv_ctx *ctx, struct mmuvisor_range *r);
unsigned long mmv_revoke_locked(struct mmv_ctx *ctx, unsigned long start,
				unsigned long end);
void mmv_free_pages(struct mmv_ctx *ctx);
bool mmv_have_exclusive(void);

#endif /* _MMV_H */
