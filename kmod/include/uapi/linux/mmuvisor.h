/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mmuvisor helper module: user ABI of /dev/mmuvisor.
 *
 * Each open file of /dev/mmuvisor is one simulated device context. Its
 * identity (the "owner" given to make_device_exclusive() and seen in
 * mmu_notifier_range->owner) is private to the kernel; events say whether an
 * invalidation came from this context (MMUVISOR_EVENT_F_OWNER_SELF).
 *
 * All structures have a fixed size and only naturally aligned __u32/__u64
 * fields; the ioctl numbers encode the structure sizes, so a client built
 * against another layout gets ENOTTY. MMUVISOR_IOC_VERSION reports
 * MMUVISOR_ABI_VERSION and the sizes for an explicit check. Reserved fields
 * must be zero on input (EINVAL otherwise) and are zero on output.
 *
 * errno values (every ioctl):
 *   ENOTTY     unknown ioctl number (or structure size mismatch)
 *   EINVAL     bad argument: unaligned address, zero or overflowing range,
 *              unknown op, unknown flag, non-zero reserved field
 *   EBADF      ATTACH, DETACH, MAKE_EXCLUSIVE, RELEASE, DEVICE_ACCESS
 *              WRITE/ADD on a file not opened for writing
 *   E2BIG      npages > MMUVISOR_MAX_NPAGES
 *   ERANGE     range not inside the attached range
 *   ENOTCONN   context not attached (ATTACH first)
 *   EBUSY      ATTACH on an attached context; MAKE_EXCLUSIVE could not
 *              install a page before the retry timeout (1 s per page of
 *              invalidation races)
 *   EPERM      caller's address space is not the attached one (e.g. a
 *              forked child using the inherited file)
 *   EOPNOTSUPP MAKE_EXCLUSIVE: kernel built without CONFIG_DEVICE_PRIVATE, or
 *              the memory is shared, file-backed or hugetlb, or (range API,
 *              kernels before 6.15) the page belongs to a large folio (THP,
 *              mTHP): that API refuses its tail pages and converts the whole
 *              folio for its head, so the module refuses both at once
 *   EACCES     MAKE_EXCLUSIVE: mapping is not writable
 *   EFAULT     address not mapped, or bad user pointer
 *   EINTR      a signal arrived before MAKE_EXCLUSIVE converted any page, or
 *              while QUERY copied out (a MAKE_EXCLUSIVE that converted some
 *              pages returns 0 with count < npages instead)
 *   ENOMEM     no memory for the device's page table or event ring
 *   ENOENT     DEVICE_ACCESS: the device does not hold this page and never
 *              lost it (never made exclusive, or dropped by RELEASE)
 *   ENOLINK    DEVICE_ACCESS: the device held this page exclusively and an
 *              invalidation revoked that access
 */
#ifndef _UAPI_LINUX_MMUVISOR_H
#define _UAPI_LINUX_MMUVISOR_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define MMUVISOR_ABI_VERSION	1
#define MMUVISOR_IOC_MAGIC	0xBC

/* Most pages one MAKE_EXCLUSIVE, QUERY or RELEASE call may name. */
#define MMUVISOR_MAX_NPAGES	(1U << 20)
/* Records the event ring holds; later events are counted as dropped. */
#define MMUVISOR_RING_CAPACITY	4096U

/* mmuvisor_version.features */
#define MMUVISOR_FEAT_EXCLUSIVE		(1U << 0) /* MAKE_EXCLUSIVE works */
#define MMUVISOR_FEAT_RANGE_API		(1U << 1) /* built on make_device_exclusive_range() (< 6.15) */

/* MMUVISOR_IOC_VERSION: works on any context. */
struct mmuvisor_version {
	__u32 abi_version;	/* MMUVISOR_ABI_VERSION */
	__u32 features;		/* MMUVISOR_FEAT_* */
	__u32 event_size;	/* sizeof(struct mmuvisor_event) */
	__u32 page_state_size;	/* sizeof(struct mmuvisor_page_state) */
	__u32 ring_capacity;	/* MMUVISOR_RING_CAPACITY */
	__u32 max_npages;	/* MMUVISOR_MAX_NPAGES */
	__u32 kernel_version;	/* LINUX_VERSION_CODE the module was built for */
	__u32 reserved;
};

