// SPDX-License-Identifier: GPL-2.0
/*
 * mmuvisor helper module: the simulated device's own page table. Pages are
 * made device-exclusive with this context as owner and installed under the
 * device lock after an mmu_interval_read_retry() check, the way
 * nouveau_atomic_range_fault() does; the device then reads and writes them
 * through kmap_local_page() until an invalidation revokes them.
 */
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "mmv.h"

bool mmv_have_exclusive(void)
{
#if defined(MMV_API_FOLIO) || defined(MMV_API_RANGE)
	return true;
#else
	return false;
#endif
}

/* [addr, addr + npages pages) is aligned, non-empty and inside the attached range. */
int mmv_check_range(struct mmv_ctx *ctx, u64 addr, u64 npages)
{
	u64 len;

	if (!npages || !PAGE_ALIGNED(addr))
		return -EINVAL;
	if (npages > MMUVISOR_MAX_NPAGES)
		return -E2BIG;
	len = npages << PAGE_SHIFT;
	if (addr + len < addr)
		return -EINVAL;
	if (addr < ctx->start || addr + len > ctx->end)
		return -ERANGE;
	return 0;
}

static unsigned long mmv_index(struct mmv_ctx *ctx, unsigned long addr)
{
	return (addr - ctx->start) >> PAGE_SHIFT;
}

/* Caller holds dev_lock. Revokes every held page of [start, end). */
unsigned long mmv_revoke_locked(struct mmv_ctx *ctx, unsigned long start,
				unsigned long end)
{
	unsigned long idx, n = 0;
	struct mmv_page *rec;

	if (start >= end)
		return 0;
	xa_for_each_range(&ctx->pages, idx, rec, mmv_index(ctx, start),
			  mmv_index(ctx, end - 1)) {
		if (rec->state != MMUVISOR_PAGE_HELD)
			continue;
		rec->state = MMUVISOR_PAGE_REVOKED;
		rec->page = NULL;
		rec->revocations++;
		ctx->pages_held--;
		ctx->revocations++;
		n++;
	}
	return n;
}

/* Caller holds attach_sem for write, or is the last user. */
void mmv_free_pages(struct mmv_ctx *ctx)
{
	struct mmv_page *rec;
	unsigned long idx;

	xa_for_each(&ctx->pages, idx, rec)
		kfree(rec);
	xa_destroy(&ctx->pages);
	ctx->pages_held = 0;
}

#ifdef MMV_API_RANGE
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
/*
 * Test-only (make MMUVISOR_API=range): the pre-6.15 range API emulated on
 * make_device_exclusive(), so that the path below can be built and run on
 * a newer kernel. Like the original: returns the pages GUP found, a NULL
 * entry for a page that could not be made exclusive; one page per call.
 */
static int mmv_test_make_device_exclusive_range(struct mm_struct *mm,
						unsigned long start,
						unsigned long end,
						struct page **pages,
						void *owner)
{
	struct folio *folio;
	struct page *page;

	if (end - start != PAGE_SIZE)
		return -EINVAL;
	page = make_device_exclusive(mm, start, owner, &folio);
	if (IS_ERR(page)) {
		if (PTR_ERR(page) == -EOPNOTSUPP) {
			pages[0] = NULL;
			return 1;
		}
		return PTR_ERR(page);
	}
	pages[0] = page;
	return 1;
}
#define make_device_exclusive_range mmv_test_make_device_exclusive_range
#endif

/*
 * Pre-6.15: make_device_exclusive_range() on one page. A NULL page (folio
 * locked elsewhere, THP tail, conversion failed) is retried by the caller
 * until its timeout (-EAGAIN).
 */
static struct page *mmv_exclusive_one(struct mm_struct *mm, unsigned long addr,
				      void *owner, struct folio **foliop)
{
	struct page *page = NULL;
	int n;

	n = make_device_exclusive_range(mm, addr, addr + PAGE_SIZE, &page, owner);
	if (n < 0)
		return ERR_PTR(n);
	if (n == 0)
		return ERR_PTR(-EFAULT);
	if (!page)
		return ERR_PTR(-EAGAIN);
	*foliop = page_folio(page);
	return page;
}
#elif defined(MMV_API_FOLIO)
static struct page *mmv_exclusive_one(struct mm_struct *mm, unsigned long addr,
				      void *owner, struct folio **foliop)
{
	return make_device_exclusive(mm, addr, owner, foliop);
}
#endif

