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

static u32 mmv_revs_inc(u32 revs)
{
	return revs < MMUVISOR_MAX_REVOCATIONS ? revs + 1 : revs;
}

/*
 * Caller holds the device lock. Revokes every held page of [start, end):
 * walks only the pages marked held, not every record of the range.
 */
unsigned long mmv_revoke_locked(struct mmv_ctx *ctx, unsigned long start,
				unsigned long end)
{
	XA_STATE(xas, &ctx->pages, 0);
	unsigned long n = 0;
	void *e;

	if (start >= end)
		return 0;
	xas_set(&xas, mmv_index(ctx, start));
	xas_for_each_marked(&xas, e, mmv_index(ctx, end - 1), MMV_HELD) {
		/* Replacing a value in place never allocates. */
		xas_store(&xas, mmv_rec(MMUVISOR_PAGE_REVOKED,
					mmv_revs_inc(mmv_rec_revs(e)), 0));
		xas_clear_mark(&xas, MMV_HELD);
		ctx->pages_held--;
		ctx->revocations++;
		n++;
	}
	return n;
}

/* Caller holds attach_sem for write, or is the last user. */
void mmv_free_pages(struct mmv_ctx *ctx)
{
	xa_destroy(&ctx->pages);
	ctx->pages_held = 0;
}

#ifdef MMV_API_RANGE
static struct page *mmv_exclusive_one(struct mmv_ctx *ctx, unsigned long addr,
				      struct folio **foliop, unsigned long *nrp)
{
	return mmv_range_exclusive(ctx->mm, addr, ctx->end, ctx, foliop, nrp);
}
#elif defined(MMV_API_FOLIO)
static struct page *mmv_exclusive_one(struct mmv_ctx *ctx, unsigned long addr,
				      struct folio **foliop, unsigned long *nrp)
{
	*nrp = 1;
	return make_device_exclusive(ctx->mm, addr, ctx, foliop);
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

/*
 * Fault nr pages from addr in writable (restoring device-exclusive entries,
 * breaking COW).
 */
static int mmv_fault_in(struct mm_struct *mm, unsigned long addr,
			unsigned long nr)
{
	unsigned long end;
	int ret;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	ret = mmv_check_vma(mm, addr);
	if (!ret) {
		end = min(vma_lookup(mm, addr)->vm_end, addr + nr * PAGE_SIZE);
		for (; !ret && addr < end; addr += PAGE_SIZE)
			ret = fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, NULL);
	}
	mmap_read_unlock(mm);
	return ret;
}

/*
 * Caller holds the device lock, inside a read section that held. Records
 * the nr pages from idx (page and the ones after it in its folio) as held.
 * Returns how many were recorded (the ones after a failure are not), 0 if
 * the first was held already, < 0 if none could be.
 */
static long mmv_install_locked(struct mmv_ctx *ctx, unsigned long idx,
			       struct page *page, unsigned long nr)
{
	unsigned long pfn = page_to_pfn(page), i;
	void *old;
	int ret;

	if (pfn + nr - 1 > MMV_REC_PFN_MAX)
		return -EOVERFLOW;	/* cannot happen with 52-bit physical addresses */
	for (i = 0; i < nr; i++) {
		/* A bug of ours: another install won the same read section. */
		if (WARN_ON_ONCE(xa_get_mark(&ctx->pages, idx + i, MMV_HELD))) {
			if (!i)
				return 0;
			continue;
		}
		old = xa_load(&ctx->pages, idx + i);
		/*
		 * The slot is reserved: this store does not allocate, unless a
		 * racing call for the same page gave it back (GFP_NOWAIT then).
		 */
		ret = xa_err(__xa_store(&ctx->pages, idx + i,
					mmv_rec(MMUVISOR_PAGE_HELD, mmv_rec_revs(old),
						pfn + i),
					GFP_NOWAIT | __GFP_NOWARN));
		if (ret)
			return i ? i : ret;
		__xa_set_mark(&ctx->pages, idx + i, MMV_HELD);
		ctx->pages_held++;
		ctx->conversions++;
	}
	return nr;
}

/* Reserve the device page table's slots for the pages after idx. */
static void mmv_reserve_more(struct mmv_ctx *ctx, unsigned long idx,
			     unsigned long nr, bool release)
{
	unsigned long i;

	for (i = 1; i < nr; i++) {
		if (release)
			xa_release(&ctx->pages, idx + i);
		else if (xa_reserve(&ctx->pages, idx + i, GFP_KERNEL))
			break;	/* the install stores with GFP_NOWAIT then */
	}
}

