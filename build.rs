//! Chooses the kevent backend for the target and, with the `libkqueue`
//! feature, finds the system library through pkg-config.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kq_native, kq_libkqueue, kq_compat)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let libkqueue = std::env::var_os("CARGO_FEATURE_LIBKQUEUE").is_some();
    let native = matches!(
        os.as_str(),
        "macos"
            | "ios"
            | "tvos"
            | "watchos"
            | "visionos"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
    );
    let backend = if native {
        "kq_native"
    } else if os == "linux" && libkqueue {
        "kq_libkqueue"
    } else if os == "linux" {
        "kq_compat"
    } else {
        panic!("kqring needs kqueue (macOS, the BSDs) or Linux; target OS is {os:?}");
    };
    println!("cargo::rustc-cfg={backend}");
    if backend == "kq_libkqueue" {
        link_libkqueue();
    }
}

#[cfg(feature = "libkqueue")]
fn link_libkqueue() {
    // pkg-config prints the link flags itself; a missing library is only
    // fatal when something is linked, so `cargo check` works without it.
    if let Err(err) = pkg_config::Config::new().probe("libkqueue") {
        println!("cargo::warning=pkg-config could not find libkqueue ({err}); linking -lkqueue");
        println!("cargo::rustc-link-lib=kqueue");
    }
}

#[cfg(not(feature = "libkqueue"))]
fn link_libkqueue() {}