#if defined(MMV_API_FOLIO) || defined(MMV_API_RANGE)
/* The VMA at addr must be private, anonymous, non-hugetlb and writable. */
static int mmv_check_vma(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	if (!vma)
		return -EFAULT;
	if (vma->vm_flags & VM_SHARED)
		return -EOPNOTSUPP;
	if (is_vm_hugetlb_page(vma)) {
		/* Test mode: the kernel must refuse it itself. */
		if (!READ_ONCE(mmv_test_hugetlb))
			return -EOPNOTSUPP;
	} else if (!vma_is_anonymous(vma)) {
		return -EOPNOTSUPP;
	}
	if (!(vma->vm_flags & VM_WRITE))
		return -EACCES;
	return 0;
}

/* Fault the page in writable (restoring a device-exclusive entry, breaking COW). */
static int mmv_fault_in(struct mm_struct *mm, unsigned long addr)
{
	int ret;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	ret = mmv_check_vma(mm, addr);
	if (!ret)
		ret = fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, NULL);
	mmap_read_unlock(mm);
	return ret;
}

/* The record of a page, created on first use (never freed before detach). */
static struct mmv_page *mmv_get_record(struct mmv_ctx *ctx, unsigned long idx)
{
	struct mmv_page *rec = xa_load(&ctx->pages, idx);
	int ret;

	if (rec)
		return rec;
	rec = kzalloc(sizeof(*rec), GFP_KERNEL);
	if (!rec)
		return ERR_PTR(-ENOMEM);
	ret = xa_insert(&ctx->pages, idx, rec, GFP_KERNEL);
	if (ret) {
		kfree(rec);
		if (ret != -EBUSY)
			return ERR_PTR(ret);
		/* A concurrent caller inserted it first. */
		rec = xa_load(&ctx->pages, idx);
		if (!rec)
			return ERR_PTR(-ENOMEM);
	}
	return rec;
}

/* 1: converted and installed, 0: already held, < 0: error. */
static int mmv_convert_page(struct mmv_ctx *ctx, unsigned long addr)
{
	unsigned long timeout = jiffies + msecs_to_jiffies(MMV_RETRY_TIMEOUT_MS);
	struct mm_struct *mm = ctx->mm;
	struct mmv_page *rec;
	struct folio *folio;
	struct page *page;
	unsigned long seq;
	bool prefault;
	int ret;

	rec = mmv_get_record(ctx, mmv_index(ctx, addr));
	if (IS_ERR(rec))
		return PTR_ERR(rec);
	spin_lock(&ctx->dev_lock);
	ret = rec->state == MMUVISOR_PAGE_HELD;
	/* A released page may still have its device-exclusive PTE. */
	prefault = rec->state == MMUVISOR_PAGE_RELEASED;
	spin_unlock(&ctx->dev_lock);
	if (ret)
		return 0;

	for (;;) {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		if (fatal_signal_pending(current))
			return -EINTR;

		/*
		 * If the PTE is device-exclusive already (an attempt that lost
		 * the race below, RELEASE, another device) or write-protected
		 * (COW after fork), make_device_exclusive() first faults it
		 * back, and that invalidation inside the read section would
		 * fail the install every time. After a lost race, fault the
		 * page in writable before the read section instead.
		 */
		if (prefault) {
			ret = mmv_fault_in(mm, addr);
			if (ret)
				return ret;
		}
		seq = mmu_interval_read_begin(&ctx->notifier);
		if (mmap_read_lock_killable(mm))
			return -EINTR;
		ret = mmv_check_vma(mm, addr);
		page = ret ? ERR_PTR(ret) : mmv_exclusive_one(mm, addr, ctx, &folio);
		mmap_read_unlock(mm);
		if (IS_ERR(page)) {
			if (PTR_ERR(page) != -EAGAIN)
				return PTR_ERR(page);
			cond_resched();
			continue;
		}

		spin_lock(&ctx->dev_lock);
		if (!mmu_interval_read_retry(&ctx->notifier, seq))
			break;
		ctx->retries++;
		spin_unlock(&ctx->dev_lock);
		folio_unlock(folio);
		folio_put(folio);
		prefault = true;
		cond_resched();
	}

	/* Install the device mapping; the page stays ours until revoked. */
	rec->page = page;
	rec->state = MMUVISOR_PAGE_HELD;
	ctx->pages_held++;
	ctx->conversions++;
	spin_unlock(&ctx->dev_lock);

	folio_unlock(folio);
	folio_put(folio);
	return 1;
}
#endif

