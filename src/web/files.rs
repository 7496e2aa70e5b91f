//! The files of the folder `--web-root DIR` serves on the web port instead of the embedded chat page: a
//! drop-in for workerman-chat's Web folder (its index.php renamed index.html, with css/ js/ img/ swf/), served
//! as it is. Files are looked up, opened and checked synchronously, in the event loop (the daemon is
//! single-threaded), each at most [`MAX_FILE_BYTES`]. One of at most [`INLINE_MAX_BYTES`] is read into the
//! answer; a larger one is answered with its head and the open file ([`FileBody`]), whose body the
//! connection reads a chunk at a time as the socket drains: a reader, slow or fast, holds one chunk of the
//! daemon's memory, and a loop turn spends one chunk's read and write on it. The body sent is the file that
//! was opened and checked; if it shrinks meanwhile the connection ends without sending past what it has.
//!
//! What a path names:
//! - `/` is DIR/index.html and `/sub/` is DIR/sub/index.html; a folder without its index.html is a 404
//!   (folders are never listed).
//! - `/sub`, a folder named without its trailing slash, is a 301 to `/sub/` (the query kept). Its index.html
//!   is not served at once under `/sub`: the page's relative links (`css/style.css`) resolve against the
//!   slash form, as on the web server workerman-chat's folder came from.
//! - The query is ignored for the lookup (`/js/app.js?v=3` is DIR/js/app.js).
//! - Names starting with a dot (`.git`, `.env`, `.htaccess`) are not served: 404.
//!
//! No path leaves DIR. The path as sent (at most [`MAX_PATH_BYTES`], else 414) is split at `/` and each
//! segment percent-decoded once; refused with a 400 are a bad escape, an encoded slash (`%2f`, refused rather
//! than decoded into a separator), an empty segment (`//`, so nothing is absolute after decoding), a `.` or
//! `..` segment, a backslash, NUL or other control byte, and a segment that is not UTF-8 once decoded
//! (overlong forms such as `%c0%ae` included). A double-encoded `%252e%252e` is the literal name `%2e%2e`.
//! The segments are joined to DIR and the candidate canonicalized (symlinks resolved): it must lie inside the
//! canonical DIR (403 otherwise: a symlink out of it) and be a regular file (403 for a fifo, a socket or a
//! device; 404 for what is missing). All this before anything is opened. The file is then opened without
//! following a last symlink and without blocking (a fifo swapped in meanwhile cannot stall the loop), and
//! checked to be the very file looked at (same device and inode) and, through `/proc/self/fd`, still inside
//! DIR, before a byte of it is read; a file swapped meanwhile is a 403.
//!
//! The answer: 200 with a Content-Type by extension ([`content_type`], `application/octet-stream` when
//! unknown), `X-Content-Type-Options: nosniff`, Content-Length, Last-Modified (the file's mtime), a weak ETag
//! made of the size and the mtime, and `Cache-Control: no-cache` (browsers keep the file but ask again, and
//! get a 304 while it is unchanged). `If-None-Match` (weak comparison, `*` included) or, when the request has
//! none, `If-Modified-Since` makes it a 304 without a body. HEAD: the same head, Content-Length included,
//! without the body (the file is not read). A file over [`MAX_FILE_BYTES`] is a 500 that says so.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use log::debug;

pub use crate::http::MAX_PATH_BYTES;
use crate::http::{HttpError, Request};
use crate::outbox::{FileBody, BODY_CHUNK};

/// Largest file served, in bytes.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest file answered in one piece with its head; a larger one is streamed from the open file, a chunk
/// ([`BODY_CHUNK`]) at a time as the socket drains.
pub const INLINE_MAX_BYTES: u64 = BODY_CHUNK as u64;

/// Headers of every answer about a file of the folder, errors included.
const NOSNIFF: &str = "X-Content-Type-Options: nosniff\r\n";

