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
        while i < a.len() && !a[i].is_ascii_alphanumeric() && a[i] != b'~' && a[i] != b'^' {
            i += 1;
        }
        while j < b.len() && !b[j].is_ascii_alphanumeric() && b[j] != b'~' && b[j] != b'^' {
            j += 1;
        }

        // Tilde: sorts before everything else, including the end.
        let a_tilde = a.get(i) == Some(&b'~');
        let b_tilde = b.get(j) == Some(&b'~');
        if a_tilde || b_tilde {
            if !(a_tilde && b_tilde) {
                return if a_tilde {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            i += 1;
            j += 1;
            continue;
        }

        // Caret: newer than the end of the string, older than any segment.
        let a_caret = a.get(i) == Some(&b'^');
        let b_caret = b.get(j) == Some(&b'^');
        if a_caret || b_caret {
            if i >= a.len() {
                return Ordering::Less;
            }
            if j >= b.len() {
                return Ordering::Greater;
            }
            if !(a_caret && b_caret) {
                return if a_caret {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            i += 1;
            j += 1;
            continue;
        }

        if i >= a.len() || j >= b.len() {
            break;
        }

        let numeric = a[i].is_ascii_digit();
        let seg_end = |s: &[u8], start: usize| {
            let mut end = start;
            while end < s.len()
                && (if numeric {
                    s[end].is_ascii_digit()
                } else {
                    s[end].is_ascii_alphabetic()
                })
            {
                end += 1;
            }
            end
        };
        let a_end = seg_end(a, i);
        let b_end = seg_end(b, j);
        let seg_a = &a[i..a_end];
        let seg_b = &b[j..b_end];
        if seg_b.is_empty() {
            // Segments of different kinds: numeric is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let ta = trim_zeros(seg_a);
            let tb = trim_zeros(seg_b);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            seg_a.cmp(seg_b)
        };
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