/* mmuvisor_attach.flags: what the event stream carries of this context's
 * own conversions (MMU_NOTIFY_EXCLUSIVE with this context as owner). */
#define MMUVISOR_ATTACH_OMIT_OWN	(1U << 0) /* leave them out */
#define MMUVISOR_ATTACH_COALESCE_OWN	(1U << 1) /* merge adjacent ones into one record */

/*
 * MMUVISOR_IOC_ATTACH: page-aligned [start, start + length) of the caller's
 * mm. Allocates the event ring (charged to the caller's memory cgroup); the
 * ring and its unread records outlive DETACH until the file is closed.
 */
struct mmuvisor_attach {
	__u64 start;
	__u64 length;
	__u32 flags;	/* MMUVISOR_ATTACH_*; OMIT_OWN and COALESCE_OWN exclude each other */
	__u32 reserved0;
	__u64 reserved1;
};

/* MMUVISOR_IOC_MAKE_EXCLUSIVE and MMUVISOR_IOC_RELEASE. */
struct mmuvisor_range {
	__u64 addr;	/* page aligned */
	__u64 npages;	/* 1..MMUVISOR_MAX_NPAGES */
	__u64 count;	/* out: MAKE_EXCLUSIVE: pages converted by this call
			 * (pages the device already held are skipped),
			 * also on error; less than npages with success
			 * when a signal or a waiting DETACH stopped it;
			 * RELEASE: device mappings dropped */
	__u64 reserved;
};

/* mmuvisor_access.op */
#define MMUVISOR_ACCESS_READ	0
#define MMUVISOR_ACCESS_WRITE	1	/* store value */
#define MMUVISOR_ACCESS_ADD	2	/* add value (wrapping) */

/* MMUVISOR_IOC_DEVICE_ACCESS: the device touches the u64 at addr through its
 * own kernel mapping of the page, only while it holds exclusive access. */
struct mmuvisor_access {
	__u64 addr;	/* 8-byte aligned, inside the attached range */
	__u32 op;	/* MMUVISOR_ACCESS_* */
	__u32 flags;	/* must be 0 */
	__u64 value;
	__u64 old;	/* out: the value before the access */
};

/* mmuvisor_page_state.state */
#define MMUVISOR_PAGE_NONE	0	/* never made exclusive by this context */
#define MMUVISOR_PAGE_HELD	1	/* device holds exclusive access now */
#define MMUVISOR_PAGE_REVOKED	2	/* held, then revoked by an invalidation */
#define MMUVISOR_PAGE_RELEASED	3	/* held, then dropped by RELEASE */

struct mmuvisor_page_state {
	__u64 pfn;		/* PFN the device maps while HELD, else 0; 0 also
				 * unless the file was opened with CAP_SYS_ADMIN
				 * (as /proc/pid/pagemap) */
	__u32 state;		/* MMUVISOR_PAGE_* */
	__u32 revocations;	/* revocations of this page since ATTACH,
				 * saturating at MMUVISOR_MAX_REVOCATIONS */
};

#define MMUVISOR_MAX_REVOCATIONS	((1U << 21) - 1)

/* MMUVISOR_IOC_QUERY: fills npages records at user pointer states. */
struct mmuvisor_query {
	__u64 addr;
	__u64 npages;
	__u64 states;	/* user pointer to struct mmuvisor_page_state[npages] */
	__u64 held;	/* out: pages of the range the device holds */
	__u32 flags;	/* must be 0 */
	__u32 reserved0;
	__u64 reserved1;
};

/* MMUVISOR_IOC_STATS: counters of this context (since open). */
struct mmuvisor_stats {
	__u64 events_seen;	/* invalidations the notifier saw */
	__u64 events_dropped;	/* of those, not queued: the ring was full */
	__u64 events_queued;	/* records waiting to be read */
	__u64 conversions;	/* pages made exclusive and installed */
	__u64 revocations;	/* device mappings revoked by invalidations */
	__u64 retries;		/* installs retried (mmu_interval_read_retry) */
	__u64 pages_held;	/* pages the device holds now */
	__u64 attach_start;	/* attached range, 0/0 if not attached */
	__u64 attach_length;
	__u64 revoke_max_ns;	/* longest hold of the device lock by the
				 * notifier callback (revoking), since open */
	__u64 reserved[2];
};

