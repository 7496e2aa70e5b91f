//! `--web-root` request paths on arbitrary text: the percent-decoding and the checks that keep every
//! path inside the folder.
//!
//! Checked: no panic; a path that is looked up names plain names only, none of them empty, `.`, `..`,
//! hidden (a leading dot), holding a slash, a backslash, NUL or another control character; a folder ends
//! in `index.html`; a name with `/`-free percent escapes decodes to the name the path spells.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use wschat::web::files::{lookup, MAX_PATH_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let Ok(found) = lookup(path) else { return };
    assert!(path.len() <= MAX_PATH_BYTES && path.starts_with('/'));
    let mut names = 0;
    for c in found.rel.components() {
        let Component::Normal(name) = c else { panic!("{c:?} in {:?} from {path:?}", found.rel) };
        let name = name.to_str().expect("UTF-8 names");
        assert!(!name.is_empty() && name != "." && name != "..");
        assert!(!name.starts_with('.'), "hidden {name:?} from {path:?}");
        assert!(!name.contains(['/', '\\']) && !name.chars().any(|c| (c as u32) < 0x20 || c == '\u{7f}'));
        names += 1;
    }
    assert!(names >= 1);
    assert_eq!(found.folder, path.ends_with('/'));
    if found.folder {
        assert!(found.rel.ends_with("index.html"));
    }
    // Without escapes the names are the path's segments.
    if !path.contains('%') {
        let segments: Vec<&str> = path[1..].split('/').filter(|s| !s.is_empty()).collect();
        let mut want = std::path::PathBuf::from_iter(&segments);
        if found.folder {
            want.push("index.html");
        }
        assert_eq!(found.rel, want);
    }
});
