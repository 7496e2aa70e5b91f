//! workerman-chat's current protocol (its master's Events.php and page) spoken by the real daemon, byte for
//! byte with the key order of the original; rooms where it meets the seed protocol; `--escape-html`; the
//! JSON heartbeat. Raw sockets read the exact bytes; only the time stamps are replaced before comparing.

mod common;

use std::time::Duration;

use common::{text_frame, Daemon, Raw};

/// The next text frame with its `"time":"YYYY-MM-DD HH:MM:SS"` replaced by `"time":"T"`.
fn next(raw: &mut Raw) -> String {
    let f = raw.read_frame().expect("a frame");
    assert_eq!(f.opcode, 1, "text expected: {f:?}");
    let text = String::from_utf8(f.payload).expect("UTF-8");
    match text.find(r#""time":""#) {
        Some(at) => {
            let start = at + 8;
            let stamp = &text[start..start + 19];
            assert!(stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[13] == b':', "time {stamp:?} in {text}");
            format!("{}T{}", &text[..start], &text[start + 19..])
        }
        None => text,
    }
}

fn send(raw: &mut Raw, json: &str) {
    raw.send(&text_frame(json));
}

/// A client of the current dialect logged in as `name` in room 1; its id.
fn wm_login(d: &Daemon, name: &str) -> (Raw, u64) {
    let mut raw = Raw::open(d.ws);
    send(&mut raw, &format!(r#"{{"type":"login","client_name":"{name}","room_id":1}}"#));
    let welcome = next(&mut raw);
    let v: serde_json::Value = serde_json::from_str(&welcome).expect("JSON");
    (raw, v["client_id"].as_str().and_then(|s| s.parse().ok()).expect("client_id"))
}

#[test]
fn the_current_dialect_byte_for_byte() {
    let d = Daemon::start(&[]);
    let (mut a, ua) = wm_login(&d, "alice");
    let mut b = Raw::open(d.ws);
    send(&mut b, r#"{"type":"login","client_name":"<b>bob</b>","room_id":"1"}"#);
    let ub = ua + 1;
    assert_eq!(
        next(&mut b),
        format!(
            r#"{{"type":"login","client_id":"{ub}","client_name":"&lt;b&gt;bob&lt;/b&gt;","time":"T","client_list":{{"{ua}":"alice","{ub}":"&lt;b&gt;bob&lt;/b&gt;"}}}}"#
        ),
        "the newcomer's login carries everyone, itself included"
    );
    assert_eq!(
        next(&mut a),
        format!(r#"{{"type":"login","client_id":"{ub}","client_name":"&lt;b&gt;bob&lt;/b&gt;","time":"T"}}"#),
        "the others get it without the list"
    );
    send(&mut a, r#"{"type":"say","to_client_id":"all","to_client_name":"所有人","content":"hi <all>\n'&'"}"#);
    let said = format!(
        r#"{{"type":"say","from_client_id":"{ua}","from_client_name":"alice","to_client_id":"all","content":"hi &lt;all&gt;<br />\n&#039;&amp;&#039;","time":"T"}}"#
    );
    assert_eq!(next(&mut a), said);
    assert_eq!(next(&mut b), said);
    send(&mut a, &format!(r#"{{"type":"say","to_client_id":"{ub}","to_client_name":"whatever","content":"psst"}}"#));
    assert_eq!(
        next(&mut b),
        format!(
            r#"{{"type":"say","from_client_id":"{ua}","from_client_name":"alice","to_client_id":"{ub}","content":"<b>对你说: </b>psst","time":"T"}}"#
        )
    );
    assert_eq!(
        next(&mut a),
        format!(
            r#"{{"type":"say","from_client_id":"{ua}","from_client_name":"alice","to_client_id":"{ub}","content":"<b>你对&lt;b&gt;bob&lt;/b&gt;说: </b>psst","time":"T"}}"#
        ),
        "the echo names the target as the server knows it, escaped once"
    );
    // Bad input gets an answer, not silence or a dead worker.
    send(&mut a, r#"{"type":"say","to_client_id":"999","content":"x"}"#);
    assert_eq!(
        next(&mut a),
        r#"{"type":"error","code":"no_such_user","message":"no user with that uid in your room"}"#
    );
    send(&mut a, "not json");
    assert_eq!(
        next(&mut a),
        r#"{"type":"error","code":"bad_json","message":"expected a JSON object with fields of the right types"}"#
    );
    send(&mut a, r#"{"type":"pong"}"#);
    drop(b);
    assert_eq!(
        next(&mut a),
        format!(
            r#"{{"type":"logout","from_client_id":"{ub}","from_client_name":"&lt;b&gt;bob&lt;/b&gt;","time":"T"}}"#
        ),
        "the pong got no answer; bob's leaving is the next message"
    );
}

#[test]
fn idle_clients_of_the_current_dialect_are_pinged_in_json() {
    let d = Daemon::start(&["--app-ping-secs", "1"]);
    let (mut a, _) = wm_login(&d, "alice");
    a.stream.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    assert_eq!(next(&mut a), r#"{"type":"ping"}"#);
    send(&mut a, r#"{"type":"pong"}"#);
    assert_eq!(next(&mut a), r#"{"type":"ping"}"#, "pinged again after another silent second");
    // A seed client is not pinged in JSON (WebSocket pings keep working for everyone).
    let (mut s, _) = common::probe::login(d.ws, "seed", "1");
    s.stream.set_read_timeout(Some(Duration::from_millis(2500))).unwrap();
    let f = s.try_read_frame();
    assert!(f.as_ref().is_none_or(|f| !String::from_utf8_lossy(&f.payload).contains("ping")), "{f:?}");
}

#[test]
fn both_dialects_in_one_room() {
    let d = Daemon::start(&[]);
    let (mut seed, us) = common::probe::login(d.ws, "猪猪", "1");
    let mut wm = Raw::open(d.ws);
    send(&mut wm, r#"{"type":"login","client_name":"mynick","room_id":1}"#);
    let uw = us + 1;
    assert_eq!(
        next(&mut wm),
        format!(
            r#"{{"type":"login","client_id":"{uw}","client_name":"mynick","time":"T","client_list":{{"{us}":"猪猪","{uw}":"mynick"}}}}"#
        )
    );
    assert_eq!(next(&mut seed), format!(r#"{{"type":"login","uid":{uw},"name":"mynick","time":"T"}}"#));
    send(&mut seed, r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#);
    assert_eq!(
        next(&mut seed),
        format!(r#"{{"type":"say","from_uid":{us},"to_uid":"all","content":"hi,  all !","time":"T"}}"#)
    );
    assert_eq!(
        next(&mut wm),
        format!(
            r#"{{"type":"say","from_client_id":"{us}","from_client_name":"猪猪","to_client_id":"all","content":"hi,  all !","time":"T"}}"#
        )
    );
    send(&mut wm, &format!(r#"{{"type":"say","to_client_id":"{us}","content":"<3"}}"#));
    assert_eq!(next(&mut seed), format!(r#"{{"type":"say","from_uid":{uw},"to_uid":{us},"content":"<3","time":"T"}}"#));
    assert!(next(&mut wm).contains(r#""content":"<b>你对猪猪说: </b>&lt;3""#));
    send(&mut seed, &format!(r#"{{"type":"say","to_uid":{uw},"content":"ok"}}"#));
    assert!(next(&mut wm).contains(r#""content":"<b>对你说: </b>ok""#));
    assert_eq!(next(&mut seed), format!(r#"{{"type":"say","from_uid":{us},"to_uid":{uw},"content":"ok","time":"T"}}"#));
    // A third, seed, user sees both in its list; leaves reach each in its own dialect.
    let (mut third, ut) = common::probe::login(d.ws, "third", "1");
    assert_eq!(next(&mut wm), format!(r#"{{"type":"login","client_id":"{ut}","client_name":"third","time":"T"}}"#));
    drop(seed);
    assert_eq!(
        next(&mut wm),
        format!(r#"{{"type":"logout","from_client_id":"{us}","from_client_name":"猪猪","time":"T"}}"#)
    );
    assert_eq!(next(&mut third), format!(r#"{{"type":"logout","uid":{us},"name":"猪猪","time":"T"}}"#));
}

#[test]
fn escape_html_escapes_names_and_content_of_the_seed_dialect() {
    let d = Daemon::start(&["--escape-html"]);
    let mut a = Raw::open(d.ws);
    send(&mut a, r#"{"type":"login","name":"&amp;<i>\"Zoë\"'"}"#);
    let list = next(&mut a);
    assert!(list.contains(r#""name":"&amp;amp;&lt;i&gt;&quot;Zoë&quot;&#039;""#), "{list}");
    let login = next(&mut a);
    assert!(login.contains(r#""name":"&amp;amp;&lt;i&gt;&quot;Zoë&quot;&#039;""#), "{login}");
    send(&mut a, r#"{"type":"say","to_uid":"all","content":"<img src=x onerror=alert(1)>\nline 2 猪猪"}"#);
    let say = next(&mut a);
    assert!(say.contains(r#""content":"&lt;img src=x onerror=alert(1)&gt;<br />\nline 2 猪猪""#), "{say}");
    // Without the flag nothing is escaped.
    let plain = Daemon::start(&[]);
    let mut p = Raw::open(plain.ws);
    send(&mut p, r#"{"type":"login","name":"<i>"}"#);
    assert!(next(&mut p).contains(r#""name":"<i>""#));
}
