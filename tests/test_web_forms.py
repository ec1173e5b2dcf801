"""Form bodies read by channels/web/forms.py give what Starlette's own parser gives: the same fields, the same
refusals. Each body is read both ways inside one real Starlette app; httpx builds the browser-like bodies."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from channels.web.forms import _small_multipart, read_form

LIMITS = dict(max_files=3, max_fields=10, max_part_size=64 * 1024)


def _items(form) -> list:
    return [[k, v if isinstance(v, str) else ["file", v.filename, v.size]] for k, v in form.multi_items()]


async def _read(request: Request, how) -> list | str:
    try:
        return _items(await how(request))
    except Exception as e:  # noqa: BLE001 - a refusal is part of what is compared
        return f"refused: {e}"


async def both(request: Request) -> JSONResponse:
    body = await request.body()

    async def again():
        return {"type": "http.request", "body": body, "more_body": False}

    ours = await _read(request, lambda r: read_form(r, **LIMITS))
    starlettes = await _read(Request(request.scope, again), lambda r: r.form(**LIMITS))
    return JSONResponse({"ours": ours, "starlette": starlettes})


APP = Starlette(routes=[Route("/", both, methods=["POST"])])
MP = {"content-type": "multipart/form-data; boundary=b"}
EMPTY_FILE = ("", b"", "application/octet-stream")  # a file input left empty, as browsers send it

# What Chromium sends for the report form with no file chosen (field names and order as on the page).
BROWSER = (b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\ntok\r\n'
           b'--b\r\nContent-Disposition: form-data; name="anomaly"\r\n\r\nNon stampa \xc3\xa8 \r\n"rotto"\r\n'
           b'--b\r\nContent-Disposition: form-data; name="attachments"; filename=""\r\nContent-Type: application/octet-stream\r\n\r\n\r\n'
           b'--b\r\nContent-Disposition: form-data; name="website"\r\n\r\n\r\n--b--\r\n')

CASES = {
    "browser form": dict(content=BROWSER, headers=MP),
    "httpx form, empty file input": dict(data={"name": "Mario", "anomaly": 'è "rotto"\r\nda ieri', "phone": ""},
                                           files={"attachments": EMPTY_FILE}),
    "form with a file": dict(data={"a": "1"}, files={"attachments": ("x.txt", b"hello", "text/plain")}),
    "urlencoded": dict(data={"a": "1", "b": "è x&y=z", "c": ""}),
    "urlencoded, bad percent-encoding": dict(content=b"a=%FF&b=%", headers={"content-type": "application/x-www-form-urlencoded"}),
    "too many fields": dict(data={f"k{i}": "v" for i in range(12)}, files={"attachments": EMPTY_FILE}),
    "too many urlencoded fields": dict(data={f"k{i}": "v" for i in range(12)}),
    "too many files": dict(content=b"".join(b'--b\r\nContent-Disposition: form-data; name="f"; filename=""\r\n\r\n\r\n'
                                            for _ in range(4)) + b"--b--\r\n", headers=MP),
    "latin-1 bytes": dict(content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--b--\r\n', headers=MP),
    "quoted boundary, no final line break": dict(
        content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--b--',
        headers={"content-type": 'multipart/form-data; boundary="b"'}),
    "boundary-like text in a value": dict(
        content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--bX\r\n--b--\r\n', headers=MP),
    "part without a name": dict(content=b'--b\r\nContent-Disposition: form-data; filename=""\r\n\r\n\r\n--b--\r\n', headers=MP),
    "truncated body": dict(content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv', headers=MP),
    "a text part with its own type": dict(
        content=b'--b\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nv\r\n--b--\r\n',
        headers=MP),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_form_body_reads_as_starlette_reads_it(case):
    async def post():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://form") as c:
            return (await c.post("/", **CASES[case])).json()

    r = asyncio.run(post())
    assert r["ours"] == r["starlette"]


def test_the_report_form_as_browsers_send_it_is_read_in_one_pass():
    # The reason forms.py exists: the common post must not fall back to the streaming parser.
    form = _small_multipart(MP["content-type"].encode(), BROWSER, max_files=3, max_fields=10)
    assert form is not None and form["anomaly"] == 'Non stampa è \r\n"rotto"'
    assert form["attachments"].filename == "" and form["website"] == ""
