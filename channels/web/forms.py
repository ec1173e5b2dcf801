"""Reading HTML form posts: multipart/form-data (RFC 7578) and application/x-www-form-urlencoded (WHATWG URL).

A report without attachments is a body of a few kilobytes: ten text fields and, from a browser, one empty
file input. Starlette's streaming parser (python-multipart) makes a Python call per header byte run and per
line and was half of a form post's CPU; such a small body is parsed here in one pass with `bytes.split`
instead. Only the plain case is taken: a body up to `SMALL` bytes, `Content-Disposition: form-data` with a
quoted name (and an empty filename, for the unused file input), no other header but an empty file part's
Content-Type, UTF-8 text, and at most `max_fields` fields. Anything else — an attached file, a preamble,
an odd header, a bad encoding — goes to Starlette's parser, which applies the same limits and raises its
own `MultiPartException`, so both paths accept and refuse the same posts.
"""

from __future__ import annotations

import re
from io import BytesIO
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import Request

SMALL = 64 * 1024
_BOUNDARY = re.compile(rb'boundary=(?:"([^"\r\n]{1,70})"|([^\s;"]{1,70}))(?=[;\s]|$)', re.IGNORECASE)
# What browsers send for a text field and for a file input left empty (names with a quote are sent as %22).
_DISPOSITION = re.compile(rb'content-disposition:[ \t]*form-data; name="([^"\\\r\n]*)"(?:; filename="")?', re.IGNORECASE)
_EMPTY_FILE_TYPE = re.compile(rb"content-type:[ \t]*[\w.+-]+/[\w.+-]+", re.IGNORECASE)


async def read_form(request: Request, *, max_files: int, max_fields: int, max_part_size: int) -> FormData:
    """The posted form; raises Starlette's `MultiPartException` for a malformed or over-limit body."""
    ctype = request.headers.get("content-type", "")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) <= min(SMALL, max_part_size):
        body = await request.body()
        media = ctype.split(";", 1)[0].strip().lower()
        if media == "multipart/form-data":
            form = _small_multipart(ctype.encode("latin-1"), body, max_files, max_fields)
        elif media == "application/x-www-form-urlencoded":
            form = _urlencoded(body, max_fields)
        else:
            form = None
        if form is not None:
            return form
    # The general case (request.form() reads the body already received, if any, from the request's cache).
    return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


def _small_multipart(ctype: bytes, body: bytes, max_files: int, max_fields: int) -> FormData | None:
    m = _BOUNDARY.search(ctype)
    if m is None:
        return None
    delimiter = b"\r\n--" + (m.group(1) or m.group(2))
    parts = (b"\r\n" + body).split(delimiter)
    # parts[0] is the (empty) preamble, the last one the close delimiter's "--" and an optional line break.
    if len(parts) < 2 or parts[0] or parts[-1] not in (b"--", b"--\r\n") or len(parts) - 2 > max_fields + max_files:
        return None
    items: list[tuple[str, str | UploadFile]] = []
    files = 0
    for part in parts[1:-1]:
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n"):
            return None
        lines = head[2:].split(b"\r\n")
        m = _DISPOSITION.fullmatch(lines[0])
        if m is None:
            return None
        try:
            name = m.group(1).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if m.group(0).endswith(b'filename=""'):
            # A file input with no file chosen: what Starlette's parser gives, an upload with no name and no bytes.
            files += 1
            if files > max_files or content or len(lines) > 2 or (len(lines) == 2 and not _EMPTY_FILE_TYPE.fullmatch(lines[1])):
                return None
            items.append((name, UploadFile(BytesIO(), size=0, filename="", headers=Headers(raw=_raw_headers(lines)))))
            continue
        if len(lines) > 1 or len(items) - files >= max_fields:
            return None
        try:
            items.append((name, content.decode("utf-8")))
        except UnicodeDecodeError:
            return None
    return FormData(items)


def _raw_headers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    raw = []
    for line in lines:
        key, _, value = line.partition(b":")
        raw.append((key.strip().lower(), value.strip()))
    return raw


def _urlencoded(body: bytes, max_fields: int) -> FormData | None:
    try:
        text = body.decode("ascii")  # a urlencoded body is ASCII; anything else goes to the general parser
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    return FormData(pairs)
