// SPDX-License-Identifier: GPL-2.0
/*
 * mmuvisor helper module: /dev/mmuvisor, one simulated device per open
 * file, and its ioctls. See include/uapi/linux/mmuvisor.h for the ABI.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/capability.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "mmv.h"

static_assert(sizeof(struct mmuvisor_version) == 32);
static_assert(sizeof(struct mmuvisor_attach) == 32);
static_assert(sizeof(struct mmuvisor_range) == 32);
static_assert(sizeof(struct mmuvisor_access) == 32);
static_assert(sizeof(struct mmuvisor_page_state) == 16);
static_assert(sizeof(struct mmuvisor_query) == 48);
static_assert(sizeof(struct mmuvisor_stats) == 96);
static_assert(sizeof(struct mmuvisor_event) == 48);
static_assert((MMUVISOR_RING_CAPACITY & (MMUVISOR_RING_CAPACITY - 1)) == 0);

static int mmv_open(struct inode *inode, struct file *file)
{
	struct mmv_ctx *ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);

	if (!ctx)
		return -ENOMEM;
	init_rwsem(&ctx->attach_sem);
	xa_init_flags(&ctx->pages, XA_FLAGS_ACCOUNT);
	mmv_events_init(ctx);
	file->private_data = ctx;
	return 0;
}

/* Caller holds attach_sem for write. */
static void mmv_detach_locked(struct mmv_ctx *ctx)
{
	/* Waits for running callbacks; drops the notifier's mmgrab. */
	mmu_interval_notifier_remove(&ctx->notifier);
	mmv_free_pages(ctx);
	mmv_events_detach(ctx);
	ctx->attached = false;
	ctx->mm = NULL;
	ctx->start = ctx->end = 0;
}

static int mmv_release(struct inode *inode, struct file *file)
{
	struct mmv_ctx *ctx = file->private_data;

	down_write(&ctx->attach_sem);
	if (ctx->attached)
		mmv_detach_locked(ctx);
	up_write(&ctx->attach_sem);
	mmv_events_fini(ctx);
	kfree(ctx);
	return 0;
}

#define MMV_ATTACH_FLAGS (MMUVISOR_ATTACH_OMIT_OWN | MMUVISOR_ATTACH_COALESCE_OWN)

static int mmv_attach(struct mmv_ctx *ctx, const struct mmuvisor_attach *a)
{
	int ret;

	if (!a->length || !PAGE_ALIGNED(a->start) || !PAGE_ALIGNED(a->length) ||
	    a->start + a->length < a->start || a->start + a->length > TASK_SIZE)
		return -EINVAL;
	if ((a->flags & ~MMV_ATTACH_FLAGS) || a->reserved0 || a->reserved1 ||
	    (a->flags & MMV_ATTACH_FLAGS) == MMV_ATTACH_FLAGS)
		return -EINVAL;
	if (!current->mm)
		return -EINVAL;

	if (down_write_killable(&ctx->attach_sem))
		return -EINTR;
	if (ctx->attached) {
		ret = -EBUSY;
		goto out;
	}
	ret = mmv_events_attach(ctx, a->flags);
	if (ret)
		goto out;
	ctx->start = a->start;
	ctx->end = a->start + a->length;
	ctx->mm = current->mm;
	/* The range fields are read by the callback from now on. */
	ret = mmu_interval_notifier_insert(&ctx->notifier, current->mm,
					   a->start, a->length, &mmv_mni_ops);
	if (ret) {
		ctx->mm = NULL;
		ctx->start = ctx->end = 0;
		goto out;
	}
	ctx->attached = true;
out:
	up_write(&ctx->attach_sem);
	return ret;
}

static int mmv_detach(struct mmv_ctx *ctx)
{
	int ret = 0;

	/* Killable: a long MAKE_EXCLUSIVE gives way, but may take a while. */
	if (down_write_killable(&ctx->attach_sem))
		return -EINTR;
	if (!ctx->attached)
		ret = -ENOTCONN;
	else if (current->mm != ctx->mm)
		ret = -EPERM;
	else
		mmv_detach_locked(ctx);
	up_write(&ctx->attach_sem);
	return ret;
}

static int mmv_stats(struct mmv_ctx *ctx, struct mmuvisor_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (down_read_killable(&ctx->attach_sem))
		return -EINTR;
	if (ctx->attached) {
		st->attach_start = ctx->start;
		st->attach_length = ctx->end - ctx->start;
	}
	mmv_dev_lock(ctx);
	st->conversions = ctx->conversions;
	st->revocations = ctx->revocations;
	st->retries = ctx->retries;
	st->pages_held = ctx->pages_held;
	mmv_dev_unlock(ctx);
	up_read(&ctx->attach_sem);
	mmv_events_stats(ctx, st);
	return 0;
}

static void mmv_version(struct mmuvisor_version *v)
{
	memset(v, 0, sizeof(*v));
	v->abi_version = MMUVISOR_ABI_VERSION;
	v->features = mmv_have_exclusive() ? MMUVISOR_FEAT_EXCLUSIVE : 0;
#ifdef MMV_API_RANGE
	v->features |= MMUVISOR_FEAT_RANGE_API;
#endif
	v->event_size = sizeof(struct mmuvisor_event);
	v->page_state_size = sizeof(struct mmuvisor_page_state);
	v->ring_capacity = MMUVISOR_RING_CAPACITY;
	v->max_npages = MMUVISOR_MAX_NPAGES;
	v->kernel_version = LINUX_VERSION_CODE;
}

