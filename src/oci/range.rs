//! Byte ranges in registry requests: the `Content-Range` of an upload chunk and the
//! `Range` of a blob read.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("malformed Content-Range {0:?}; expected <start>-<end>")]
    MalformedContentRange(String),
    #[error("range {header:?} is not satisfiable for {size} bytes")]
    Unsatisfiable { header: String, size: u64 },
}

/// `Content-Range` of a chunk: `<start>-<end>` (inclusive) as the OCI spec writes it,
/// also accepting the RFC 9110 form `bytes <start>-<end>[/<total>]` that some clients
/// send.
pub fn content_range(v: &str) -> Result<(u64, u64), RangeError> {
    let bad = || RangeError::MalformedContentRange(v.to_owned());
    let v = v.trim();
    let v = v.strip_prefix("bytes").map(str::trim_start).unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (s, e) = v.split_once('-').ok_or_else(bad)?;
    Ok((
        s.trim().parse().map_err(|_| bad())?,
        e.trim().parse().map_err(|_| bad())?,
    ))
}

/// A single `bytes=` range against a blob of `size` bytes, as a half-open range. Several
/// ranges, or another unit, give `None`: the whole blob is answered (allowed by RFC 9110).
pub fn byte_range(header: &str, size: u64) -> Result<Option<Range<u64>>, RangeError> {
    let unsatisfiable = || RangeError::Unsatisfiable {
        header: header.to_owned(),
        size,
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| unsatisfiable())?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        size.saturating_sub(suffix)..size
    } else {
        let s: u64 = start.parse().map_err(|_| unsatisfiable())?;
        let e: u64 = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse().map_err(|_| unsatisfiable())?
        };
        if s >= size || e < s {
            return Err(unsatisfiable());
        }
        s..e.min(size - 1) + 1
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(byte_range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(byte_range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(byte_range("bytes=50-500", 100).unwrap(), Some(50..100));
        assert_eq!(byte_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert!(byte_range("bytes=100-", 100).is_err());
        assert!(byte_range("bytes=9-3", 100).is_err());
        assert!(byte_range("bytes=x-3", 100).is_err());
        assert!(byte_range("bytes=-5", 0).is_err());
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("0-99").unwrap(), (0, 99));
        assert_eq!(content_range("bytes 100-199/*").unwrap(), (100, 199));
        assert!(content_range("abc").is_err());
    }

    proptest! {
        #[test]
        fn content_ranges_round_trip(start: u64, end: u64) {
            prop_assert_eq!(content_range(&format!("{start}-{end}")), Ok((start, end)));
            prop_assert_eq!(content_range(&format!("bytes {start}-{end}/*")), Ok((start, end)));
        }

        #[test]
        fn a_satisfiable_range_lies_inside_the_blob(header in "bytes=[0-9]{0,20}-[0-9]{0,20}", size: u64) {
            if let Ok(Some(r)) = byte_range(&header, size) {
                prop_assert!(r.start < r.end && r.end <= size);
            }
        }

        #[test]
        fn any_text_is_answered_without_panicking(header in "\\PC*", size: u64) {
            let _ = byte_range(&header, size);
            let _ = content_range(&header);
        }
    }
}