/// An answer from the folder.
#[derive(Debug)]
pub struct Served {
    /// The whole response, or its head when `body` follows.
    pub bytes: Vec<u8>,
    /// A large file's body, sent from the open file after the head.
    pub body: Option<FileBody>,
    /// Why the request was refused, if its path was bad.
    pub refused: Option<HttpError>,
}

/// What a request path names under the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The file (or folder) relative to the folder served: plain names only, at least one (`/` is
    /// `index.html`).
    pub rel: PathBuf,
    /// The path ended with `/`: `rel` ends with `index.html`.
    pub folder: bool,
}

/// Why a request path names no file that may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// The path is bad (400) or too long (414).
    Bad(HttpError, &'static str),
    /// A name starting with a dot: not served (404).
    Hidden,
}

/// The file a request path (as sent, without query) names under the folder: see the module documentation.
pub fn lookup(path: &str) -> Result<Lookup, PathRefusal> {
    let bad = |why| Err(PathRefusal::Bad(HttpError::BadPath, why));
    if path.len() > MAX_PATH_BYTES {
        return Err(PathRefusal::Bad(HttpError::PathTooLong, "over 1024 bytes"));
    }
    let Some(rest) = path.strip_prefix('/') else { return bad("not an absolute path") };
    let folder = rest.is_empty() || rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut rel = PathBuf::new();
    let mut hidden = false;
    if !rest.is_empty() {
        for raw in rest.split('/') {
            let segment = decode_segment(raw)?;
            hidden |= segment.starts_with('.');
            let mut parts = Path::new(&segment).components();
            // Belt and braces: one plain name, nothing a join could treat as a root or a parent.
            match (parts.next(), parts.next()) {
                (Some(Component::Normal(_)), None) => rel.push(&segment),
                _ => return bad("not a plain name"),
            }
        }
    }
    if hidden {
        return Err(PathRefusal::Hidden);
    }
    if folder {
        rel.push("index.html");
    }
    Ok(Lookup { rel, folder })
}

/// One path segment percent-decoded once, or why it is refused.
fn decode_segment(raw: &str) -> Result<String, PathRefusal> {
    let bad = |why| Err(PathRefusal::Bad(HttpError::BadPath, why));
    if raw.is_empty() {
        return bad("empty segment");
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
            else {
                return bad("bad percent escape");
            };
            i += 3;
            let b = (hi * 16 + lo) as u8;
            if b == b'/' {
                return bad("encoded slash");
            }
            b
        } else {
            i += 1;
            bytes[i - 1]
        };
        if b == b'\\' {
            return bad("backslash");
        }
        if b < 0x20 || b == 0x7f {
            return bad("control byte");
        }
        out.push(b);
    }
    let Ok(segment) = String::from_utf8(out) else { return bad("not UTF-8") };
    if segment == "." || segment == ".." {
        return bad("dot segment");
    }
    Ok(segment)
}

/// The Content-Type for a file name, by its extension (any case); `application/octet-stream` when unknown.
pub fn content_type(name: &Path) -> &'static str {
    let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "eot" => "application/vnd.ms-fontobject",
        "swf" => "application/x-shockwave-flash",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// The answer to `req` from the folder `root` (canonical).
