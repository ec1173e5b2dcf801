"""The Twilio transport of the voice channel: the IVR flow over Twilio's voice webhooks, answered in TwiML.

`webhooks` is the ASGI app the web channel mounts at `/twilio/voice` (signature checks, one request of a
call at a time); `twiml` renders the flow's actions and reads spoken answers; `recordings` downloads what a
caller said. The flow itself (`channels/voice/flow.py`) and the calls' spool (`calls.py`) are shared with SIP.
"""

from .webhooks import PREFIX, TwilioWebhooks

__all__ = ["PREFIX", "TwilioWebhooks"]
