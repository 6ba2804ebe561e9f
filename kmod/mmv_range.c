// SPDX-License-Identifier: GPL-2.0
/*
 * mmuvisor helper module: the pre-6.15 device-exclusive API,
 * make_device_exclusive_range(). Unlike make_device_exclusive() it never
 * converts a tail page of a large folio, and converting the head page
 * converts every page of the folio (its rmap walk replaces each PTE that
 * maps the folio). The device records what the kernel really converted:
 * the whole folio when it is mapped whole and in order from the head page,
 * inside the attached range; otherwise the pages go back to the CPU and
 * the call fails with -EOPNOTSUPP. Tail pages fail at once.
 */
#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/slab.h>
#include "mmv.h"

#ifdef MMV_API_RANGE
/* get_user_pages_remote() lost its vmas argument in 6.5. */
static long mmv_gup(struct mm_struct *mm, unsigned long addr, unsigned long nr,
		    unsigned int flags, struct page **pages)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
	return get_user_pages_remote(mm, addr, nr, flags, pages, NULL, NULL);
#else
	return get_user_pages_remote(mm, addr, nr, flags, pages, NULL);
#endif
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
/*
 * Test-only (make MMUVISOR_API=range): the pre-6.15 function emulated on
 * make_device_exclusive(), one page per call, so that this path can be
 * built and run on a newer kernel. As the original: a tail page of a large
 * folio gives a NULL page, the head page converts the folio's pages that
 * follow it in this VMA and comes back locked.
 */
static int mmv_test_make_device_exclusive_range(struct mm_struct *mm,
						unsigned long start,
						unsigned long end,
						struct page **pages,
						void *owner)
{
	struct folio *folio, *f;
	struct page *page, *p;
	unsigned long i, nr;

	if (end - start != PAGE_SIZE)
		return -EINVAL;
	if (mmv_gup(mm, start, 1, FOLL_WRITE, &page) != 1)
		return -EFAULT;
	folio = page_folio(page);
	nr = folio_nr_pages(folio);
	pages[0] = NULL;
	if (PageTail(page)) {
		put_page(page);
		return 1;
	}
	for (i = 1; i < nr; i++) {
		p = make_device_exclusive(mm, start + i * PAGE_SIZE, owner, &f);
		if (IS_ERR(p))
			break;
		folio_unlock(f);
		folio_put(f);
		if (f != folio)
			break;
	}
	put_page(page);
	page = make_device_exclusive(mm, start, owner, &f);
	if (IS_ERR(page)) {
		if (PTR_ERR(page) == -EOPNOTSUPP)
			return 1;
		return PTR_ERR(page);
	}
	pages[0] = page;
	return 1;
}
#define make_device_exclusive_range mmv_test_make_device_exclusive_range
#endif

/* Give the CPU back the pages [addr, addr + nr pages) of addr's VMA. */
static void mmv_range_restore(struct mm_struct *mm, unsigned long addr,
		       unsigned long nr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);
	unsigned long end;

	if (!vma)
		return;
	end = min(vma->vm_end, addr + nr * PAGE_SIZE);
	for (; addr < end; addr += PAGE_SIZE)
		fixup_user_fault(mm, addr, FAULT_FLAG_WRITE, NULL);
}

/*
 * Before converting: how many pages a conversion of addr would take.
 * 1 for a small folio; the folio's size for the head page of a large folio
 * mapped whole and in order from addr inside limit; -EOPNOTSUPP for a tail
 * page or a folio mapped otherwise. Caller holds the mmap lock.
 */
static long mmv_range_extent(struct mm_struct *mm, unsigned long addr,
			     unsigned long limit)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);
	struct page *page, **pages;
	struct folio *folio;
	long nr, got, i, ret;

	if (!vma)
		return -EFAULT;
	if (mmv_gup(mm, addr, 1, 0, &page) != 1)
		return -EAGAIN;
	folio = page_folio(page);
	nr = folio_nr_pages(folio);
	if (nr == 1 || PageTail(page)) {
		put_page(page);
		return nr == 1 ? 1 : -EOPNOTSUPP;
	}
	ret = -EOPNOTSUPP;
	if (addr + nr * PAGE_SIZE > min(limit, vma->vm_end))
		goto out;
	ret = -ENOMEM;
	pages = kvmalloc_array(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		goto out;
	got = mmv_gup(mm, addr, nr, 0, pages);
	ret = got == nr ? nr : -EOPNOTSUPP;
	for (i = 0; i < got; i++) {
		if (pages[i] != folio_page(folio, i))
			ret = -EOPNOTSUPP;
		put_page(pages[i]);
	}
	kvfree(pages);
out:
	put_page(page);
	return ret;
}

/*
 * make_device_exclusive_range() on the page at addr. On success the page
 * comes back with its folio locked and referenced, and *nrp pages from
 * addr (the whole folio, for the head page of a large one) are now
 * device-exclusive. A NULL page otherwise (folio locked elsewhere, a
 * racing fault) is -EAGAIN, retried by the caller until its timeout.
 */
struct page *mmv_range_exclusive(struct mm_struct *mm, unsigned long addr,
				 unsigned long limit, void *owner,
				 struct folio **foliop, unsigned long *nrp)
{
	long want = mmv_range_extent(mm, addr, limit);
	struct page *page = NULL;
	struct folio *folio;
	long nr;
	int n;

	if (want < 0)
		return ERR_PTR(want);
	n = make_device_exclusive_range(mm, addr, addr + PAGE_SIZE, &page, owner);
	if (n < 0)
		return ERR_PTR(n);
	if (n == 0)
		return ERR_PTR(-EFAULT);
	if (!page)
		return ERR_PTR(-EAGAIN);
	folio = page_folio(page);
	nr = folio_nr_pages(folio);
	if (nr != 1 && nr != want) {
		/* The folio changed since it was looked at: take it back. */
		folio_unlock(folio);
		folio_put(folio);
		mmv_range_restore(mm, addr, nr);
		return ERR_PTR(-EAGAIN);
	}
	*foliop = folio;
	*nrp = nr;
	return page;
}
#endif