pub fn serve(root: &Path, req: &Request<'_>) -> Served {
    let found = match lookup(req.path) {
        Ok(found) => found,
        Err(PathRefusal::Bad(e, why)) => {
            debug!("web root: {:?} refused: {why}", req.path);
            let body = format!("{e}: {why}\n");
            return Served {
                bytes: req.respond(e.status(), TEXT, NOSNIFF, body.as_bytes()),
                refused: Some(e),
                body: None,
            };
        }
        Err(PathRefusal::Hidden) => return plain(req, 404, "not found\n"),
    };
    let canonical = match fs::canonicalize(root.join(&found.rel)) {
        Ok(canonical) => canonical,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return plain(req, 403, "forbidden\n"),
        Err(_) => return plain(req, 404, "not found\n"),
    };
    if !canonical.starts_with(root) {
        debug!("web root: {:?} leads out of the folder, to {}", req.path, canonical.display());
        return plain(req, 403, "forbidden\n");
    }
    let Ok(meta) = fs::symlink_metadata(&canonical) else { return plain(req, 404, "not found\n") };
    if meta.is_dir() && !found.folder {
        return redirect_to_folder(req);
    }
    if !meta.is_file() {
        return plain(req, 403, "forbidden\n");
    }
    if meta.len() > MAX_FILE_BYTES {
        return too_large(req);
    }
    let file = match open_checked(root, &canonical, &meta) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return plain(req, 404, "not found\n"),
        Err(e) => {
            debug!("web root: {} not opened: {e}", canonical.display());
            return plain(req, 403, "forbidden\n");
        }
    };
    let Ok(meta) = file.metadata() else { return plain(req, 500, "could not read the file\n") };
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let etag = format!("W/\"{:x}-{:x}-{:x}\"", meta.len(), meta.mtime(), meta.mtime_nsec());
    let last_modified = mtime.map(|t| imf_fixdate(t.as_secs()));
    let mut validators = format!("ETag: {etag}\r\n");
    if let Some(date) = &last_modified {
        validators.push_str(&format!("Last-Modified: {date}\r\n"));
    }
    if not_modified(req, &etag, mtime.map(|t| t.as_secs())) {
        let head = format!("HTTP/1.1 304 Not Modified\r\n{validators}{CACHE}{NOSNIFF}Connection: close\r\n\r\n");
        return Served { bytes: head.into_bytes(), refused: None, body: None };
    }
    if meta.len() > MAX_FILE_BYTES {
        return too_large(req);
    }
    let (len, inline, body) = if req.head {
        (meta.len(), Vec::new(), None)
    } else if meta.len() > INLINE_MAX_BYTES {
        // Streamed from this very file (the one checked above) as the socket drains.
        (meta.len(), Vec::new(), Some(FileBody::new(file, meta.len())))
    } else {
        let mut inline = Vec::with_capacity(meta.len() as usize);
        if let Err(e) = file.take(meta.len()).read_to_end(&mut inline) {
            debug!("web root: {} not read: {e}", canonical.display());
            return plain(req, 500, "could not read the file\n");
        }
        (inline.len() as u64, inline, None)
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\n{validators}{CACHE}{NOSNIFF}Connection: close\r\n\r\n",
        content_type(&found.rel)
    )
    .into_bytes();
    out.extend_from_slice(&inline);
    Served { bytes: out, refused: None, body }
}

const TEXT: &str = "text/plain; charset=utf-8";
const CACHE: &str = "Cache-Control: no-cache\r\n";

/// A plain-text answer (`Cache-Control: no-store`, nosniff).
fn plain(req: &Request<'_>, status: u16, text: &str) -> Served {
    Served { bytes: req.respond(status, TEXT, NOSNIFF, text.as_bytes()), refused: None, body: None }
}

fn too_large(req: &Request<'_>) -> Served {
    let text = format!("file too large to serve (over {} MiB)\n", MAX_FILE_BYTES >> 20);
    plain(req, 500, &text)
}

/// 301 from a folder named without its trailing slash to the slash form, the query kept. The path is the
/// one sent, which [`lookup`] accepted (no `//` start, so the Location is never protocol-relative); bytes
/// outside ASCII are percent-encoded.
fn redirect_to_folder(req: &Request<'_>) -> Served {
    let mut to = ascii_only(req.path);
    to.push('/');
    if let Some(query) = req.query {
        to.push('?');
        to.push_str(&ascii_only(query));
    }
    let extra = format!("Location: {to}\r\n{NOSNIFF}");
    Served { bytes: req.respond(301, TEXT, &extra, format!("moved to {to}\n").as_bytes()), refused: None, body: None }
}