/*
 * Converts the page at addr: > 0 pages converted and installed, counting
 * at most left (more than one where the kernel converted a whole large
 * folio, see mmv_range.c), 0: already held, < 0: error. The page's slot in
 * the device page table is reserved (allocated) once its VMA passed the
 * checks, before the conversion, and given back unless the page got
 * installed.
 */
static long mmv_convert_page(struct mmv_ctx *ctx, unsigned long addr,
			     u64 left)
{
	unsigned long timeout = jiffies + msecs_to_jiffies(MMV_RETRY_TIMEOUT_MS);
	unsigned long idx = mmv_index(ctx, addr);
	unsigned long nr = 1, lost_nr = 1, more = 1;
	struct mm_struct *mm = ctx->mm;
	struct folio *folio;
	struct page *page;
	unsigned long seq;
	bool prefault, reserve, reserved = false;
	void *old;
	long ret;

	old = xa_load(&ctx->pages, idx);
	if (xa_get_mark(&ctx->pages, idx, MMV_HELD))
		return 0;
	/* A released page may still have its device-exclusive PTE. */
	prefault = mmv_rec_state(old) == MMUVISOR_PAGE_RELEASED;
	/* A slot to reserve before converting, once the VMA is known good. */
	reserve = !old;

	for (;;) {
		ret = -EBUSY;
		if (time_after(jiffies, timeout))
			goto out_release;
		ret = -EINTR;
		if (signal_pending(current))
			goto out_release;

		/*
		 * If the PTE is device-exclusive already (an attempt that lost
		 * the race below, RELEASE, another device) or write-protected
		 * (COW after fork), make_device_exclusive() first faults it
		 * back, and that invalidation inside the read section would
		 * fail the install every time. After a lost race, fault the
		 * pages in writable before the read section instead (all of
		 * a large folio the range API converted whole).
		 */
		if (prefault) {
			ret = mmv_fault_in(mm, addr, lost_nr);
			if (ret)
				goto out_release;
		}
		seq = mmu_interval_read_begin(&ctx->notifier);
		ret = -EINTR;
		if (mmap_read_lock_killable(mm))
			goto out_release;
		ret = mmv_check_vma(mm, addr);
		if (!ret && reserve) {
			ret = xa_reserve(&ctx->pages, idx, GFP_KERNEL);
			reserved = !ret;
			reserve = false;
		}
		page = ret ? ERR_PTR(ret) : mmv_exclusive_one(ctx, addr, &folio, &nr);
		mmap_read_unlock(mm);
		if (IS_ERR(page)) {
			ret = PTR_ERR(page);
			if (ret != -EAGAIN)
				goto out_release;
			cond_resched();
			continue;
		}
		if (nr > 1) {
			mmv_reserve_more(ctx, idx, nr, false);
			more = max(more, nr);
		}

		mmv_dev_lock(ctx);
		if (!mmu_interval_read_retry(&ctx->notifier, seq))
			break;
		ctx->retries++;
		mmv_dev_unlock(ctx);
		folio_unlock(folio);
		folio_put(folio);
		prefault = true;
		lost_nr = nr;
		cond_resched();
	}

	/* Install the device mapping; the pages stay ours until revoked. */
	ret = mmv_install_locked(ctx, idx, page, nr);
	mmv_dev_unlock(ctx);

	folio_unlock(folio);
	folio_put(folio);
	if (nr > 1 && ret < (long)nr) {
		/*
		 * Converted by the kernel, not recorded: back to the CPU (all
		 * but a head page that was held already, ret == 0).
		 */
		long kept = ret < 0 ? 0 : max(ret, 1L);

		mmv_fault_in(mm, addr + kept * PAGE_SIZE, nr - kept);
	}
	if (ret > 0)
		ret = min_t(u64, ret, left);
out_release:
	/* Slots reserved for pages that were not installed go back. */
	mmv_reserve_more(ctx, idx, more, true);
	if (ret <= 0 && reserved)
		xa_release(&ctx->pages, idx);
	return ret;
}
#endif

int mmv_make_exclusive(struct mmv_ctx *ctx, struct mmuvisor_range *r)
{
	int ret;
#if defined(MMV_API_FOLIO) || defined(MMV_API_RANGE)
	unsigned long addr = r->addr;
	u64 i;
#endif

	r->count = 0;
	ret = mmv_check_range(ctx, r->addr, r->npages);
#if defined(MMV_API_FOLIO) || defined(MMV_API_RANGE)
	for (i = 0; !ret && i < r->npages; i++, addr += PAGE_SIZE) {
		/*
		 * Stop early, with the progress in count, for any signal
		 * and for a DETACH waiting on attach_sem (after one page,
		 * so that a call always gets somewhere).
		 */
		if (signal_pending(current) ||
		    (i && rwsem_is_contended(&ctx->attach_sem)))
			return r->count ? 0 : -EINTR;
		ret = mmv_convert_page(ctx, addr, r->npages - i);
		if (ret > 0)
			r->count += ret;
		if (ret >= 0)
			ret = 0;
		cond_resched();
	}
	if (ret == -EINTR && r->count)
		ret = 0;
	return ret;
#else
	return ret ? ret : -EOPNOTSUPP;
#endif
}