/* The ioctls that work on the attached range, under attach_sem (read). */
static long mmv_ioctl_attached(struct file *file, unsigned int cmd,
			       void __user *uarg)
{
	struct mmv_ctx *ctx = file->private_data;
	union {
		struct mmuvisor_range range;
		struct mmuvisor_access access;
		struct mmuvisor_query query;
	} u;
	size_t size = _IOC_SIZE(cmd);
	long ret;

	if (copy_from_user(&u, uarg, size))
		return -EFAULT;
	if (cmd == MMUVISOR_IOC_DEVICE_ACCESS && u.access.op != MMUVISOR_ACCESS_READ &&
	    !(file->f_mode & FMODE_WRITE))
		return -EBADF;

	if (down_read_killable(&ctx->attach_sem))
		return -EINTR;
	if (!ctx->attached) {
		ret = -ENOTCONN;
		goto out;
	}
	if (current->mm != ctx->mm) {
		ret = -EPERM;
		goto out;
	}
	switch (cmd) {
	case MMUVISOR_IOC_MAKE_EXCLUSIVE:
		ret = u.range.reserved ? -EINVAL : mmv_make_exclusive(ctx, &u.range);
		break;
	case MMUVISOR_IOC_RELEASE:
		ret = u.range.reserved ? -EINVAL : mmv_release_range(ctx, &u.range);
		break;
	case MMUVISOR_IOC_DEVICE_ACCESS:
		ret = mmv_device_access(ctx, &u.access);
		break;
	case MMUVISOR_IOC_QUERY:
		/* Raw PFNs only for the privileged, as /proc/pid/pagemap. */
		ret = mmv_query(ctx, &u.query,
				file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN));
		break;
	default:
		ret = -ENOTTY;
	}
out:
	up_read(&ctx->attach_sem);
	/* MAKE_EXCLUSIVE reports its progress (count) on error too. */
	if ((!ret || (cmd == MMUVISOR_IOC_MAKE_EXCLUSIVE && ret != -ENOTCONN &&
		      ret != -EPERM)) && copy_to_user(uarg, &u, size))
		ret = -EFAULT;
	return ret;
}

static long mmv_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct mmv_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case MMUVISOR_IOC_ATTACH:
	case MMUVISOR_IOC_DETACH:
	case MMUVISOR_IOC_MAKE_EXCLUSIVE:
	case MMUVISOR_IOC_RELEASE:
		/* They change the device: a file opened for writing only. */
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
	}

	switch (cmd) {
	case MMUVISOR_IOC_VERSION: {
		struct mmuvisor_version v;

		mmv_version(&v);
		return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
	}
	case MMUVISOR_IOC_ATTACH: {
		struct mmuvisor_attach a;

		if (copy_from_user(&a, uarg, sizeof(a)))
			return -EFAULT;
		return mmv_attach(ctx, &a);
	}
	case MMUVISOR_IOC_DETACH:
		return mmv_detach(ctx);
	case MMUVISOR_IOC_STATS: {
		struct mmuvisor_stats st;
		int ret = mmv_stats(ctx, &st);

		if (ret)
			return ret;
		return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
	}
	case MMUVISOR_IOC_MAKE_EXCLUSIVE:
	case MMUVISOR_IOC_RELEASE:
	case MMUVISOR_IOC_DEVICE_ACCESS:
	case MMUVISOR_IOC_QUERY:
		return mmv_ioctl_attached(file, cmd, uarg);
	}
	return -ENOTTY;
}

static const struct file_operations mmv_fops = {
	.owner = THIS_MODULE,	/* unload is refused while a file is open */
	.open = mmv_open,
	.release = mmv_release,
	.read = mmv_read,
	.poll = mmv_poll,
	.unlocked_ioctl = mmv_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice mmv_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mmuvisor",
	.fops = &mmv_fops,
	.mode = 0600,
};

static int __init mmv_init(void)
{
	int ret = misc_register(&mmv_misc);

	if (!ret)
		pr_info("mmuvisor: /dev/mmuvisor ready (abi %u, %s)\n",
			MMUVISOR_ABI_VERSION,
#if defined(MMV_API_FOLIO)
			"make_device_exclusive"
#elif defined(MMV_API_RANGE)
			"make_device_exclusive_range"
#else
			"no device-exclusive support"
#endif
			);
	return ret;
}

static void __exit mmv_exit(void)
{
	misc_deregister(&mmv_misc);
}

/*
 * Test mode for the exclusive-hugetlb drill: the kernel itself must refuse
 * device-exclusive on hugetlb folios (CVE-2025-22034), so let a private
 * hugetlb VMA past the module's own check and see what the kernel does.
 * Root only; off by default.
 */
bool mmv_test_hugetlb;
module_param_named(test_hugetlb, mmv_test_hugetlb, bool, 0600);
MODULE_PARM_DESC(test_hugetlb,
		 "let private hugetlb VMAs reach make_device_exclusive() (test mode)");

module_init(mmv_init);
module_exit(mmv_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmuvisor: simulated device that makes guest pages device-exclusive");
