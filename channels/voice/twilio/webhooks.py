"""Twilio's voice webhooks: the IVR flow driven over HTTP, answered in TwiML, served by the web channel.

Twilio calls these URLs under `<public_base_url>/twilio/voice/` (https://www.twilio.com/docs/usage/webhooks/voice-webhooks):

- `POST /incoming`           the phone number's "A call comes in" webhook (CallSid, From, To): opens the call;
- `POST /gather`             a `<Gather>`'s action (Digits, or SpeechResult), and the `<Redirect>` after it when
                             nothing was pressed, which is the flow's timeout;
- `POST /recorded?question=` a `<Record>`'s action (RecordingUrl, RecordingDuration, Digits): the answer is
                             downloaded into the call's spool before the flow moves on;
- `POST /recording-status`   the `recordingStatusCallback` (logged; 204);
- `POST /status`             the number's call status callback: a call that ended (completed, failed, busy,
                             no-answer, canceled) is hung up, so an abandoned call still leaves a ticket —
                             configure it on the number, it is what delivers the calls that end mid-question;
- `GET  /prompts/<lang>/<name>.wav`  the prompt files the TwiML plays (no signature: Twilio fetches media
                             without one, and the files are public words).

Every POST must carry a valid `X-Twilio-Signature` (https://www.twilio.com/docs/usage/webhooks/webhooks-security),
checked with the twilio package's `RequestValidator` against the URL Twilio signed: the configured public base
URL, the path and the query string, never the Host header, which a reverse proxy rewrites. JSON bodies are
signed through the `bodySHA256` query parameter. A request without a valid signature gets 403 before anything
is read or changed. A signing key other than the auth token (Twilio's shared keys, named in
`X-Twilio-Webhooks-Signature-Settings`) is configured as `auth_token` and its algorithm followed.

Each call's requests are handled one at a time (a lock per CallSid), in a worker thread, since the flow may
commit a ticket or download audio. Twilio may send a request again (`#rc=` connection overrides); a retry
carries the first one's `I-Twilio-Idempotency-Token` and gets the first one's answer without a second step.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from ..calls import CallSession, Calls
from ..flow import Action, Digits, Hangup, Timeout
from ..prompts import FLOW_PROMPTS, prompt_path
from ..settings import TwilioSettings
from . import recordings
from . import twiml
from .twiml import Urls, speech_keys

try:  # twilio ≥ 9.x signs with a shared key when a Webhook Setting says so; older versions only know the token
    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, get_signature_algorithm
except ImportError:  # pragma: no cover
    SIGNATURE_SETTINGS_HEADER, get_signature_algorithm = None, None

log = logging.getLogger("channels.voice.twilio")

PREFIX = "/twilio/voice"
QUESTIONS = frozenset({"name", "asset", "anomaly", "message"})
ENDED = frozenset({"completed", "failed", "busy", "no-answer", "canceled"})
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
MAX_LINES = 10_000  # calls remembered between requests; more are only calls whose status callback never came
XML = "application/xml"
_CALL_SID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_PROMPT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NO_CALLER = {"", "anonymous", "unknown", "restricted", "private"}


class Forbidden(Exception):
    """The request is not signed by Twilio for this URL (the sender's fault: answered 403, nothing changes)."""


class BadRequest(Exception):
    """A signed request without what the webhook needs (a CallSid, a known question)."""


async def _forbidden(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("the request is not signed by Twilio for this URL", 403)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(exc), 400)


@dataclass
class _Line:
    """What the webhooks keep of one call between its requests."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = None  # the idempotency token of the last request answered
    twiml: str | None = None  # and its answer


Step = Callable[[], tuple[CallSession | None, list[Action]]]


class TwilioWebhooks:
    """The webhooks as an ASGI app (`.app`, mounted by the web channel at `/twilio/voice`)."""

    name = "voice-twilio"

    def __init__(self, calls: Calls, settings: TwilioSettings, *, prompts_dir: Path, blobs=None, mount_path: str = PREFIX):
        try:
            token = settings.token()
        except OSError as e:
            raise ValueError(f"voice.twilio.auth_token_file: cannot read {settings.auth_token_file}: {e}") from e
        if not token or settings.public_base_url is None:
            raise ValueError("voice.twilio needs public_base_url and a non-empty auth_token (or auth_token_file)")
        self.calls, self.settings = calls, settings
        self.prompts_dir = Path(prompts_dir)
        self.blobs = blobs  # unused: recordings reach the blob store through the calls' session
        self.validator = RequestValidator(token)
        self.auth = (settings.account_sid, token) if settings.account_sid else None
        self.urls = Urls(str(settings.public_base_url).rstrip("/") + mount_path)
        self._lines: OrderedDict[str, _Line] = OrderedDict()
        self._lines_lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/incoming", self._incoming, methods=["POST"]),
                Route("/gather", self._gather, methods=["POST"]),
                Route("/recorded", self._recorded, methods=["POST"]),
                Route("/recording-status", self._recording_status, methods=["POST"]),
                Route("/status", self._status, methods=["POST"]),
                Route("/prompts/{language}/{name}.wav", self._prompt, methods=["GET"]),
            ],
            exception_handlers={Forbidden: _forbidden, BadRequest: _bad_request},
        )

    async def start(self) -> None:
        missing = [
            f"{lang}/{name}" for lang in self.calls.flow_settings.languages for name in FLOW_PROMPTS
            if not prompt_path(self.prompts_dir, lang, name).is_file()
        ]
        if missing:
            log.warning("%d prompt files are missing under %s (e.g. %s): run 'helpdesk-gateway prompts build'",
                        len(missing), self.prompts_dir, missing[0])
        if not self.settings.account_sid:
            log.warning("voice.twilio.account_sid is not set: callers' recordings cannot be downloaded from Twilio")
        log.info("Twilio voice webhooks at %s/incoming", self.urls.root)

    async def stop(self) -> None:
        pass  # nothing held between requests but memory; the calls' spool outlives the process by design

    # -- webhooks -----------------------------------------------------------------------------------------------
    async def _incoming(self, request: Request) -> Response:
        params = await self._verified(request, "/incoming")
        sid = _call_sid(params)
        caller = (params.get("From") or "").strip()
        caller = None if caller.lower() in _NO_CALLER else caller
        log.info("call %s from %s to %s", sid, caller or "an unknown number", params.get("To"))
        return await self._answer(request, sid, lambda: self.calls.open(sid, caller))

    async def _gather(self, request: Request) -> Response:
        params = await self._verified(request, "/gather")
        sid = _call_sid(params)
        digits, speech = params.get("Digits") or "", params.get("SpeechResult")
        if digits:
            event = Digits(digits)
        elif speech and self.settings.speech:
            event = Digits(speech_keys(speech))  # "" when nothing in it was a key: "not understood"
        else:
            event = Timeout()

        def step():
            session = self.calls.get(sid)
            return (session, session.handle(event)) if session is not None else (None, [])

        return await self._answer(request, sid, step)

    async def _recorded(self, request: Request) -> Response:
        params = await self._verified(request, "/recorded")
        sid = _call_sid(params)
        question = request.query_params.get("question", "")
        if question not in QUESTIONS:
            raise BadRequest(f"unknown question {question!r}")
        return await self._answer(request, sid, lambda: self._record_answer(sid, question, params))

    async def _recording_status(self, request: Request) -> Response:
        params = await self._verified(request, "/recording-status")
        status = params.get("RecordingStatus")
        if status not in (None, "completed", "in-progress"):
            log.warning("call %s: recording %s is %s (%s)", params.get("CallSid"), params.get("RecordingSid"), status,
                        params.get("ErrorCode"))
        return Response(status_code=204)

    async def _status(self, request: Request) -> Response:
        params = await self._verified(request, "/status")
        sid = _call_sid(params)
        status = params.get("CallStatus", "")
        if status in ENDED:
            await run_in_threadpool(self._ended, sid, status)
        return Response(twiml.empty(), media_type=XML)

    async def _prompt(self, request: Request) -> Response:
        language, name = request.path_params["language"], request.path_params["name"]
        if not (_LANGUAGE.fullmatch(language) and _PROMPT.fullmatch(name)):  # nothing but a file name: no way out of the directory
            return PlainTextResponse("not found", 404)
        path = prompt_path(self.prompts_dir, language, name)
        if not path.is_file():
            return PlainTextResponse("not found", 404)
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "public, max-age=300"})

    # -- the steps (in a worker thread, under the call's lock) -------------------------------------------------
    def _record_answer(self, sid: str, question: str, params: Mapping[str, str]) -> tuple[CallSession | None, list[Action]]:
        session = self.calls.get(sid)
        if session is None:
            return None, []
        if session.flow.state != f"record_{question}":  # a late or repeated action: the flow has moved on
            log.info("call %s: ignoring a recording of %r (the call is at %s)", sid, question, session.flow.state)
            return session, []
        path = session.recording_path(question)
        path.unlink(missing_ok=True)  # never take the previous try's file for this one's
        url = params.get("RecordingUrl")
        if url:
            recordings.fetch(url, path, auth=self.auth, attempts=self.settings.download_attempts,
                             pause=self.settings.download_backoff_seconds)
        actions = session.recorded(question)
        if params.get("Digits") == "hangup":  # the caller hung up while recording: deliver what they said now
            session.hang_up()
            return session, [Hangup()]
        return session, actions

    def _ended(self, sid: str, status: str) -> None:
        line = self._line(sid)
        with line.lock:
            session = self.calls.get(sid)
            if session is not None:
                log.info("call %s ended (%s)%s", sid, status, "" if session.finished else " before the end of the flow")
                session.hang_up()
        with self._lines_lock:
            self._lines.pop(sid, None)

    # -- plumbing -------------------------------------------------------------------------------------------------
    async def _answer(self, request: Request, sid: str, step: Step) -> Response:
        token = request.headers.get(IDEMPOTENCY_HEADER)
        answer = await run_in_threadpool(self._step, sid, token, step)
        return Response(answer, media_type=XML)

    def _step(self, sid: str, token: str | None, step: Step) -> str:
        line = self._line(sid)
        with line.lock:
            if token and token == line.token and line.twiml is not None:
                return line.twiml  # Twilio sent this request again: same answer, no second step
            session, actions = step()
            answer = self._twiml(session, actions, line)
            line.token, line.twiml = token, answer
            return answer

    def _twiml(self, session: CallSession | None, actions: list[Action], line: _Line) -> str:
        if session is None:  # a call this gateway does not know (ended, or never started here)
            return twiml.render([Hangup()], language=self.calls.flow_settings.default_language, urls=self.urls)
        if not actions:
            if line.twiml is not None:  # an event the flow does not expect now: the caller hears the question again
                return line.twiml
            if session.finished:
                actions = [Hangup()]
            else:  # resumed from the spool after a restart: let the flow ask its question again
                return twiml.ask_again(self.urls)
        return twiml.render(actions, language=session.language, urls=self.urls, speech=self.settings.speech)

    def _line(self, sid: str) -> _Line:
        with self._lines_lock:
            line = self._lines.get(sid)
            if line is None:
                line = self._lines[sid] = _Line()
                while len(self._lines) > MAX_LINES:
                    self._lines.popitem(last=False)
            else:
                self._lines.move_to_end(sid)
            return line

    async def _verified(self, request: Request, path: str) -> Mapping[str, str]:
        """The request's parameters, once its signature is valid for the public URL; raises Forbidden."""
        body = await request.body()
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = self.urls.webhook(path) + ("?" + query if query else "")
        try:
            return self._check(request, body, url)
        except (Forbidden, UnicodeDecodeError, ValueError) as e:
            log.warning("rejected %s %s from %s: %s", request.method, path, request.client.host if request.client else "?", e)
            raise Forbidden(str(e)) from e

    def _check(self, request: Request, body: bytes, url: str) -> Mapping[str, str]:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise Forbidden("no X-Twilio-Signature")
        text = body.decode("utf-8")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            if "bodySHA256" not in request.query_params:  # Twilio always signs a JSON body through its hash
                raise Forbidden("a JSON body without bodySHA256")
            signed, params = text, _json_params(text)
        else:
            signed = params = ImmutableMultiDict(parse_qsl(text, keep_blank_values=True))
        if not self.validator.validate(url, signed, signature, **self._algorithm(request)):
            raise Forbidden(f"the signature does not match {url}")
        return params

    @staticmethod
    def _algorithm(request: Request) -> dict:
        header = request.headers.get(SIGNATURE_SETTINGS_HEADER) if SIGNATURE_SETTINGS_HEADER else None
        return {"algorithm": get_signature_algorithm(header)} if header else {}


def _call_sid(params: Mapping[str, str]) -> str:
    sid = params.get("CallSid") or ""
    if not _CALL_SID.fullmatch(sid):
        raise BadRequest("no CallSid")
    return sid


def _json_params(text: str) -> dict[str, str]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the JSON body is not an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
