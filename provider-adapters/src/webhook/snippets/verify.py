import hashlib
import hmac
import time


def verify_rescue_webhook(secret, headers, body, tolerance_s=300, now_s=None):
    """True when a webhook request carries a valid, fresh Rescue signature.

    secret: bytes. headers: the request headers (a case-insensitive mapping
    such as Flask's or Django's request.headers). body: the raw request body
    exactly as received, before any JSON parsing.
    """
    timestamp = headers.get("Rescue-Webhook-Timestamp", "")
    signatures = headers.get("Rescue-Webhook-Signature", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    signed = timestamp.encode("ascii") + b"." + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    for item in signatures.split(" "):
        scheme, _, value = item.partition("=")
        if scheme == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return True
    return False
