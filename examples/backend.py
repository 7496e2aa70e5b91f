#!/usr/bin/env python3
"""An application backend for wschat, with nothing but Python's standard library.

It signs login tokens (HS256, the secret wschat reads with --auth-key) and calls the server API
(--api, --api-key-file). Configuration from the environment:
  WSCHAT_SECRET_FILE  the HS256 secret file wschat was started with (--auth-key)
  WSCHAT_API          the API's base URL, e.g. http://127.0.0.1:8080
  WSCHAT_API_KEY_FILE the API key file (--api-key-file)

  backend.py token ACCOUNT [NAME]      prints a token for ACCOUNT, valid 10 minutes
  backend.py say ROOM TEXT             a message from the server to ROOM (a notice on the page)
  backend.py send-user ACCOUNT TEXT    TEXT verbatim to every connection of ACCOUNT (sendToUid)
  backend.py online ACCOUNT            whether ACCOUNT is online, and where (isUidOnline)
  backend.py kick ACCOUNT [REASON]     logs ACCOUNT out and closes its connections (closeClient)
"""
import base64, hashlib, hmac, json, os, sys, time, urllib.error, urllib.parse, urllib.request


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(account: str, name: str | None = None, ttl: int = 600) -> str:
    """A JWT wschat accepts: sub = the account, exp required, name optional."""
    secret = open(os.environ["WSCHAT_SECRET_FILE"], "rb").read()  # all of its bytes, as wschat reads it
    claims = {"sub": account, "exp": int(time.time()) + ttl}
    if name:
        claims["name"] = name
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def api(method: str, path: str, body: dict | None = None) -> dict:
    """One call of the server API; its JSON answer (an error answer too)."""
    key = open(os.environ["WSCHAT_API_KEY_FILE"]).read().strip()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(os.environ["WSCHAT_API"] + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main(argv: list[str]) -> int:
    quote = urllib.parse.quote
    match argv:
        case ["token", account, *name]:
            print(token(account, name[0] if name else None))
            return 0
        case ["say", room, text]:
            answer = api("POST", "/api/say", {"room": room, "content": text})
        case ["send-user", account, text]:
            answer = api("POST", "/api/send", {"to": {"user_id": account}, "data": text})
        case ["online", account]:
            answer = api("GET", "/api/users/" + quote(account, safe=""))
        case ["kick", account, *reason]:
            answer = api("POST", "/api/close", {"user_id": account, "reason": reason[0] if reason else "kicked"})
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
