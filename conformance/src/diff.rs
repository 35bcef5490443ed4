//! Side-by-side rendering of two completion sequences.

use crate::run::{CqeRecord, DESCRIPTOR};

/// errno names, as results are written (`res=-ECANCELED`). Where two
/// names share a number on a platform, the first is shown.
const ERRNOS: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
    (libc::ECHILD, "ECHILD"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EXDEV, "EXDEV"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ESPIPE, "ESPIPE"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ELOOP, "ELOOP"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOTEMPTY, "ENOTEMPTY"),
    (libc::ERANGE, "ERANGE"),
    (libc::ENOSYS, "ENOSYS"),
    (kqring::sys::ETIME, "ETIME"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ENOTSOCK, "ENOTSOCK"),
    (libc::EDESTADDRREQ, "EDESTADDRREQ"),
    (libc::EMSGSIZE, "EMSGSIZE"),
    (libc::EPROTOTYPE, "EPROTOTYPE"),
    (libc::ENOPROTOOPT, "ENOPROTOOPT"),
    (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
    (libc::EADDRINUSE, "EADDRINUSE"),
    (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
    (libc::ENETDOWN, "ENETDOWN"),
    (libc::ENETUNREACH, "ENETUNREACH"),
    (libc::ECONNABORTED, "ECONNABORTED"),
    (libc::ECONNRESET, "ECONNRESET"),
    (libc::ENOBUFS, "ENOBUFS"),
    (libc::EISCONN, "EISCONN"),
    (libc::ENOTCONN, "ENOTCONN"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    (libc::EALREADY, "EALREADY"),
    (libc::EINPROGRESS, "EINPROGRESS"),
    (libc::ECANCELED, "ECANCELED"),
];

/// The errno called `name` (`"ECANCELED"`) on this platform.
pub(crate) fn errno(name: &str) -> Option<i32> {
    ERRNOS.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
}

/// A result as the text format writes it: `5`, `-ECANCELED` for a known
/// errno, `fd` for a new descriptor ([`DESCRIPTOR`]).
pub fn render_res(res: i32) -> String {
    if res == DESCRIPTOR {
        return "fd".into();
    }
    if res >= 0 {
        return res.to_string();
    }
    match ERRNOS.iter().find(|(e, _)| *e == -res) {
        Some((_, name)) => format!("-{name}"),
        None => res.to_string(),
    }
}

/// Renders two completion sequences side by side, one completion a row,
/// rows that differ marked `!=`.
pub fn diff(left_name: &str, left: &[CqeRecord], right_name: &str, right: &[CqeRecord]) -> String {
    let l: Vec<String> = left.iter().map(|c| c.to_string()).collect();
    let width = width(left_name, l.iter());
    let mut out = format!("       {left_name:<width$}    {right_name}\n");
    rows(&mut out, width, left, right, &mut 0);
    out
}

/// Renders two runs side by side, a wait's completions under its own
/// heading, rows that differ marked `!=`.
pub fn diff_groups(
    left_name: &str,
    left: &[Vec<CqeRecord>],
    right_name: &str,
    right: &[Vec<CqeRecord>],
) -> String {
    let l: Vec<String> = left.iter().flatten().map(|c| c.to_string()).collect();
    let width = width(left_name, l.iter());
    let mut out = format!("       {left_name:<width$}    {right_name}\n");
    let n = left.len().max(right.len());
    let mut row = 0;
    for i in 0..n {
        let (a, b) = (
            left.get(i).map_or(&[][..], Vec::as_slice),
            right.get(i).map_or(&[][..], Vec::as_slice),
        );
        if i + 1 == n {
            if a.is_empty() && b.is_empty() {
                break;
            }
            out.push_str("    after the last step:\n");
        } else {
            out.push_str(&format!("    wait #{}:\n", i + 1));
        }
        rows(&mut out, width, a, b, &mut row);
    }
    out
}

fn width<'a>(name: &str, cells: impl Iterator<Item = &'a String>) -> usize {
    cells
        .map(String::len)
        .chain([name.len(), "(none)".len()])
        .max()
        .unwrap_or(0)
}

fn rows(out: &mut String, width: usize, left: &[CqeRecord], right: &[CqeRecord], row: &mut usize) {
    for i in 0..left.len().max(right.len()) {
        let a = left
            .get(i)
            .map_or("(none)".to_string(), ToString::to_string);
        let b = right
            .get(i)
            .map_or("(none)".to_string(), ToString::to_string);
        let mark = if left.get(i) == right.get(i) {
            "  "
        } else {
            "!="
        };
        out.push_str(&format!("{:>3} {mark} {a:<width$}    {b}\n", *row));
        *row += 1;
    }
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
            from: None,
            stat: None,
            waited: None,
        }];
        let b = [
            CqeRecord {
                user_data: 1,
                res: 2,
                flags: 0,
                data: Some(b"ok".to_vec()),
                from: None,
                stat: None,
                waited: None,
            },
            CqeRecord {
                user_data: 2,
                res: 0,
                flags: 2,
                data: None,
                from: Some("u".into()),
                stat: None,
                waited: None,
            },
        ];
        let d = diff("kqring", &a, "io_uring", &b);
        assert!(d.contains("ECANCELED"), "{d}");
        assert!(d.contains("data=\"ok\""), "{d}");
        assert!(d.contains("more"), "{d}");
        assert!(d.contains("from=u"), "{d}");
        assert!(d.contains("(none)"), "{d}");
        assert_eq!(d.matches("!=").count(), 2, "{d}");
        assert_eq!(
            diff("x", &b, "y", &b).matches("!=").count(),
            0,
            "identical sequences"
        );
    }
}
