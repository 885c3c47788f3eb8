"""Credentials out of what is shown: node URLs such as ``http://user:secret@host:11434`` become
``http://user:***@host:11434`` in status pages, snapshots, metric labels and logs.

The user name stays, because it tells the operator which credentials a node is given; the password
never does. A user part without a password (``http://TOKEN@host``) is often a token in the user's
place, so all of it is hidden (``http://***@host``). The URL that is *used* keeps its credentials:
redact only what is displayed or written down.

Both functions are cheap when there is nothing to hide (text without ``@`` is returned as it is),
so they may sit on hot paths such as the gateway's per-request metric labels.
"""
from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ : the userinfo is everything of the authority up to its *last* "@" (as urlsplit
# reads it, so a raw "@" in a password is hidden too), and the authority ends at "/", "?", "#" or a space.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#]*)@")


def _mask(match: re.Match[str]) -> str:
    user, has_password, _ = match["userinfo"].partition(":")
    shown = f"{user}:{MASK}" if has_password and user else MASK
    return f"{match['scheme']}{shown}@"


def redact_text(text: str) -> str:
    """``text`` (a log line, an error message) with the credentials of every URL in it masked."""
    if "@" not in text:
        return text
    return _USERINFO.sub(_mask, text)


def redact_url(url: str) -> str:
    """One URL or node address, with or without a scheme (``user:pw@host:11434``), credentials masked."""
    if "@" not in url:
        return url
    if "://" in url:
        return redact_text(url)
    prefix = "x://"  # a scheme so the pattern anchors; removed again below
    return redact_text(prefix + url)[len(prefix):]