/* mmuvisor_event.event: enum mmu_notifier_event of the invalidation. */
#define MMUVISOR_EV_UNMAP		0
#define MMUVISOR_EV_CLEAR		1
#define MMUVISOR_EV_PROTECTION_VMA	2
#define MMUVISOR_EV_PROTECTION_PAGE	3
#define MMUVISOR_EV_SOFT_DIRTY		4
#define MMUVISOR_EV_RELEASE		5
#define MMUVISOR_EV_MIGRATE		6
#define MMUVISOR_EV_EXCLUSIVE		7
#define MMUVISOR_EV_OTHER		255	/* a kind this ABI does not name */
#define MMUVISOR_EV_OVERFLOW		256	/* not an invalidation: the ring was
						 * full, count records were lost */

/* mmuvisor_event.flags */
#define MMUVISOR_EVENT_F_OWNER_SELF	(1U << 0) /* range->owner is this context */
#define MMUVISOR_EVENT_F_BLOCKABLE	(1U << 1) /* mmu_notifier_range_blockable() */
#define MMUVISOR_EVENT_F_OWNER_SET	(1U << 2) /* range->owner is not NULL */

/*
 * read() returns whole records, at least one (blocking unless O_NONBLOCK,
 * then EAGAIN), at most count / sizeof(struct mmuvisor_event); count below
 * one record gives EINVAL. It returns 0 (end of file) once the ring is
 * empty after DETACH or after the attached mm went away (its
 * MMU_NOTIFY_RELEASE); a new ATTACH starts a new stream on the same ring.
 * One record per notifier invalidation that intersects the attached range
 * (own conversions: see MMUVISOR_ATTACH_*).
 *
 * The ring never blocks an invalidation. When it is full, the records that
 * do not fit are counted in one MMUVISOR_EV_OVERFLOW record (its seq is
 * the first lost one, count how many), kept in a slot reserved for it, and
 * poll() reports EPOLLPRI until that record is read. seq stays contiguous:
 * a record stands for seq .. seq + count - 1. time_ns never decreases
 * along seq. poll(): EPOLLIN while records are queued, EPOLLHUP at end of
 * file. A read into a bad buffer loses the records it took (EFAULT; they
 * count in events_dropped).
 */
struct mmuvisor_event {
	__u64 seq;	/* 0, 1, 2, ... per context */
	__u64 time_ns;	/* ktime_get_ns() (CLOCK_MONOTONIC) when queued */
	__u64 start;	/* the invalidated range as given by the kernel */
	__u64 end;
	__u32 event;	/* MMUVISOR_EV_* */
	__u32 flags;	/* MMUVISOR_EVENT_F_* */
	__u32 revoked;	/* device mappings this invalidation revoked */
	__u32 count;	/* invalidations this record stands for: 1, more when
			 * own conversions were coalesced; OVERFLOW: records lost */
};

#define MMUVISOR_IOC_VERSION	_IOR(MMUVISOR_IOC_MAGIC, 0x00, struct mmuvisor_version)
#define MMUVISOR_IOC_ATTACH	_IOW(MMUVISOR_IOC_MAGIC, 0x01, struct mmuvisor_attach)
#define MMUVISOR_IOC_DETACH	_IO(MMUVISOR_IOC_MAGIC, 0x02)
#define MMUVISOR_IOC_MAKE_EXCLUSIVE _IOWR(MMUVISOR_IOC_MAGIC, 0x03, struct mmuvisor_range)
#define MMUVISOR_IOC_DEVICE_ACCESS _IOWR(MMUVISOR_IOC_MAGIC, 0x04, struct mmuvisor_access)
#define MMUVISOR_IOC_QUERY	_IOWR(MMUVISOR_IOC_MAGIC, 0x05, struct mmuvisor_query)
#define MMUVISOR_IOC_RELEASE	_IOWR(MMUVISOR_IOC_MAGIC, 0x06, struct mmuvisor_range)
#define MMUVISOR_IOC_STATS	_IOR(MMUVISOR_IOC_MAGIC, 0x07, struct mmuvisor_stats)

#endif /* _UAPI_LINUX_MMUVISOR_H */