int mmv_device_access(struct mmv_ctx *ctx, struct mmuvisor_access *a)
{
	unsigned long idx;
	struct page *page;
	u64 *word;
	void *kaddr, *e;
	int ret = 0;

	if (a->flags || a->op > MMUVISOR_ACCESS_ADD || !IS_ALIGNED(a->addr, 8))
		return -EINVAL;
	if (a->addr < ctx->start || a->addr >= ctx->end)
		return -ERANGE;

	idx = mmv_index(ctx, a->addr);
	mmv_dev_lock(ctx);
	e = xa_load(&ctx->pages, idx);
	switch (mmv_rec_state(e)) {
	case MMUVISOR_PAGE_REVOKED:
		ret = -ENOLINK;
		break;
	case MMUVISOR_PAGE_HELD:
		page = pfn_to_page(mmv_rec_pfn(e));
		kaddr = kmap_local_page(page);
		word = kaddr + offset_in_page(a->addr);
		a->old = READ_ONCE(*word);
		if (a->op == MMUVISOR_ACCESS_WRITE)
			WRITE_ONCE(*word, a->value);
		else if (a->op == MMUVISOR_ACCESS_ADD)
			WRITE_ONCE(*word, a->old + a->value);
		kunmap_local(kaddr);
		/* Core mm treats device-exclusive entries as clean. */
		if (a->op != MMUVISOR_ACCESS_READ)
			folio_mark_dirty(page_folio(page));
		break;
	default:	/* never converted, or RELEASEd */
		ret = -ENOENT;
	}
	mmv_dev_unlock(ctx);
	return ret;
}

/* Records copied out per device-lock hold. */
#define MMV_BATCH 64

int mmv_query(struct mmv_ctx *ctx, struct mmuvisor_query *q, bool show_pfn)
{
	struct mmuvisor_page_state *buf;
	struct mmuvisor_page_state __user *out = u64_to_user_ptr(q->states);
	unsigned long base;
	u64 done = 0;
	void *e;
	int ret;

	if (q->flags || q->reserved0 || q->reserved1)
		return -EINVAL;
	ret = mmv_check_range(ctx, q->addr, q->npages);
	if (ret)
		return ret;
	buf = kmalloc_array(MMV_BATCH, sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	base = mmv_index(ctx, q->addr);
	q->held = 0;
	while (done < q->npages) {
		u64 n = min_t(u64, q->npages - done, MMV_BATCH);
		XA_STATE(xas, &ctx->pages, base + done);

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		memset(buf, 0, n * sizeof(*buf));
		mmv_dev_lock(ctx);
		xas_for_each(&xas, e, base + done + n - 1) {
			struct mmuvisor_page_state *s = &buf[xas.xa_index - base - done];

			if (!xa_is_value(e))
				continue;
			s->state = mmv_rec_state(e);
			s->revocations = mmv_rec_revs(e);
			if (s->state == MMUVISOR_PAGE_HELD) {
				q->held++;
				if (show_pfn)
					s->pfn = mmv_rec_pfn(e);
			}
		}
		mmv_dev_unlock(ctx);
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

/* Drops the held pages of the range, MMV_BATCH per device-lock hold. */
int mmv_release_range(struct mmv_ctx *ctx, struct mmuvisor_range *r)
{
	unsigned long first, last;
	int ret = mmv_check_range(ctx, r->addr, r->npages);
	XA_STATE(xas, &ctx->pages, 0);
	unsigned int batch = 0;
	void *e;

	if (ret)
		return ret;
	first = mmv_index(ctx, r->addr);
	last = first + r->npages - 1;
	r->count = 0;
	xas_set(&xas, first);
	mmv_dev_lock(ctx);
	xas_for_each_marked(&xas, e, last, MMV_HELD) {
		xas_store(&xas, mmv_rec(MMUVISOR_PAGE_RELEASED, mmv_rec_revs(e), 0));
		xas_clear_mark(&xas, MMV_HELD);
		ctx->pages_held--;
		r->count++;
		if (++batch % MMV_BATCH == 0) {
			xas_pause(&xas);
			mmv_dev_unlock(ctx);
			cond_resched();
			mmv_dev_lock(ctx);
		}
	}
	mmv_dev_unlock(ctx);
	return 0;
}
