//! Mirror of kmod/include/uapi/linux/mmuvisor.h: layouts, constants and
//! ioctl numbers. Sizes are checked at compile time against the header.

use std::mem::size_of;

pub const ABI_VERSION: u32 = 1;
pub const IOC_MAGIC: u32 = 0xBC;
pub const MAX_NPAGES: u64 = 1 << 20;
pub const RING_CAPACITY: u32 = 4096;

pub const FEAT_EXCLUSIVE: u32 = 1 << 0;
pub const FEAT_RANGE_API: u32 = 1 << 1;

pub const ATTACH_OMIT_OWN: u32 = 1 << 0;
pub const ATTACH_COALESCE_OWN: u32 = 1 << 1;

pub const MAX_REVOCATIONS: u32 = (1 << 21) - 1;

pub const ACCESS_READ: u32 = 0;
pub const ACCESS_WRITE: u32 = 1;
pub const ACCESS_ADD: u32 = 2;

pub const PAGE_NONE: u32 = 0;
pub const PAGE_HELD: u32 = 1;
pub const PAGE_REVOKED: u32 = 2;
pub const PAGE_RELEASED: u32 = 3;

pub const EV_UNMAP: u32 = 0;
pub const EV_CLEAR: u32 = 1;
pub const EV_PROTECTION_VMA: u32 = 2;
pub const EV_PROTECTION_PAGE: u32 = 3;
pub const EV_SOFT_DIRTY: u32 = 4;
pub const EV_RELEASE: u32 = 5;
pub const EV_MIGRATE: u32 = 6;
pub const EV_EXCLUSIVE: u32 = 7;
pub const EV_OTHER: u32 = 255;
pub const EV_OVERFLOW: u32 = 256;

