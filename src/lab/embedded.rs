//! The lab's inputs that live in the repository, embedded in the binary so
//! that an installed or copied mmuvisor runs the lab exactly as a checkout
//! does: the helper module's sources and the kernel patches. They are
//! written out into the cache on use, one folder per content hash (the
//! scripts and config fragments: see scripts.rs).

use super::cache::StableHash;
use super::LabError;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A set of files: (path relative to the set's folder, contents).
pub type Files = &'static [(&'static str, &'static str)];

/// The helper module (kmod/, without its tests).
pub const KMOD: Files = &[
    ("Kbuild", include_str!("../../kmod/Kbuild")),
    ("Makefile", include_str!("../../kmod/Makefile")),
    ("mmv.h", include_str!("../../kmod/mmv.h")),
    ("mmv_main.c", include_str!("../../kmod/mmv_main.c")),
    ("mmv_events.c", include_str!("../../kmod/mmv_events.c")),
    ("mmv_device.c", include_str!("../../kmod/mmv_device.c")),
    ("mmv_range.c", include_str!("../../kmod/mmv_range.c")),
    (
        "include/uapi/linux/mmuvisor.h",
        include_str!("../../kmod/include/uapi/linux/mmuvisor.h"),
    ),
];

/// The project's own lab patches (resources/kernels/patches/*.patch),
/// applied to every lab kernel before the user's. None today.
pub const PATCHES: Files = &[];

/// The known-bad fixture kernels (resources/kernels/patches/known-bad/).
pub const KNOWN_BAD: Files = &[
    (
        "0001-mm-rmap-drop-notifier-from-make_device_exclusive.patch",
        include_str!("../../resources/kernels/patches/known-bad/0001-mm-rmap-drop-notifier-from-make_device_exclusive.patch"),
    ),
    (
        "0002-kvm-keep-sptes-on-exclusive.patch",
        include_str!("../../resources/kernels/patches/known-bad/0002-kvm-keep-sptes-on-exclusive.patch"),
    ),
    (
        "0003-mm-rmap-drop-dirty-bit-in-make_device_exclusive.patch",
        include_str!("../../resources/kernels/patches/known-bad/0003-mm-rmap-drop-dirty-bit-in-make_device_exclusive.patch"),
    ),
    (
        "0004-mm-rmap-drop-soft-dirty-in-make_device_exclusive.patch",
        include_str!("../../resources/kernels/patches/known-bad/0004-mm-rmap-drop-soft-dirty-in-make_device_exclusive.patch"),
    ),
    (
        "0005-mm-memory-restore-exclusive-pte-ignores-vma-perms.patch",
        include_str!("../../resources/kernels/patches/known-bad/0005-mm-memory-restore-exclusive-pte-ignores-vma-perms.patch"),
    ),
    (
        "0006-kvm-mmu-no-invalidation-retry-after-pfn-lookup.patch",
        include_str!("../../resources/kernels/patches/known-bad/0006-kvm-mmu-no-invalidation-retry-after-pfn-lookup.patch"),
    ),
    (
        "0007-mm-memory-restore-exclusive-pte-drops-uffd-wp.patch",
        include_str!("../../resources/kernels/patches/known-bad/0007-mm-memory-restore-exclusive-pte-drops-uffd-wp.patch"),
    ),
    (
        "0008-mm-make_device_exclusive-accepts-hugetlb.patch",
        include_str!("../../resources/kernels/patches/known-bad/0008-mm-make_device_exclusive-accepts-hugetlb.patch"),
    ),
    (
        "0009-mm-memory-restore-exclusive-pte-always-read-only.patch",
        include_str!("../../resources/kernels/patches/known-bad/0009-mm-memory-restore-exclusive-pte-always-read-only.patch"),
    ),
    (
        "0010-mm-rmap-migration-drops-soft-dirty-of-exclusive-ptes.patch",
        include_str!("../../resources/kernels/patches/known-bad/0010-mm-rmap-migration-drops-soft-dirty-of-exclusive-ptes.patch"),
    ),
    (
        "0011-mm-memory-zap-of-exclusive-entry-keeps-rss.patch",
        include_str!("../../resources/kernels/patches/known-bad/0011-mm-memory-zap-of-exclusive-entry-keeps-rss.patch"),
    ),
    (
        "0012-mm-memory-restore-of-exclusive-entry-leaks-a-reference.patch",
        include_str!("../../resources/kernels/patches/known-bad/0012-mm-memory-restore-of-exclusive-entry-leaks-a-reference.patch"),
    ),
    (
        "0013-kvm-mmu-memslot-delete-keeps-sptes.patch",
        include_str!("../../resources/kernels/patches/known-bad/0013-kvm-mmu-memslot-delete-keeps-sptes.patch"),
    ),
];

/// The content hash of a set of files (names and contents).
pub fn hash(files: Files) -> StableHash {
    let mut h = StableHash::new();
    for (name, text) in files {
        h.field(name.as_bytes()).field(text.as_bytes());
    }
    h
}

/// Writes `files` into `cache/embedded/<what>-<hash>/` (once: a finished
/// folder is reused; concurrent writers each build a temporary folder and
/// the first rename wins) and returns that folder. `mode` applies to every
/// file.
pub fn write_out(cache: &Path, what: &str, files: Files, mode: u32) -> Result<PathBuf, LabError> {
    let dir = cache
        .join("embedded")
        .join(format!("{what}-{}", hash(files).hex()));
    if dir.is_dir() {
        return Ok(dir);
    }
    // Unique per process and call: the lab writes out its scripts from two
    // threads at once (kernel build, asset fetch).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache
        .join("embedded")
        .join(format!(".{what}-{}-{call}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (name, text) in files {
        let path = tmp.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| LabError::io("cannot create", parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| LabError::io("cannot write", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| LabError::io("cannot chmod", &path, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| LabError::io("cannot create", &tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(LabError::io("cannot create", &dir, e));
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files under `root/dir` that `keep` selects, relative to it.
    fn on_disk(dir: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        fn walk(base: &Path, at: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
            for e in std::fs::read_dir(at).expect("readable").flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).expect("below").display().to_string();
                if p.is_dir() {
                    walk(base, &p, keep, out);
                } else if keep(&rel) {
                    out.push(rel);
                }
            }
        }
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out = Vec::new();
        walk(&base, &base, keep, &mut out);
        out.sort();
        out
    }

    fn names(files: Files) -> Vec<String> {
        let mut v: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        v.sort();
        v
    }

    /// A file added to kmod/ or to the patches must be added here too, or
    /// an installed binary would build the module without it.
    #[test]
    fn every_source_file_is_embedded() {
        let kmod = on_disk("kmod", &|rel| {
            !rel.starts_with("tests/")
                && (rel.ends_with(".c")
                    || rel.ends_with(".h")
                    || rel == "Kbuild"
                    || rel == "Makefile")
        });
        assert_eq!(names(KMOD), kmod, "update embedded::KMOD");
        let patch = |rel: &str| rel.ends_with(".patch") && !rel.contains('/');
        assert_eq!(
            names(PATCHES),
            on_disk("resources/kernels/patches", &patch),
            "update embedded::PATCHES"
        );
        assert_eq!(
            names(KNOWN_BAD),
            on_disk("resources/kernels/patches/known-bad", &patch),
            "update embedded::KNOWN_BAD"
        );
    }

    #[test]
    fn written_out_once_per_content() {
        let cache = std::env::temp_dir().join(format!("mmuvisor-embedded-{}", std::process::id()));
        let a = write_out(&cache, "kmod", KMOD, 0o644).expect("written");
        assert!(a.join("include/uapi/linux/mmuvisor.h").is_file());
        assert_eq!(write_out(&cache, "kmod", KMOD, 0o644).expect("again"), a);
        let _ = std::fs::remove_dir_all(&cache);
    }
}
