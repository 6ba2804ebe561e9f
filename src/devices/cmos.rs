//! MC146818-style CMOS RTC at ports 0x70 (index) and 0x71 (data): the host's
//! UTC time, never "update in progress". Without it Linux's rtc_cmos driver
//! reads 0xff, sees the update bit stuck and waits seconds before giving up.
//! Writes to the clock are kept in CMOS RAM but do not move the clock.

use super::bus::{IoAction, PortDevice};

pub const CMOS_BASE: u16 = 0x70;
pub const CMOS_LEN: u16 = 2;

const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
const REG_CENTURY: usize = 0x32;
/// Register B: 24-hour mode; bit 2 (binary) clear, so BCD.
const B_24H: u8 = 0x02;
const B_BINARY: u8 = 0x04;
/// Register D: valid RAM and time.
const D_VRT: u8 = 0x80;
/// Register A: 32.768 kHz time base, 1024 Hz periodic rate; UIP clear.
const A_DEFAULT: u8 = 0x26;

/// The clock and its 128 bytes of CMOS RAM.
pub struct Cmos {
    index: usize,
    ram: [u8; 128],
}

impl Default for Cmos {
    fn default() -> Self {
        let mut ram = [0u8; 128];
        ram[REG_A] = A_DEFAULT;
        ram[REG_B] = B_24H;
        ram[REG_D] = D_VRT;
        Cmos { index: 0, ram }
    }
}

/// Broken-down UTC time of `secs` since the epoch:
/// (sec, min, hour, weekday 1-7 with Sunday 1, day, month, year).
fn utc(secs: i64) -> (u32, u32, u32, u32, u32, u32, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    // 1970-01-01 was a Thursday (weekday 5 with Sunday = 1).
    let weekday = ((days + 4).rem_euclid(7) + 1) as u32;
    (
        rem % 60,
        rem / 60 % 60,
        rem / 3600,
        weekday,
        day,
        month,
        year,
    )
}

impl Cmos {
    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn encode(&self, v: u32) -> u8 {
        let v = (v % 100) as u8;
        if self.ram[REG_B] & B_BINARY != 0 {
            v
        } else {
            (v / 10) << 4 | (v % 10)
        }
    }

    fn register(&self, reg: usize, secs: i64) -> u8 {
        let (s, m, h, wd, d, mo, y) = utc(secs);
        match reg {
            0x00 => self.encode(s),
            0x02 => self.encode(m),
            0x04 => self.encode(h),
            0x06 => self.encode(wd),
            0x07 => self.encode(d),
            0x08 => self.encode(mo),
            0x09 => self.encode(y.rem_euclid(100) as u32),
            REG_CENTURY => self.encode(y.div_euclid(100).rem_euclid(100) as u32),
            REG_A => self.ram[REG_A] & 0x7f,
            REG_C => 0,
            _ => self.ram[reg],
        }
    }
}

impl PortDevice for Cmos {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        let v = match offset {
            0 => self.index as u8,
            _ => self.register(self.index, Self::now()),
        };
        data.fill(v);
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction> {
        let &v = data.first()?;
        match offset {
            // Bit 7 masks NMIs on real hardware; only the index matters here.
            0 => self.index = usize::from(v & 0x7f),
            _ if self.index == REG_C || self.index == REG_D => {}
            _ => self.ram[self.index] = v,
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(c: &mut Cmos, reg: u8) -> u8 {
        c.write(0, &[reg]);
        let mut b = [0u8];
        c.read(1, &mut b);
        b[0]
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), (0, 0, 0, 5, 1, 1, 1970));
        // 2026-11-25 18:40:54 UTC, a Wednesday.
        assert_eq!(utc(1_795_632_054), (54, 40, 18, 4, 25, 11, 2026));
        // 2000-02-29, a Tuesday.
        assert_eq!(utc(951_782_400), (0, 0, 0, 3, 29, 2, 2000));
    }

    #[test]
    fn bcd_time_and_status() {
        let mut c = Cmos::default();
        assert_eq!(read(&mut c, 0x0a) & 0x80, 0, "never update-in-progress");
        assert_eq!(read(&mut c, 0x0d), D_VRT);
        assert_eq!(c.register(0x09, 1_795_632_054), 0x26);
        assert_eq!(c.register(0x32, 1_795_632_054), 0x20);
        assert_eq!(c.register(0x04, 1_795_632_054), 0x18);
        c.write(0, &[0x8b]);
        c.write(1, &[B_24H | B_BINARY]);
        assert_eq!(c.register(0x04, 1_795_632_054), 18);
        c.write(0, &[0x40]);
        c.write(1, &[0x5a]);
        assert_eq!(read(&mut c, 0x40), 0x5a);
        let month = read(&mut c, 0x08);
        assert!((1..=12).contains(&month));
    }
}