pub const EVENT_F_OWNER_SELF: u32 = 1 << 0;
pub const EVENT_F_BLOCKABLE: u32 = 1 << 1;
pub const EVENT_F_OWNER_SET: u32 = 1 << 2;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_version {
    pub abi_version: u32,
    pub features: u32,
    pub event_size: u32,
    pub page_state_size: u32,
    pub ring_capacity: u32,
    pub max_npages: u32,
    pub kernel_version: u32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_attach {
    pub start: u64,
    pub length: u64,
    pub flags: u32,
    pub reserved0: u32,
    pub reserved1: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_range {
    pub addr: u64,
    pub npages: u64,
    pub count: u64,
    pub reserved: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_access {
    pub addr: u64,
    pub op: u32,
    pub flags: u32,
    pub value: u64,
    pub old: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_page_state {
    pub pfn: u64,
    pub state: u32,
    pub revocations: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_query {
    pub addr: u64,
    pub npages: u64,
    pub states: u64,
    pub held: u64,
    pub flags: u32,
    pub reserved0: u32,
    pub reserved1: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_stats {
    pub events_seen: u64,
    pub events_dropped: u64,
    pub events_queued: u64,
    pub conversions: u64,
    pub revocations: u64,
    pub retries: u64,
    pub pages_held: u64,
    pub attach_start: u64,
    pub attach_length: u64,
    pub revoke_max_ns: u64,
    pub reserved: [u64; 2],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct mmuvisor_event {
    pub seq: u64,
    pub time_ns: u64,
    pub start: u64,
    pub end: u64,
    pub event: u32,
    pub flags: u32,
    pub revoked: u32,
    pub count: u32,
}

// The header's layouts (also static_assert-ed in kmod/mmv_main.c).
const _: () = assert!(size_of::<mmuvisor_version>() == 32);
const _: () = assert!(size_of::<mmuvisor_attach>() == 32);
const _: () = assert!(size_of::<mmuvisor_range>() == 32);
const _: () = assert!(size_of::<mmuvisor_access>() == 32);
const _: () = assert!(size_of::<mmuvisor_page_state>() == 16);
const _: () = assert!(size_of::<mmuvisor_query>() == 48);
const _: () = assert!(size_of::<mmuvisor_stats>() == 96);
const _: () = assert!(size_of::<mmuvisor_event>() == 48);

vmm_sys_util::ioctl_ior_nr!(MMUVISOR_IOC_VERSION, IOC_MAGIC, 0x00, mmuvisor_version);
vmm_sys_util::ioctl_iow_nr!(MMUVISOR_IOC_ATTACH, IOC_MAGIC, 0x01, mmuvisor_attach);
vmm_sys_util::ioctl_io_nr!(MMUVISOR_IOC_DETACH, IOC_MAGIC, 0x02);
vmm_sys_util::ioctl_iowr_nr!(MMUVISOR_IOC_MAKE_EXCLUSIVE, IOC_MAGIC, 0x03, mmuvisor_range);
vmm_sys_util::ioctl_iowr_nr!(MMUVISOR_IOC_DEVICE_ACCESS, IOC_MAGIC, 0x04, mmuvisor_access);
vmm_sys_util::ioctl_iowr_nr!(MMUVISOR_IOC_QUERY, IOC_MAGIC, 0x05, mmuvisor_query);
vmm_sys_util::ioctl_iowr_nr!(MMUVISOR_IOC_RELEASE, IOC_MAGIC, 0x06, mmuvisor_range);
vmm_sys_util::ioctl_ior_nr!(MMUVISOR_IOC_STATS, IOC_MAGIC, 0x07, mmuvisor_stats);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_header() {
        // _IOR(0xBC, 0, 32 bytes) etc., as the C preprocessor computes them.
        assert_eq!(MMUVISOR_IOC_VERSION(), 0x8020_bc00);
        assert_eq!(MMUVISOR_IOC_ATTACH(), 0x4020_bc01);
        assert_eq!(MMUVISOR_IOC_DETACH(), 0x0000_bc02);
        assert_eq!(MMUVISOR_IOC_MAKE_EXCLUSIVE(), 0xc020_bc03);
        assert_eq!(MMUVISOR_IOC_DEVICE_ACCESS(), 0xc020_bc04);
        assert_eq!(MMUVISOR_IOC_QUERY(), 0xc030_bc05);
        assert_eq!(MMUVISOR_IOC_RELEASE(), 0xc020_bc06);
        assert_eq!(MMUVISOR_IOC_STATS(), 0x8060_bc07);
    }

    /// Field name -> (offset, size) of `struct name` in the C header.
    fn c_layout(name: &str) -> Vec<(String, usize, usize)> {
        let header = include_str!("../../kmod/include/uapi/linux/mmuvisor.h");
        let open = format!("struct {name} {{");
        let body = header
            .split(&open)
            .nth(1)
            .and_then(|b| b.split("};").next())
            .unwrap_or_else(|| panic!("no {open} in the header"));
        let mut off: usize = 0;
        let mut fields = Vec::new();
        for line in body.lines() {
            let line = line.trim();
            let size: usize = if line.starts_with("__u64 ") {
                8
            } else if line.starts_with("__u32 ") {
                4
            } else {
                continue;
            };
            let decl = line[6..].split(';').next().unwrap_or_default().trim();
            let (field, n) = match decl.split_once('[') {
                Some((f, rest)) => (
                    f,
                    rest.trim_end_matches(']')
                        .parse::<usize>()
                        .expect("array len"),
                ),
                None => (decl, 1),
            };
            off = off.next_multiple_of(size);
            fields.push((field.to_string(), off, size * n));
            off += size * n;
        }
        fields
    }

    macro_rules! same_layout {
        ($t:ident { $($f:ident),* $(,)? }) => {{
            let c = c_layout(stringify!($t));
            let rust: Vec<(String, usize)> =
                vec![$((stringify!($f).to_string(), std::mem::offset_of!($t, $f))),*];
            let c_names: Vec<(String, usize)> = c.iter().map(|(n, o, _)| (n.clone(), *o)).collect();
            assert_eq!(rust, c_names, "struct {} differs from the header", stringify!($t));
            let end = c.last().map(|(_, o, s)| o + s).unwrap_or(0);
            assert_eq!(size_of::<$t>(), end.next_multiple_of(8), "size of {}", stringify!($t));
        }};
    }

    #[test]
    fn structs_match_the_header_field_by_field() {
        same_layout!(mmuvisor_version {
            abi_version,
            features,
            event_size,
            page_state_size,
            ring_capacity,
            max_npages,
            kernel_version,
            reserved
        });
        same_layout!(mmuvisor_attach {
            start,
            length,
            flags,
            reserved0,
            reserved1
        });
        same_layout!(mmuvisor_range {
            addr,
            npages,
            count,
            reserved
        });
        same_layout!(mmuvisor_access {
            addr,
            op,
            flags,
            value,
            old
        });
        same_layout!(mmuvisor_page_state {
            pfn,
            state,
            revocations
        });
        same_layout!(mmuvisor_query {
            addr,
            npages,
            states,
            held,
            flags,
            reserved0,
            reserved1
        });
        same_layout!(mmuvisor_stats {
            events_seen,
            events_dropped,
            events_queued,
            conversions,
            revocations,
            retries,
            pages_held,
            attach_start,
            attach_length,
            revoke_max_ns,
            reserved
        });
        same_layout!(mmuvisor_event {
            seq,
            time_ns,
            start,
            end,
            event,
            flags,
            revoked,
            count
        });
    }

    #[test]
    fn constants_match_the_header() {
        let header = include_str!("../../kmod/include/uapi/linux/mmuvisor.h");
        let define = |name: &str| -> String {
            header
                .lines()
                .find_map(|l| l.strip_prefix(&format!("#define MMUVISOR_{name}")))
                .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| panic!("no MMUVISOR_{name}"))
        };
        assert_eq!(define("ABI_VERSION"), ABI_VERSION.to_string());
        assert_eq!(define("EV_OVERFLOW"), EV_OVERFLOW.to_string());
        assert_eq!(define("EV_OTHER"), EV_OTHER.to_string());
        assert_eq!(define("PAGE_RELEASED"), PAGE_RELEASED.to_string());
        assert_eq!(MAX_REVOCATIONS, (1 << 21) - 1);
    }
}
