//! Who runs the CLI, for the records of replays, edits and releases: the
//! process's real user id, named by the password database. Never the
//! `USER` or `LOGNAME` variables, which anyone can set (and which are
//! unset in containers and cron).

use std::ffi::CStr;

/// The login name of the process's real user, or `uid:<n>` when the
/// password database does not know it.
pub fn os_user() -> String {
    // SAFETY: getuid cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    name_of(uid).unwrap_or_else(|| format!("uid:{uid}"))
}

/// The password database's name for `uid`.
fn name_of(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to memory we own, valid for the call;
        // `buf.len()` is its true size.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string
        // inside `buf`, which is still alive.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_uid_whatever_the_environment_claims() {
        // SAFETY: as above.
        let uid = unsafe { libc::getuid() };
        let expected = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_owned())
            })
            .unwrap_or_else(|| format!("uid:{uid}"));
        assert_eq!(os_user(), expected);
        assert_eq!(name_of(4_000_000_000), None);
    }
}
