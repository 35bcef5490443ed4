//! Side-by-side rendering of two completion sequences.

use crate::run::CqeRecord;

/// errno names worth showing in a result (`-125 (ECANCELED)`).
const ERRNOS: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ESPIPE, "ESPIPE"),
    (libc::EPIPE, "EPIPE"),
    (kqring::sys::ETIME, "ETIME"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ENOTSOCK, "ENOTSOCK"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::ECONNRESET, "ECONNRESET"),
    (libc::EALREADY, "EALREADY"),
    (libc::ECANCELED, "ECANCELED"),
    (libc::ENOSYS, "ENOSYS"),
];

/// A result as `5`, or `-125 (ECANCELED)` for a known errno.
pub fn render_res(res: i32) -> String {
    if res >= 0 {
        return res.to_string();
    }
    match ERRNOS.iter().find(|(e, _)| *e == -res) {
        Some((_, name)) => format!("{res} ({name})"),
        None => res.to_string(),
    }
}

/// Renders two completion sequences side by side, one completion a row,
/// rows that differ marked `!=`.
pub fn diff(left_name: &str, left: &[CqeRecord], right_name: &str, right: &[CqeRecord]) -> String {
    let cells = |seq: &[CqeRecord]| -> Vec<String> { seq.iter().map(|c| c.to_string()).collect() };
    let (l, r) = (cells(left), cells(right));
    let width = l
        .iter()
        .map(String::len)
        .chain([left_name.len(), "(none)".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("      {left_name:<width$}    {right_name}\n");
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).map_or("(none)", String::as_str);
        let b = r.get(i).map_or("(none)", String::as_str);
        let mark = if left.get(i) == right.get(i) {
            "  "
        } else {
            "!="
        };
        out.push_str(&format!("{i:>3} {mark} {a:<width$}    {b}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_rows_are_marked() {
        let a = [CqeRecord {
            user_data: 1,
            res: -libc::ECANCELED,
            flags: 0,
            data: None,
        }];
        let b = [
            CqeRecord {
                user_data: 1,
                res: 2,
                flags: 0,
                data: Some(b"ok".to_vec()),
            },
            CqeRecord {
                user_data: 2,
                res: 0,
                flags: 2,
                data: None,
            },
        ];
        let d = diff("kqring", &a, "io_uring", &b);
        assert!(d.contains("ECANCELED"), "{d}");
        assert!(d.contains("data=\"ok\""), "{d}");
        assert!(d.contains("MORE"), "{d}");
        assert!(d.contains("(none)"), "{d}");
        assert_eq!(d.matches("!=").count(), 2, "{d}");
        assert_eq!(
            diff("x", &b, "y", &b).matches("!=").count(),
            0,
            "identical sequences"
        );
    }
}