int mmv_make_exclusive(struct mmv_ctx *ctx, struct mmuvisor_range *r)
{
	int ret = mmv_check_range(ctx, r->addr, r->npages);
#if defined(MMV_API_FOLIO) || defined(MMV_API_RANGE)
	unsigned long addr = r->addr;
	u64 i;

	r->count = 0;
	for (i = 0; !ret && i < r->npages; i++, addr += PAGE_SIZE) {
		ret = mmv_convert_page(ctx, addr);
		if (ret > 0)
			r->count++;
		if (ret >= 0)
			ret = 0;
		cond_resched();
	}
	return ret;
#else
	return ret ? ret : -EOPNOTSUPP;
#endif
}

int mmv_device_access(struct mmv_ctx *ctx, struct mmuvisor_access *a)
{
	struct mmv_page *rec;
	u64 *word;
	void *kaddr;
	int ret = 0;

	if (a->flags || a->op > MMUVISOR_ACCESS_ADD || !IS_ALIGNED(a->addr, 8))
		return -EINVAL;
	if (a->addr < ctx->start || a->addr >= ctx->end)
		return -ERANGE;

	rec = xa_load(&ctx->pages, mmv_index(ctx, a->addr));
	spin_lock(&ctx->dev_lock);
	if (!rec || rec->state == MMUVISOR_PAGE_NONE ||
	    rec->state == MMUVISOR_PAGE_RELEASED) {
		ret = -ENOENT;
	} else if (rec->state == MMUVISOR_PAGE_REVOKED) {
		ret = -ENOLINK;
	} else {
		kaddr = kmap_local_page(rec->page);
		word = kaddr + offset_in_page(a->addr);
		a->old = READ_ONCE(*word);
		if (a->op == MMUVISOR_ACCESS_WRITE)
			WRITE_ONCE(*word, a->value);
		else if (a->op == MMUVISOR_ACCESS_ADD)
			WRITE_ONCE(*word, a->old + a->value);
		kunmap_local(kaddr);
		/* Core mm treats device-exclusive entries as clean. */
		if (a->op != MMUVISOR_ACCESS_READ)
			folio_mark_dirty(page_folio(rec->page));
	}
	spin_unlock(&ctx->dev_lock);
	return ret;
}

#define MMV_QUERY_CHUNK 64

int mmv_query(struct mmv_ctx *ctx, struct mmuvisor_query *q)
{
	struct mmuvisor_page_state *buf;
	struct mmuvisor_page_state __user *out = u64_to_user_ptr(q->states);
	unsigned long idx = 0, base;
	struct mmv_page *rec;
	u64 done = 0;
	int ret = mmv_check_range(ctx, q->addr, q->npages);

	if (ret)
		return ret;
	buf = kmalloc_array(MMV_QUERY_CHUNK, sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	base = mmv_index(ctx, q->addr);
	q->held = 0;
	while (done < q->npages) {
		u64 n = min_t(u64, q->npages - done, MMV_QUERY_CHUNK);
		u64 i;

		memset(buf, 0, n * sizeof(*buf));
		spin_lock(&ctx->dev_lock);
		xa_for_each_range(&ctx->pages, idx, rec, base + done,
				  base + done + n - 1) {
			struct mmuvisor_page_state *s = &buf[idx - base - done];

			s->state = rec->state;
			s->revocations = rec->revocations;
			if (rec->state == MMUVISOR_PAGE_HELD)
				s->pfn = page_to_pfn(rec->page);
		}
		spin_unlock(&ctx->dev_lock);
		for (i = 0; i < n; i++)
			q->held += buf[i].state == MMUVISOR_PAGE_HELD;
		if (copy_to_user(out + done, buf, n * sizeof(*buf))) {
			ret = -EFAULT;
			break;
		}
		done += n;
		cond_resched();
	}
	kfree(buf);
	return ret;
}

int mmv_release_range(struct mmv_ctx *ctx, struct mmuvisor_range *r)
{
	unsigned long idx, first;
	struct mmv_page *rec;
	int ret = mmv_check_range(ctx, r->addr, r->npages);

	if (ret)
		return ret;
	first = mmv_index(ctx, r->addr);
	r->count = 0;
	spin_lock(&ctx->dev_lock);
	xa_for_each_range(&ctx->pages, idx, rec, first, first + r->npages - 1) {
		if (rec->state != MMUVISOR_PAGE_HELD)
			continue;
		rec->state = MMUVISOR_PAGE_RELEASED;
		rec->page = NULL;
		ctx->pages_held--;
		r->count++;
	}
	spin_unlock(&ctx->dev_lock);
	return 0;
}
