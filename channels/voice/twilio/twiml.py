"""The IVR flow's media actions as TwiML, and a caller's spoken answer as the keys the flow expects.

TwiML reference: https://www.twilio.com/docs/voice/twiml (`<Play>`, `<Say>`, `<Gather>`, `<Record>`, `<Dial>`,
`<Redirect>`, `<Hangup>`). Prompts are the same audio files the SIP transport plays, served by the webhooks
app over HTTP; words only known at run time (a name from the directory) are spoken by Twilio's `<Say>`.

Two Twilio behaviours the rendering relies on:
- a `<Gather>` that receives nothing (or a `<Record>` that recorded nothing) does not request its action URL
  but goes on to the next verb, so each is followed by a `<Redirect>` to the gather webhook without digits,
  which the webhooks feed to the flow as its `Timeout`;
- a `<Gather>` with `numDigits` submits as soon as that many keys are pressed, or earlier on `finishOnKey`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from twilio.twiml.voice_response import VoiceResponse

from ..flow import Action, Gather, Hangup, Play, Prompt, Record, SayDigits, Text, Transfer

LANGUAGE_TAGS = {"it": "it-IT", "fr": "fr-FR", "en": "en-GB"}  # <Say language> and the speech recogniser's language


class Urls:
    """Absolute URLs of the webhooks and prompts, as Twilio reaches them (the public base URL, never the
    Host header: behind a reverse proxy the two differ)."""

    def __init__(self, public_root: str):
        self.root = public_root.rstrip("/")

    def webhook(self, path: str, **query: str) -> str:
        return self.root + path + ("?" + urlencode(query) if query else "")

    def prompt(self, language: str, name: str) -> str:
        return f"{self.root}/prompts/{quote(language)}/{quote(name)}.wav"


def render(actions: list[Action], *, language: str, urls: Urls, speech: bool = False) -> str:
    """The TwiML document that carries out `actions`, in order, for a call in `language`."""
    r = VoiceResponse()
    for action in actions:
        if isinstance(action, Play):
            _prompts(r, action.prompts, language, urls)
        elif isinstance(action, SayDigits):
            _prompts(r, tuple(f"digit-{d}" for d in action.digits if d.isdigit()), language, urls)
        elif isinstance(action, Gather):
            options = {"language": LANGUAGE_TAGS.get(language, language), "speech_timeout": "auto"} if speech else {}
            g = r.gather(
                input="dtmf speech" if speech else "dtmf",
                num_digits=action.max_digits,
                finish_on_key=action.finish_on_key,
                timeout=max(1, round(action.timeout)),
                action=urls.webhook("/gather"),
                method="POST",
                **options,
            )
            _prompts(g, action.prompts, language, urls)  # inside the Gather: a key press cuts the prompt short
            r.redirect(urls.webhook("/gather"), method="POST")
        elif isinstance(action, Record):
            _prompts(r, action.prompts, language, urls)
            r.record(
                max_length=action.max_seconds,
                finish_on_key=action.finish_on_key,
                play_beep=True,
                action=urls.webhook("/recorded", question=action.question),
                method="POST",
                recording_status_callback=urls.webhook("/recording-status"),
                recording_status_callback_method="POST",
            )
            r.redirect(urls.webhook("/gather"), method="POST")
        elif isinstance(action, Transfer):
            _dial(r, action.target)
        elif isinstance(action, Hangup):
            r.hangup()
        else:  # Submit and Lookup are answered by the CallSession; anything else is a programming error
            raise TypeError(f"not a media action: {action!r}")
    return str(r)


def _prompts(verb, prompts: tuple[Prompt, ...], language: str, urls: Urls) -> None:
    for p in prompts:
        if isinstance(p, Text):
            verb.say(p.text, language=LANGUAGE_TAGS.get(language, language))
        else:
            verb.play(urls.prompt(language, p))


def _dial(r: VoiceResponse, target: str) -> None:
    if target.lower().startswith(("sip:", "sips:")):
        r.dial().sip(target)
    else:
        r.dial(target.removeprefix("tel:"))


# -- speech -------------------------------------------------------------------------------------------------------
_WORD_KEYS = {
    # digits, Italian, French and English
    "un": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "sept": "7", "huit": "8", "neuf": "9",
    "zéro": "0",
    "zero": "0", "uno": "1", "una": "1", "due": "2", "tre": "3", "quattro": "4", "cinque": "5", "sei": "6",
    "sette": "7", "otto": "8", "nove": "9",
    "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9",
    # yes / no: the flow's questions are "1 yes, 2 no"
    "sì": "1", "si": "1", "certo": "1", "esatto": "1", "yes": "1", "yeah": "1", "yep": "1", "correct": "1",
    "oui": "1", "exact": "1", "exactement": "1",
    "no": "2", "nope": "2", "non": "2",
    # the language menu: "1 italiano, 2 français, 3 English"
    "italiano": "1", "italian": "1", "italien": "1",
    "français": "2", "francais": "2", "francese": "2", "french": "2",
    "inglese": "3", "english": "3", "anglais": "3",
}
_TOKEN = re.compile(r"\d+|[^\W\d_]+")


def speech_keys(text: str | None) -> str:
    """The keys a spoken answer stands for: digits said as numbers or words, yes → 1, no → 2, in Italian,
    French or English; words that mean none of these are dropped ("" when nothing is left: not understood)."""
    keys = []
    for token in _TOKEN.findall((text or "").lower()):
        keys.append(token if token.isdigit() else _WORD_KEYS.get(token, ""))
    return "".join(keys)


def ask_again(urls: Urls) -> str:
    """Nothing to say yet (a call resumed from its spool): come back without digits, the flow's timeout."""
    r = VoiceResponse()
    r.redirect(urls.webhook("/gather"), method="POST")
    return str(r)


def empty() -> str:
    return str(VoiceResponse())
