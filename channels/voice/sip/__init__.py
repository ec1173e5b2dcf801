"""The SIP transport of the voice channel: pjsua2 (PJSIP) answering calls for the IVR flow (RFC 3261).

`service.SipService` is what the voice plugin starts: one endpoint on one port (UDP and TCP), on its own
thread (`endpoint.py`); each call carries out the flow's media actions (`call.py`) with prompt files resolved
beforehand (`media.py`). Importing this package needs the `pjsua2` wheel only for `endpoint` and `call`.
"""
