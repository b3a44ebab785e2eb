//! Kernel version comparison, rpm-vercmp style.
//!
//! Versions are split into runs of digits and runs of letters; everything
//! else separates segments. Numeric runs compare as numbers (leading zeros
//! ignored) and are newer than alphabetic runs; `~` sorts before anything
//! (even the end of the string) and `^` after the end but before any further
//! segment, as in rpm ≥ 4.15. This orders every kernel naming scheme we meet:
//! `5.15.0-1051-azure`, `4.18.0-513.5.1.el8_9.x86_64`, `6.1.0-18-amd64`,
//! `5.14.21-150500.55.19-default`.

use std::cmp::Ordering;

/// Compares two version strings like rpm's `rpmvercmp`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        i = skip_separators(a, i);
        j = skip_separators(b, j);
        match markers(a, i, b, j) {
            Marker::Decides(ord) => return ord,
            Marker::Both => {
                i += 1;
                j += 1;
                continue;
            }
            Marker::Neither => {}
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        let (ord, a_end, b_end) = compare_segments(a, i, b, j);
        if ord != Ordering::Equal {
            return ord;
        }
        i = a_end;
        j = b_end;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, _) => Ordering::Greater,
    }
}

/// The index of the next segment or marker (`~`, `^`) from `i`.
fn skip_separators(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && !s[i].is_ascii_alphanumeric() && s[i] != b'~' && s[i] != b'^' {
        i += 1;
    }
    i
}

/// What the `~` / `^` markers at the two positions say.
enum Marker {
    /// Neither string has a marker here: compare segments.
    Neither,
    /// Both have the same marker: skip it in both.
    Both,
    Decides(Ordering),
}

fn markers(a: &[u8], i: usize, b: &[u8], j: usize) -> Marker {
    // Tilde: sorts before everything else, including the end.
    let a_tilde = a.get(i) == Some(&b'~');
    let b_tilde = b.get(j) == Some(&b'~');
    if a_tilde || b_tilde {
        return match (a_tilde, b_tilde) {
            (true, true) => Marker::Both,
            (true, false) => Marker::Decides(Ordering::Less),
            _ => Marker::Decides(Ordering::Greater),
        };
    }
    // Caret: newer than the end of the string, older than any segment.
    let a_caret = a.get(i) == Some(&b'^');
    let b_caret = b.get(j) == Some(&b'^');
    if !(a_caret || b_caret) {
        return Marker::Neither;
    }
    if i >= a.len() {
        return Marker::Decides(Ordering::Less);
    }
    if j >= b.len() {
        return Marker::Decides(Ordering::Greater);
    }
    match (a_caret, b_caret) {
        (true, true) => Marker::Both,
        (true, false) => Marker::Decides(Ordering::Less),
        _ => Marker::Decides(Ordering::Greater),
    }
}

/// Compares the segments at `a[i..]` and `b[j..]` (both non-empty, after
/// [`skip_separators`]); the order and where each segment ends. The kind
/// (numeric or alphabetic) is `a`'s: when `b`'s differs, numeric is newer.
fn compare_segments(a: &[u8], i: usize, b: &[u8], j: usize) -> (Ordering, usize, usize) {
    let numeric = a[i].is_ascii_digit();
    let of_kind = |c: u8| {
        if numeric {
            c.is_ascii_digit()
        } else {
            c.is_ascii_alphabetic()
        }
    };
    let seg_end =
        |s: &[u8], start: usize| start + s[start..].iter().take_while(|&&c| of_kind(c)).count();
    let a_end = seg_end(a, i);
    let b_end = seg_end(b, j);
    let seg_a = &a[i..a_end];
    let seg_b = &b[j..b_end];
    if seg_b.is_empty() {
        // Segments of different kinds: numeric is newer.
        let ord = if numeric {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        return (ord, a_end, b_end);
    }
    let ord = if numeric {
        // As numbers of any size: longer (without leading zeros) is larger.
        let ta = trim_zeros(seg_a);
        let tb = trim_zeros(seg_b);
        ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
    } else {
        seg_a.cmp(seg_b)
    };
    (ord, a_end, b_end)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[first..]
}

/// Sorts kernel versions newest first.
pub fn sort_newest_first(versions: &mut [String]) {
    versions.sort_by(|a, b| compare_versions(b, a));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Ordering::*;

    #[test]
    fn rpm_vercmp_reference_cases() {
        // Cases from rpm's own test suite semantics.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p10", Less),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("1.0aa", "1.0a", Greater),
            ("6.0.rc1", "6.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("010", "10", Equal),
            ("a", "1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn orders_real_kernel_versions_of_each_family() {
        assert_eq!(
            compare_versions("5.15.0-1051-azure", "5.15.0-1049-azure"),
            Greater
        );
        assert_eq!(
            compare_versions("5.15.0-102-generic", "5.15.0-88-generic"),
            Greater
        );
        assert_eq!(
            compare_versions(
                "4.18.0-513.5.1.el8_9.x86_64",
                "4.18.0-477.10.1.el8_8.x86_64"
            ),
            Greater
        );
        assert_eq!(
            compare_versions("4.18.0-80.11.2.el8_0.ppc64le", "4.18.0-80.el8.ppc64le"),
            Greater
        );
        assert_eq!(compare_versions("6.1.0-18-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(
            compare_versions(
                "5.14.21-150500.55.19-default",
                "5.14.21-150500.53.2-default"
            ),
            Greater
        );
        assert_eq!(
            compare_versions("3.10.0-1160.119.1.el7.x86_64", "3.10.0-1160.el7.x86_64"),
            Greater
        );
        let mut versions = vec![
            "6.1.0-9-amd64".to_string(),
            "6.1.0-18-amd64".into(),
            "5.10.0-28-amd64".into(),
        ];
        sort_newest_first(&mut versions);
        assert_eq!(
            versions,
            ["6.1.0-18-amd64", "6.1.0-9-amd64", "5.10.0-28-amd64"]
        );
    }

    proptest! {
        #[test]
        fn comparison_is_antisymmetric(a in "[0-9a-z.~^_-]{0,12}", b in "[0-9a-z.~^_-]{0,12}") {
            prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
        }

        #[test]
        fn never_panics_on_arbitrary_text(a in ".{0,40}", b in ".{0,40}") {
            let _ = compare_versions(&a, &b);
        }
    }
}