/// `s` with every byte outside printable ASCII percent-encoded.
fn ascii_only(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens `canonical` (inside `root`, a regular file as `meta` says) for reading: without following a last
/// symlink, without blocking on a fifo, and only if it is still the file `meta` describes and still inside
/// `root` once open.
fn open_checked(root: &Path, canonical: &Path, meta: &Metadata) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(canonical)?;
    let opened = file.metadata()?;
    let changed = || io::Error::new(io::ErrorKind::PermissionDenied, "the file changed while it was looked up");
    if !opened.is_file() || opened.dev() != meta.dev() || opened.ino() != meta.ino() {
        return Err(changed());
    }
    use std::os::fd::AsRawFd;
    if let Ok(real) = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        if !real.starts_with(root) {
            return Err(changed());
        }
    }
    Ok(file)
}

/// Whether the validators of the request say the client has the file: `If-None-Match` (weak comparison,
/// `*` for any) when the request has one, else `If-Modified-Since` against the file's mtime in seconds.
fn not_modified(req: &Request<'_>, etag: &str, mtime_secs: Option<u64>) -> bool {
    if let Some(tags) = req.if_none_match {
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return tags.trim() == "*" || tags.split(',').any(|t| weak(t) == weak(etag));
    }
    match (req.if_modified_since.and_then(parse_imf_fixdate), mtime_secs) {
        (Some(since), Some(mtime)) => mtime <= since,
        _ => false,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Seconds since the epoch as an IMF-fixdate (RFC 9110 section 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn imf_fixdate(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[((days + 4) % 7) as usize],
        MONTHS[m as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// An IMF-fixdate as seconds since the epoch; `None` for anything else (the obsolete date forms included:
/// the validator is then ignored and the file sent).
pub fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 29 || !s.is_ascii() || &s[3..5] != ", " || &s[25..] != " GMT" {
        return None;
    }
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = &s[r];
        digits.bytes().all(|c| c.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
    };
    let (d, y, hh, mm, ss) = (num(5..7)?, num(12..16)?, num(17..19)?, num(20..22)?, num(23..25)?);
    let m = MONTHS.iter().position(|&name| name == &s[8..11])? as i64 + 1;
    if !(1..=31).contains(&d) || y < 1970 || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// (year, month 1..=12, day 1..=31) of a day counted from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day counted from 1970-01-01 of (year, month 1..=12, day 1..=31).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::web::Site;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicU32, Ordering};

    const SECRET: &str = "SECRET-MARKER-7f3a";

    /// A folder under the temp dir, removed when dropped: `base/secret.txt` beside `base/root/`, the folder
    /// served.
    struct Fixture {
        base: PathBuf,
        site: Site,
    }

    impl Fixture {
        fn new() -> Fixture {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let base = std::env::temp_dir().join(format!("wschat-web-unit-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            let root = base.join("root");
            for dir in ["css", "js", "sub", "empty", "img", "swf"] {
                fs::create_dir_all(root.join(dir)).unwrap();
            }
            let write = |p: &str, body: &[u8]| fs::write(root.join(p), body).unwrap();
            fs::write(base.join("secret.txt"), SECRET).unwrap();
            write("index.html", b"<h1>index</h1>");
            write("css/style.css", b"body{}");
            write("js/app.js", b"var x;");
            write("sub/index.html", b"<h1>sub</h1>");
            write("img/a.PNG", b"\x89PNG");
            write("swf/WebSocketMain.swf", b"FWS");
            write("healthz", b"a file named healthz");
            write("metrics", b"a file named metrics");
            write(".env", SECRET.as_bytes());
            write("%2e%2e", b"literal percent name");
            write("data.xyz", b"?");
            symlink("../secret.txt", root.join("out.txt")).unwrap();
            symlink("..", root.join("outdir")).unwrap();
            symlink(base.join("secret.txt"), root.join("abs.txt")).unwrap();
            symlink("css/style.css", root.join("inlink.css")).unwrap();
            symlink("css", root.join("inlinkdir")).unwrap();
            let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: mkfifo with a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
            File::create(root.join("big.bin")).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
            let site = Site::with_root(7272, Some(root));
            Fixture { base, site }
        }

        fn get(&self, head: &str) -> String {
            let a = self.site.answer(head.as_bytes(), Metrics::default, || Ok(())).expect("complete head");
            String::from_utf8_lossy(&a.bytes.head).into_owned()
        }

        fn path(&self, path: &str) -> String {
            self.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    fn status(r: &str) -> u16 {
        r[9..12].parse().unwrap()
    }

    fn header<'a>(r: &'a str, name: &str) -> Option<&'a str> {
        let head = r.split("\r\n\r\n").next().unwrap();
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn body(r: &str) -> &str {
        r.split_once("\r\n\r\n").unwrap().1
    }

    #[test]
    fn paths_are_decoded_once_and_checked_segment_by_segment() {
        let ok = |p: &str, rel: &str, folder: bool| {
            assert_eq!(lookup(p), Ok(Lookup { rel: PathBuf::from(rel), folder }), "{p}");
        };
        ok("/", "index.html", true);
        ok("/sub/", "sub/index.html", true);
        ok("/sub", "sub", false);
        ok("/css/style.css", "css/style.css", false);
        ok("/a%20b.txt", "a b.txt", false);
        ok("/%252e%252e", "%2e%2e", false);
        ok("/%E4%BD%A0.html", "\u{4f60}.html", false);
        ok("/a..b", "a..b", false);
        let bad = |p: &str| match lookup(p) {
            Err(PathRefusal::Bad(HttpError::BadPath, _)) => {}
            other => panic!("{p}: {other:?}"),
        };
        for p in [
            "/..",
            "/../secret.txt",
            "/a/../b",
            "/.",
            "/./index.html",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/%2e/",
            "/..%2fx",
            "/a%2fb",
            "/a%2Fb",
            "/..%5cx",
            "/a\\b",
            "/%5c",
            "/a%00b",
            "/%0a",
            "/%7f",
            "/%c0%ae%c0%ae/x",
            "/%ff",
            "/%",
            "/%2",
            "/%zz",
            "/%%32%65",
            "//etc/passwd",
            "/a//b",
            "/a///",
            "....//",
            "/....//",
            "*",
            "",
        ] {
            bad(p);
        }
        assert_eq!(lookup("/.env"), Err(PathRefusal::Hidden));
        assert_eq!(lookup("/...."), Err(PathRefusal::Hidden));
        assert_eq!(lookup("/.git/config"), Err(PathRefusal::Hidden));
        assert_eq!(lookup("/%2egit/config"), Err(PathRefusal::Hidden));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(matches!(lookup(&long), Err(PathRefusal::Bad(HttpError::PathTooLong, _))));
        assert!(lookup(&long[..MAX_PATH_BYTES]).is_ok());
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(imf_fixdate(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_imf_fixdate(&imf_fixdate(secs)), Some(secs));
        }
        for s in ["", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC"] {
            assert_eq!(parse_imf_fixdate(s), None, "{s}");
        }
        assert_eq!(parse_imf_fixdate("Sun, 06 Xyz 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 25:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun, +6 Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn content_types_by_extension() {
        for (name, ct) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a.HTM", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("a.png", "image/png"),
            ("a.JPG", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.svg", "image/svg+xml"),
            ("favicon.ico", "image/x-icon"),
            ("a.webp", "image/webp"),
            ("a.woff", "font/woff"),
            ("a.woff2", "font/woff2"),
            ("a.ttf", "font/ttf"),
            ("a.eot", "application/vnd.ms-fontobject"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("WebSocketMain.swf", "application/x-shockwave-flash"),
            ("a.wasm", "application/wasm"),
            ("a.xml", "application/xml"),
            ("a.pdf", "application/pdf"),
            ("a.xyz", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), ct, "{name}");
        }
    }

    #[test]
    fn files_indexes_and_redirects() {
        let f = Fixture::new();
        let r = f.path("/");
        assert_eq!((status(&r), body(&r)), (200, "<h1>index</h1>"), "{r}");
        assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(header(&r, "Content-Length"), Some("14"));
        assert_eq!(header(&r, "X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(header(&r, "Cache-Control"), Some("no-cache"));
        assert!(header(&r, "ETag").is_some_and(|t| t.starts_with("W/\"e-")), "{r}");
        assert!(header(&r, "Last-Modified").and_then(parse_imf_fixdate).is_some(), "{r}");
        assert_eq!(body(&f.path("/index.html")), "<h1>index</h1>");
        assert_eq!(body(&f.path("/?ws=ws://x:1/")), "<h1>index</h1>", "the query is not part of the lookup");
        assert_eq!(body(&f.path("http://h:1/sub/")), "<h1>sub</h1>");
        let r = f.path("/sub?x=1");
        assert_eq!((status(&r), header(&r, "Location")), (301, Some("/sub/?x=1")), "{r}");
        assert_eq!(header(&f.path("/inlinkdir"), "Location"), Some("/inlinkdir/"));
        assert_eq!(status(&f.path("/empty/")), 404, "no listing");
        assert_eq!(status(&f.path("/empty/index.html")), 404);
        assert_eq!(status(&f.path("/nope.html")), 404);
        assert_eq!(status(&f.path("/index.html/")), 404);
        assert_eq!(status(&f.path("/css/style.css/x")), 404);
        for (path, ct) in [
            ("/css/style.css", "text/css; charset=utf-8"),
            ("/js/app.js?v=3", "text/javascript; charset=utf-8"),
            ("/img/a.PNG", "image/png"),
            ("/swf/WebSocketMain.swf", "application/x-shockwave-flash"),
            ("/data.xyz", "application/octet-stream"),
            ("/inlink.css", "text/css; charset=utf-8"),
        ] {
            let r = f.path(path);
            assert_eq!((status(&r), header(&r, "Content-Type")), (200, Some(ct)), "{path}: {r}");
        }
        assert_eq!(body(&f.path("/%252e%252e")), "literal percent name", "decoded once: a literal name");
        let r = f.path("/healthz");
        assert_eq!(body(&r), "ok\n", "/healthz wins over a file of that name");
        assert!(body(&f.path("/metrics")).contains("wschat_connections 0"));
    }

    #[test]
    fn head_is_the_same_head_without_the_body() {
        let f = Fixture::new();
        let get = f.path("/css/style.css");
        let head = f.get("HEAD /css/style.css HTTP/1.1\r\n\r\n");
        assert_eq!(head, get.strip_suffix("body{}").unwrap());
        assert_eq!(header(&head, "Content-Length"), Some("6"));
        let head = f.get("HEAD /nope HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 404 ") && body(&head).is_empty(), "{head}");
        let r = f.get("POST /css/style.css HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    }

    #[test]
    fn validators_make_a_304() {
        let f = Fixture::new();
        let r = f.path("/js/app.js");
        let etag = header(&r, "ETag").unwrap().to_string();
        let date = header(&r, "Last-Modified").unwrap().to_string();
        let cond = |name: &str, value: &str| f.get(&format!("GET /js/app.js HTTP/1.1\r\n{name}: {value}\r\n\r\n"));
        for r in [
            cond("If-None-Match", &etag),
            cond("If-None-Match", etag.trim_start_matches("W/")),
            cond("If-None-Match", &format!("\"x\", {etag}")),
            cond("If-None-Match", "*"),
            cond("If-Modified-Since", &date),
            cond("If-Modified-Since", "Thu, 31 Dec 2099 23:59:59 GMT"),
            f.get(&format!("HEAD /js/app.js HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n")),
        ] {
            assert!(r.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{r}");
            assert!(r.ends_with("\r\n\r\n") && !r.contains("Content-Length"), "no body: {r}");
            assert_eq!(header(&r, "ETag"), Some(etag.as_str()));
        }
        for r in [
            cond("If-None-Match", "W/\"other\""),
            cond("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
            cond("If-Modified-Since", "yesterday"),
            // If-None-Match wins over If-Modified-Since.
            f.get(&format!("GET /js/app.js HTTP/1.1\r\nIf-None-Match: \"x\"\r\nIf-Modified-Since: {date}\r\n\r\n")),
        ] {
            assert_eq!((status(&r), body(&r)), (200, "var x;"), "{r}");
        }
    }

    #[test]
    fn nothing_outside_the_folder_and_nothing_but_regular_files() {
        let f = Fixture::new();
        for (path, want) in [
            ("/out.txt", 403),
            ("/abs.txt", 403),
            ("/outdir/secret.txt", 403),
            ("/outdir/", 404), // base/index.html: missing, and outside anyway
            ("/outdir", 403),
            ("/outdir/root/index.html", 200), // out and back in: the canonical path is inside
            ("/fifo", 403),
            ("/.env", 404),
            ("/../secret.txt", 400),
            ("/%2e%2e/secret.txt", 400),
            ("/..%2fsecret.txt", 400),
            ("/..%5csecret.txt", 400),
            ("/%c0%ae%c0%ae/secret.txt", 400),
            ("//etc/passwd", 400),
            ("/big.bin", 500),
        ] {
            let r = f.path(path);
            assert_eq!(status(&r), want, "{path}: {r}");
            assert!(!r.contains(SECRET), "{path}: {r}");
        }
        let r = f.path(&format!("/{}", "a/".repeat(600)));
        assert_eq!(status(&r), 414, "{}", &r[..40]);
        assert!(body(&f.path("/big.bin")).contains("too large"));
        let a = f.site.answer(b"GET /../x HTTP/1.1\r\n\r\n", Metrics::default, || Ok(())).unwrap();
        assert_eq!(a.refused, Some(HttpError::BadPath));
    }
    #[test]
    fn a_large_file_is_answered_with_its_head_and_the_open_file() {
        let f = Fixture::new();
        let root = f.base.join("root");
        let large = INLINE_MAX_BYTES as usize + 1;
        fs::write(root.join("large.bin"), vec![7u8; large]).unwrap();
        fs::write(root.join("edge.bin"), vec![7u8; INLINE_MAX_BYTES as usize]).unwrap();
        let answer = |head: &str| f.site.answer(head.as_bytes(), Metrics::default, || Ok(())).unwrap();
        let a = answer("GET /large.bin HTTP/1.1\r\n\r\n");
        let head = String::from_utf8_lossy(&a.bytes.head).into_owned();
        assert_eq!(status(&head), 200);
        assert_eq!(header(&head, "Content-Length"), Some(large.to_string().as_str()));
        assert!(body(&head).is_empty(), "the head alone: {head}");
        assert_eq!(a.bytes.body.as_ref().map(FileBody::len), Some(large as u64), "then the open file");
        let a = answer("GET /edge.bin HTTP/1.1\r\n\r\n");
        assert!(a.bytes.body.is_none(), "a file of one chunk goes with its head");
        let text = String::from_utf8_lossy(&a.bytes.head).into_owned();
        assert_eq!(body(&text).len(), INLINE_MAX_BYTES as usize);
        let a = answer("HEAD /large.bin HTTP/1.1\r\n\r\n");
        assert!(a.bytes.body.is_none());
        assert_eq!(String::from_utf8_lossy(&a.bytes.head), head, "HEAD: the same head");
        let etag = header(&head, "ETag").unwrap();
        let a = answer(&format!("GET /large.bin HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n"));
        assert!(a.bytes.body.is_none());
        assert!(String::from_utf8_lossy(&a.bytes.head).starts_with("HTTP/1.1 304 "));
    }
}
