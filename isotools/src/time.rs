//! ISO 9660 date encodings (ECMA-119 8.4.26.1 and 9.1.5), always in UTC.

use crate::error::{IsoError, Result};

/// A validated UTC instant, stored as broken-down civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IsoTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

const MIN_UNIX: i64 = 0; // 1970-01-01T00:00:00Z
const MAX_UNIX: i64 = 5_869_583_999; // 2155-12-31T23:59:59Z

impl IsoTime {
    /// Converts unix seconds; refuses values a 7-byte directory record date cannot hold.
    pub(crate) fn from_unix(secs: i64) -> Result<Self> {
        if !(MIN_UNIX..=MAX_UNIX).contains(&secs) {
            return Err(IsoError::InvalidTimestamp(secs));
        }
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Ok(IsoTime {
            year: year as u16,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: ((rem % 3600) / 60) as u8,
            second: (rem % 60) as u8,
        })
    }

    /// The 7-byte "recording date and time" of directory records and TF entries.
    pub(crate) fn record_bytes(&self) -> [u8; 7] {
        [
            (self.year - 1900) as u8,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0, // GMT offset in 15 minute units: UTC
        ]
    }

    /// The 17-byte volume descriptor date: "YYYYMMDDHHMMSScc" + offset.
    pub(crate) fn volume_bytes(&self) -> [u8; 17] {
        let text = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(text.as_bytes());
        out
    }
}

/// The "not specified" volume date: sixteen ASCII zeros and a zero offset.
pub(crate) fn unspecified_volume_date() -> [u8; 17] {
    let mut out = [b'0'; 17];
    out[16] = 0;
    out
}

/// Howard Hinnant's days-from-civil inverse; valid for the whole i64 day range we accept.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = IsoTime::from_unix(0).unwrap();
        assert_eq!(t.record_bytes(), [70, 1, 1, 0, 0, 0, 0]);
        assert_eq!(&t.volume_bytes()[..16], b"1970010100000000");
        // 2024-02-29T12:34:56Z
        let t = IsoTime::from_unix(1_709_210_096).unwrap();
        assert_eq!(t.record_bytes(), [124, 2, 29, 12, 34, 56, 0]);
        let t = IsoTime::from_unix(MAX_UNIX).unwrap();
        assert_eq!(t.record_bytes(), [255, 12, 31, 23, 59, 59, 0]);
    }

    #[test]
    fn out_of_range_is_refused() {
        assert!(matches!(
            IsoTime::from_unix(-1),
            Err(IsoError::InvalidTimestamp(-1))
        ));
        assert!(IsoTime::from_unix(MAX_UNIX + 1).is_err());
    }
}
