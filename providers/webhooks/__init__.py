"""Inbound webhooks, POST /api/webhooks/{provider}: receive.webhook_handle is the one entry.

- receive.py: who sent the delivery (allowlist), how big it is, whether it is signed, what it
  says; audits every rejection.
- signing.py: Standard Webhooks signatures; the secret is the provider's to say.
- payloads.py: Replicate's prediction objects and SimpleTuner's trainer events, read
  defensively into our vocabulary.
- apply.py: applying a verified delivery once per webhook-id, forward only.
"""
